"""streamlit-extras where the project uses them, driven in Chromium at 1280×800 and 390×844.

image_crop: a first frame too wide for kling-v3 is made to fit (cropped to the video's aspect, or padded)
instead of only being refused, and what reaches the gateway is within the rules. chart_container: History's
spend chart comes with the numbers behind it and a CSV of them.
"""
from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import expect

from lib.contract import MAX_IMAGE_RATIO, MIN_IMAGE_SIDE
from tests.fixtures.servers import (
    DESKTOP,
    PHONE,
    AppServer,
    GatewayProcess,
    open_app,
    screenshot,
    wait_for_app,
)

pytestmark = pytest.mark.e2e

FIRST_BOX = ".st-key-compose_first_frame_box"
SLOT = ".st-key-compose_first_frame_preview"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("extras")
    gateway = GatewayProcess(root / "gateway").start()
    app = AppServer(root / "app", gateway).start()
    yield app
    app.stop()
    gateway.stop()


def _gateway_uploads(server: AppServer) -> dict[str, tuple[int, int]]:
    """Every image the gateway was sent, by file name, with its size."""
    return {p.name: Image.open(p).size for p in server.gateway.data_dir.rglob("upload_*")}


@pytest.mark.parametrize(("viewport", "how"), [(DESKTOP, "crop"), (PHONE, "pad")], ids=["desktop", "phone"])
def test_a_too_wide_first_frame_is_cropped_or_padded_to_fit(server: AppServer, browser: Any, tmp_path: Path,
                                                            viewport: dict[str, int], how: str) -> None:
    picture = Image.new("RGB", (1500, 400), (40, 120, 200))
    picture.paste((220, 180, 40), (0, 0, 300, 400))
    buf = io.BytesIO()
    picture.save(buf, "PNG")
    wide = tmp_path / f"wide-{how}.png"
    wide.write_bytes(buf.getvalue())
    ctx = browser.new_context(viewport=viewport)
    page = ctx.new_page()
    try:
        open_app(page, server.url)
        before = _gateway_uploads(server)
        page.locator(f"{FIRST_BOX} input[type=file]").set_input_files(str(wide))
        expect(page.locator(FIRST_BOX)).to_contain_text("3.75:1 — too wide", timeout=20_000)
        assert _gateway_uploads(server) == before  # refused locally: nothing was uploaded
        page.get_by_role("button", name="Crop or pad").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("Drag the 16:9 frame", timeout=10_000)
        dialog.locator("img").first.wait_for(timeout=15_000)  # image_crop's picture, with its handles
        page.wait_for_timeout(300)
        if how == "crop":  # drag the selection past the left edge: the yellow strip is the part to keep
            shown = dialog.locator("img").first.bounding_box()
            x, y = shown["x"] + shown["width"] / 2, shown["y"] + shown["height"] / 2
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x - 150, y, steps=8)
            page.mouse.move(shown["x"] - 200, y, steps=8)
            page.mouse.up()
            page.wait_for_timeout(500)  # the component sends the new region; the dialog reruns
            wait_for_app(page)
        screenshot(page, f"extras_frame_fix_{how}_{'desktop' if viewport == DESKTOP else 'phone'}")
        dialog.get_by_role("button", name="Use this crop" if how == "crop" else "Pad to 16:9").click()
        expect(dialog).to_be_hidden(timeout=20_000)
        wait_for_app(page)
        slot = page.locator(SLOT)
        expect(slot).to_contain_text(f"wide-{how}.png ({'cropped' if how == 'crop' else 'padded'})")
        slot.locator("[data-testid='stImage'] img").wait_for(timeout=10_000)
        assert "too wide" not in page.locator(FIRST_BOX).inner_text()
        new = {k: v for k, v in _gateway_uploads(server).items() if k not in before}
        assert len(new) == 1, new
        (name, (w, h)), = new.items()
        left = Image.open(next(server.gateway.data_dir.rglob(name))).convert("RGB").getpixel((5, 5))
        assert left == ((220, 180, 40) if how == "crop" else (0, 0, 0)), left  # the dragged-to part; a bar
        assert min(w, h) >= MIN_IMAGE_SIDE and max(w, h) / min(w, h) <= MAX_IMAGE_RATIO, (w, h)
        assert w / h == pytest.approx(16 / 9, rel=0.03), (w, h)
        if how == "pad":
            assert w == 1500, (w, h)  # the whole picture, with bars above and below
    finally:
        ctx.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_spend_chart_has_its_numbers_and_a_csv(server: AppServer, browser: Any,
                                                  viewport: dict[str, int]) -> None:
    ctx = browser.new_context(viewport=viewport, accept_downloads=True)
    page = ctx.new_page()
    try:
        open_app(page, f"{server.url}/history")
        page.get_by_role("tab", name="Spend and stats").click()
        spend = page.locator(".st-key-hist_spend")
        spend.wait_for(timeout=20_000)
        wait_for_app(page)
        expect(spend.locator("[data-testid='stVegaLiteChart']")).to_be_visible(timeout=10_000)
        screenshot(page, f"extras_spend_chart_{'desktop' if viewport == DESKTOP else 'phone'}")
        spend.get_by_role("tab", name="Numbers").click()
        expect(spend.locator("[data-testid='stDataFrame']")).to_be_visible(timeout=10_000)
        spend.get_by_role("tab", name="CSV").click()
        button = spend.get_by_role("button", name="Download data as .csv")
        expect(button).to_be_visible(timeout=10_000)
        box, frame_box = button.bounding_box(), spend.bounding_box()
        assert box["x"] + box["width"] <= frame_box["x"] + frame_box["width"] + 0.5
        screenshot(page, f"extras_spend_{'desktop' if viewport == DESKTOP else 'phone'}")
        with page.expect_download() as download:
            button.click()
        lines = Path(download.value.path()).read_text().splitlines()
        assert lines[0] == "day,estimated USD" and len(lines) > 1, lines[:3]
    finally:
        ctx.close()

"""Bad input through the real UI in Chromium: a message in words, nothing sent, nothing lost.

For each input the issue lists, a person fills the Compose form in a browser and presses Generate. The
test checks the three promises where they are true: the words on the page (the exact sentence lib.contract
gives, so UI and lib cannot drift apart), the gateway's request log (no submit, no upload: nothing spent),
the ledger (no run written) and the form (the typed prompt is still there). The inputs the UI makes
impossible (a 2,501st character, a third image) are tested as impossible, plus the lib message that
would apply if they came by another road.
"""
from __future__ import annotations

import io
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import expect

from lib.contract import FIFTEEN_WITH_IMAGES, MAX_PROMPT, VideoRequest, check_image, validate
from tests.fixtures.bombs import bomb_png
from tests.fixtures.servers import (
    AppServer,
    GatewayProcess,
    open_app,
    read_ledger_rows,
    screenshot,
    wait_for_app,
)

pytestmark = pytest.mark.e2e

Mark = tuple[int, int]  # (gateway log length, ledger rows) before a test
PROMPT = "A slow pan across a misty pine forest at sunrise"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """One app for the module: no test here may create a run, so sharing it is part of the check."""
    root = tmp_path_factory.mktemp("bad_input")
    gateway = GatewayProcess(root / "gateway").start()
    app = AppServer(root / "app", gateway).start()
    yield app
    app.stop()
    gateway.stop()


@pytest.fixture(autouse=True)
def baseline(server: AppServer) -> Mark:
    """Where the gateway log and the ledger stood before this test (a failed test must not blame others)."""
    return len(server.gateway.requests()), len(ledger_rows(server))


@pytest.fixture
def compose(server: AppServer, page: Any) -> Any:
    open_app(page, server.url)
    return page


def ledger_rows(server: AppServer) -> list[dict]:
    """The runs table, or [] before the app's first session has created the ledger."""
    try:
        return read_ledger_rows(server.db_path) if server.db_path.exists() else []
    except sqlite3.OperationalError:
        return []


def settle(page: Any) -> None:
    """Let the rerun a click or an edit started finish."""
    page.wait_for_timeout(400)
    wait_for_app(page)


def prompt_box(page: Any) -> Any:
    return page.get_by_label("Prompt", exact=True)


def type_prompt(page: Any, text: str = PROMPT) -> None:
    box = prompt_box(page)
    box.fill(text)
    box.press("Tab")  # commit the value (Streamlit sends text areas on blur)
    settle(page)


def generate(page: Any) -> None:
    page.get_by_role("button", name="Generate").click()
    settle(page)


def shows(page: Any, text: str, timeout: float = 15_000) -> None:
    page.get_by_text(text).first.wait_for(state="visible", timeout=timeout)


def assert_nothing_sent(server: AppServer, baseline: Mark) -> None:
    log_mark, rows_mark = baseline
    new = server.gateway.requests()[log_mark:]
    spent = [e for e in new if e.get("category") in ("submit", "upload")]
    assert spent == [], f"bad input reached the gateway: {spent}"
    assert ledger_rows(server)[rows_mark:] == [], "bad input must not write a run"


def assert_prompt_kept(page: Any, text: str = PROMPT) -> None:
    assert prompt_box(page).input_value() == text


def messages(req: VideoRequest, field: str | None = None) -> list[str]:
    found = [p.message for p in validate(req) if field is None or p.field == field]
    assert found, f"lib.contract.validate has no message for {req!r}"
    return found


def frame_box(page: Any, frame: str = "first_frame") -> Any:
    return page.locator(f".st-key-compose_{frame}_box")


def paste_url(page: Any, url: str, frame: str = "first_frame") -> None:
    field = frame_box(page, frame).locator("input[type='text']")
    field.fill(url)
    field.press("Enter")
    settle(page)


def choose_file(page: Any, path: Path, frame: str = "first_frame") -> None:
    frame_box(page, frame).locator("input[type='file']").set_input_files(str(path))
    page.wait_for_timeout(600)
    settle(page)


def image_file(tmp_path: Path, name: str, size: tuple[int, int], *, noise: bool = False) -> Path:
    path = tmp_path / name
    if noise:  # random pixels do not compress: a big file from a plausible photo size
        img = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    else:
        img = Image.new("RGB", size, (40, 120, 200))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return path


# ---------------------------------------------------------------------------------- the prompt


def test_empty_prompt(compose: Any, server: AppServer, baseline: Mark) -> None:
    generate(compose)
    shows(compose, messages(VideoRequest(prompt=""), "prompt")[0])
    assert_nothing_sent(server, baseline)
    assert_prompt_kept(compose, "")


def test_whitespace_only_prompt(compose: Any, server: AppServer, baseline: Mark) -> None:
    type_prompt(compose, "   ")
    generate(compose)
    shows(compose, messages(VideoRequest(prompt="   "), "prompt")[0])
    assert_nothing_sent(server, baseline)


def test_a_typed_2501st_character_is_kept_and_refused_in_words(compose: Any, server: AppServer,
                                                              baseline: Mark) -> None:
    """Typing past the limit: the text stays (nothing lost) and lib's sentence says how much to cut.

    A text area that silently stops at 2,500 says nothing in words; the issue asks for a message.
    """
    text = "a" * MAX_PROMPT + "b"
    too_long = messages(VideoRequest(prompt=text), "prompt")[0]
    box = prompt_box(compose)
    box.fill("a" * MAX_PROMPT)
    box.press("End")
    box.press("b")
    box.press("Tab")
    settle(compose)
    assert box.input_value() == text, "the 2,501st character was swallowed without a word"
    generate(compose)
    shows(compose, too_long)
    assert_nothing_sent(server, baseline)


def test_a_pasted_2501_character_prompt_is_kept_and_refused_in_words(
    compose: Any, server: AppServer, baseline: Mark
) -> None:
    """Pasting: the text must not vanish silently; lib's sentence with the numbers says what to do."""
    text = "a" * (MAX_PROMPT + 1)
    too_long = messages(VideoRequest(prompt=text), "prompt")[0]
    assert "2,501" in too_long and "2,500" in too_long
    box = prompt_box(compose)
    box.fill(text)
    box.press("Tab")
    settle(compose)
    assert box.input_value() == text, "a pasted prompt over the limit was dropped without a word"
    generate(compose)
    shows(compose, too_long)
    assert_nothing_sent(server, baseline)


def test_a_2501_character_prompt_in_a_compose_link_is_cut_with_a_note(
    page: Any, server: AppServer, baseline: Mark
) -> None:
    """Another road in: a shared Compose link. Nothing is sent, and the cut is said in words."""
    open_app(page, f"{server.url}/?prompt={'b' * (MAX_PROMPT + 1)}")
    shows(page, "2,501 characters")
    assert prompt_box(page).input_value() == "b" * MAX_PROMPT
    assert_nothing_sent(server, baseline)


# ---------------------------------------------------------------------------------- images by URL


def test_fifteen_seconds_with_an_image(compose: Any, server: AppServer, baseline: Mark) -> None:
    type_prompt(compose)
    paste_url(compose, "https://images.example.com/first.jpg")
    compose.locator("[data-testid='stRadio']").filter(has_text="Duration").get_by_text("15 s").click()
    settle(compose)
    shows(compose, FIFTEEN_WITH_IMAGES)
    generate(compose)
    shows(compose, FIFTEEN_WITH_IMAGES)
    screenshot(compose, "bad_input_15s_with_image")
    assert_nothing_sent(server, baseline)
    assert_prompt_kept(compose)


def test_a_third_image_has_no_place_in_the_form(compose: Any, server: AppServer, baseline: Mark) -> None:
    """Two slots (first, last): a third image cannot be attempted; lib's words if one came anyway."""
    uploaders = compose.locator("[data-testid='stFileUploader']")
    uploaders.first.wait_for()
    assert uploaders.count() == 2
    assert compose.get_by_text("First frame", exact=True).count() >= 1
    assert compose.get_by_text("Last frame", exact=True).count() >= 1
    urls = tuple(f"https://img.example.com/{i}.jpg" for i in range(3))
    three = VideoRequest(prompt=PROMPT, image_urls=urls)
    text = messages(three, "image_urls")[0]
    assert "at most 2" in text
    assert_nothing_sent(server, baseline)


@pytest.mark.parametrize(
    "url",
    ["data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk", "file:///etc/passwd"],
    ids=["data-url", "file-url"],
)
def test_pasted_image_url_that_is_not_http(compose: Any, server: AppServer, url: str, baseline: Mark) -> None:
    type_prompt(compose)
    paste_url(compose, url)
    expected = messages(VideoRequest(prompt=PROMPT, image_urls=(url,)), "first_frame")[0]
    shows(compose, expected)
    generate(compose)
    shows(compose, expected)
    assert_nothing_sent(server, baseline)
    assert_prompt_kept(compose)
    assert compose.locator("img[src^='file:'], img[src^='data:image/png;base64,iVBOR']").count() == 0


# ---------------------------------------------------------------------------------- image files


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "holiday.jpg"
    text.write_text("These are my notes, not a picture.\n" * 20)
    return {
        "text-renamed-jpg": text,
        "11-MB": image_file(tmp_path, "huge.png", (2000, 1950), noise=True),
        "200x200": image_file(tmp_path, "tiny.png", (200, 200)),
        "3000x500": image_file(tmp_path, "banner.png", (3000, 500)),
    }


@pytest.mark.parametrize("which", ["text-renamed-jpg", "200x200", "3000x500"])
def test_bad_image_file(compose: Any, server: AppServer, tmp_path: Path, which: str, baseline: Mark) -> None:
    path = _bad_files(tmp_path)[which]
    data = path.read_bytes()
    expected = [p.message for p in check_image(data, "first_frame") if p.level == "error"]
    assert expected, f"lib.contract.check_image accepts {which}"
    type_prompt(compose)
    choose_file(compose, path)
    shows(compose, expected[0], timeout=30_000)
    assert_nothing_sent(server, baseline)  # checked locally, before any upload
    # a picture that breaks the size or aspect rules can be made to fit; a text file cannot
    fix = frame_box(compose, "first_frame").get_by_role("button", name="Crop or pad")
    assert fix.count() == (0 if which == "text-renamed-jpg" else 1), which
    generate(compose)  # a press now must not quietly send a text-only video instead
    shows(compose, expected[0])
    screenshot(compose, f"bad_input_file_{which}")
    assert_nothing_sent(server, baseline)
    assert_prompt_kept(compose)


def test_an_11_mb_image_never_leaves_the_browser(compose: Any, server: AppServer, tmp_path: Path,
                                                  baseline: Mark) -> None:
    """server.maxUploadSize = 10 (MB): Streamlit's uploader refuses the file in the browser, in words, and
    the server never receives it (a direct PUT is answered 413: tests/e2e/test_upload_limits_e2e.py)."""
    path = _bad_files(tmp_path)["11-MB"]
    assert path.stat().st_size > 11 * 2**20 - 2**16
    puts: list[str] = []
    compose.on("request", lambda r: puts.append(r.url) if "/_stcore/upload_file/" in r.url else None)
    type_prompt(compose)
    box = frame_box(compose, "first_frame")
    expect(box.get_by_text("10MB per file", exact=False)).to_be_visible()  # the uploader says the limit
    choose_file(compose, path)
    expect(box.get_by_text("File must be 10.0MB or smaller.")).to_be_visible(timeout=15_000)
    screenshot(compose, "bad_input_file_11-MB")
    assert puts == [], puts
    assert_nothing_sent(server, baseline)
    assert compose.locator(".st-key-compose_first_frame_box img").count() == 0  # no preview
    assert_prompt_kept(compose)


def test_a_decompression_bomb_is_refused_in_words(compose: Any, server: AppServer, tmp_path: Path,
                                                  baseline: Mark) -> None:
    """13,000 × 13,000 px in half a megabyte: refused from its header, never decoded, never uploaded."""
    path = tmp_path / "holiday.png"
    path.write_bytes(bomb_png())
    expected = check_image(path.read_bytes(), "first_frame")[0].message
    assert "169 megapixels; the limit is 40 megapixels" in expected
    type_prompt(compose)
    choose_file(compose, path)
    shows(compose, expected, timeout=30_000)
    assert_nothing_sent(server, baseline)
    generate(compose)
    shows(compose, expected)
    screenshot(compose, "bad_input_file_bomb")
    assert_nothing_sent(server, baseline)
    assert_prompt_kept(compose)

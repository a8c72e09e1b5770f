"""The share view of a run whose gateway answered a server path as its video link (issue 13, item 1).

The app is pointed at a hostile gateway (tests/fixtures/hostile.py): a real HTTP server that completes the
task with `"url": "/proc/self/environ"`. A draft run goes through the app's own worker; then the share
view, which anyone holding the link may open, must show words and no player: a player handed that
string would have served this process's environment (with the API key and the passcode) as a "video".
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from lib.contract import VideoRequest
from lib.ledger import Ledger
from tests.fixtures.hostile import HostileGateway

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
MARKER = "ENVIRON-MARKER-3b9d1f"


def _main_text(at: AppTest) -> str:
    parts: list[str] = []
    for kind in ("title", "markdown", "caption", "text", "code", "info", "warning", "error", "success"):
        parts += [str(e.value) for e in getattr(at.main, kind)]
    return "\n".join(parts)


@pytest.mark.parametrize("link", ["/proc/self/environ", "file:///proc/self/environ", "{gw}/files/to-file",
                                  "http://127.0.0.1:{secret_port}/admin"])
def test_share_view_shows_words_not_the_servers_files(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, hostile_gateway: HostileGateway, link: str
) -> None:
    monkeypatch.setenv("TOAPIS_BASE_URL", hostile_gateway.url)
    monkeypatch.setenv("PLAYGROUND_TEST_MARKER", MARKER)  # would be in /proc/self/environ
    hostile_gateway.answer(video_url=link, thumbnail_url=link)
    led = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    run_id = Ledger.new_id()
    led.create_run(run_id, VideoRequest(prompt="a lighthouse at dusk", aspect_ratio="1:1"), 0.18)

    at = AppTest.from_file(APP, default_timeout=30).run()  # the first page view starts the worker
    assert not at.exception
    deadline = time.monotonic() + 30
    run: Any = led.get(run_id)
    while time.monotonic() < deadline and not (run and run.error_code):
        time.sleep(0.1)
        run = led.get(run_id)
    led.close()
    assert run is not None and run.error_code == "bad_url", run
    assert run.video_path is None

    at.query_params["id"] = run_id
    at.switch_page("pages/run.py").run()
    assert not at.exception, at.exception
    assert len(at.get("video")) == 0 and len(at.get("imgs")) == 0, [v.proto for v in at.get("video")]
    text = _main_text(at)
    assert "never opened it" in text or "not fetched" in text
    assert MARKER not in text

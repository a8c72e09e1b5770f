"""Uploads from an anonymous visitor cannot fill the server's memory.

No browser: a script speaks Streamlit's own protocol (tests/fixtures/st_socket.py), as an attacker would,
against a real `streamlit run` whose pages are behind a passcode (the visitor never gave it). It PUTs
files straight to the upload route: one over the 10 MB limit, a 150 MB stream with no length, and a pile
of 9.9 MB files, from one session and from several. The server's resident memory is read from /proc.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from lib.ui import upload_quota
from tests.fixtures.servers import AppServer, GatewayProcess
from tests.fixtures.st_socket import BareSession, run_async

pytestmark = pytest.mark.e2e

PASSCODE = "a long enough passcode, e2e"
FILE = os.urandom(9_900_000)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def session(url: str) -> BareSession:
    s = await BareSession(url).open()
    texts = await s.run()
    assert "Passcode" in s.widgets and not any(t.startswith("text_area:") for t in texts)  # anonymous
    return s


def test_uploads_are_capped_per_file_per_session_and_in_all(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path / "gateway").start()
    app = AppServer(tmp_path / "app", gateway, {"PLAYGROUND_PASSCODE": PASSCODE}).start()
    assert app.proc is not None
    pid = app.proc.pid

    async def attack() -> None:
        first = await session(app.url)
        start = rss_mb(pid)

        # One file over the limit: refused from its length, before it is read.
        assert first.put_file(os.urandom(11_000_000)).status_code == 413

        # A 150 MB body with no length: refused at the limit while streaming, never held.
        def stream() -> Iterator[bytes]:  # a well-formed multipart start, then an endless file
            yield (b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
                   b"Content-Type: image/png\r\n\r\n")
            for _ in range(150):
                yield b"\0" * (1 << 20)

        try:
            status = first.put_file(stream()).status_code
        except requests.ConnectionError:
            status = None  # the server hung up mid-stream: also a refusal
        assert status in (413, None)
        grew = rss_mb(pid) - start
        assert grew < 40, f"server memory grew by {grew:.0f} MB while refusing a 150 MB body"

        # Forty 9.9 MB files into one session: six are kept, the rest refused in words.
        answers = [first.put_file(FILE) for _ in range(40)]
        kept = sum(a.status_code == 204 for a in answers)
        assert kept == upload_quota.PER_SESSION_FILES
        refused = [a for a in answers if a.status_code == 413]
        assert len(refused) == 40 - kept
        assert "the most one page may keep" in refused[0].text
        grew = rss_mb(pid) - start
        assert grew < 250, f"server memory grew by {grew:.0f} MB (40 files kept would be ~400 MB)"

        # More sessions: together they keep no more than the process-wide total.
        others = [await session(app.url) for _ in range(4)]
        more = [other.put_file(FILE) for other in others for _ in range(upload_quota.PER_SESSION_FILES)]
        total_kept = kept + sum(a.status_code == 204 for a in more)
        assert total_kept == upload_quota.TOTAL_BYTES // len(FILE)  # 21 files of 9.9 MB in 210 MB
        assert any("as many uploaded images as it can" in a.text for a in more if a.status_code == 413)
        grew = rss_mb(pid) - start
        assert grew < 400, f"server memory grew by {grew:.0f} MB (30 files kept would be ~600 MB)"
        for s in (first, *others):
            await s.close()

    try:
        run_async(attack())
        assert app.proc.poll() is None
    finally:
        app.stop()
        gateway.stop()

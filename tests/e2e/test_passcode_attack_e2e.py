"""Guessing the passcode of a real server over raw websockets, reconnecting for every guess.

What the issue measured (36–127 guesses/s, every one compared): a script speaking Streamlit's protocol
(tests/fixtures/st_socket.py), six at once, each guess on a brand-new session. Now only the schedule's
guesses are compared (3, then one after 2 s, 4 s, 8 s, …); the rest are refused unseen, and the right
passcode sent during a wait is refused too. Bounded: 12 s of attack.
"""
from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import pytest

from lib import passcode
from tests.fixtures.servers import AppServer, GatewayProcess
from tests.fixtures.st_socket import BareSession, run_async

# timing checks (guesses per second against the schedule): run alone, last (tests/conftest.py)
pytestmark = [pytest.mark.e2e, pytest.mark.serial]

PASSCODE = "correct horse battery staple"
ATTACK_SECONDS = 12.0


def judged_by(elapsed: float) -> int:
    n, t = passcode.FREE_FAILURES, 0.0
    while True:
        t += passcode.delay_after(n)
        if t > elapsed:
            return n
        n += 1


async def one_guess(url: str, text: str) -> str:
    session = await BareSession(url).open()
    try:
        await session.run()
        joined = " ".join(await session.run([session.text("Passcode", text), session.press("Unlock")]))
    finally:
        await session.close()
    if "text_area:Prompt" in joined:
        return "open"
    if "not right" in joined:
        return "judged"
    return "refused" if "Try again in" in joined else joined


async def attacker(url: str, deadline: float, out: list[str]) -> None:
    while time.monotonic() < deadline:
        out.append(await one_guess(url, secrets.token_urlsafe(12)))


def test_guessing_over_websockets_is_slowed_to_the_schedule(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path / "gateway").start()
    app = AppServer(tmp_path / "app", gateway, {"PLAYGROUND_PASSCODE": PASSCODE}).start()
    try:
        async def attack() -> tuple[list[str], float]:
            await (await BareSession(app.url).open()).close()
            out: list[str] = []
            start = time.monotonic()
            await asyncio.gather(*(attacker(app.url, start + ATTACK_SECONDS, out) for _ in range(6)))
            return out, time.monotonic() - start

        out, elapsed = run_async(attack())
        judged = out.count("judged")
        rate = len(out) / elapsed
        print(f"{len(out)} guesses in {elapsed:.1f} s ({rate:.1f}/s), {judged} compared")
        assert set(out) <= {"judged", "refused"}, set(out)
        assert len(out) > 30  # the attacker really tried (a few a second at least)
        assert passcode.FREE_FAILURES <= judged <= judged_by(elapsed), (judged, elapsed)

        # The right passcode, on a fresh session, while the wait is on: refused unseen.
        assert run_async(one_guess(app.url, PASSCODE)) == "refused"
        # After the wait (at most the next step of the schedule), it opens.
        deadline = time.monotonic() + passcode.delay_after(judged) + 5
        result = "refused"
        while result == "refused" and time.monotonic() < deadline:
            time.sleep(1.0)
            result = run_async(one_guess(app.url, PASSCODE))
        assert result == "open"
    finally:
        app.stop()
        gateway.stop()

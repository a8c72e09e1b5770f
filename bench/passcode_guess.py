"""Passcode guessing over raw websockets: how many guesses a second a script gets, and how many are judged.

The attack the issue measured (36–127 guesses/s): no browser, just Streamlit's own websocket protocol.
Each "session" connects to /_stcore/stream, runs the page once to learn the passcode widget's id (and the
Unlock button's, when the gate is a form), then sends one rerun per guess with a fresh wrong passcode and
reads the answer until the script finishes. `--reconnect` opens a new websocket (a new Streamlit session)
for every guess, the way a script would try to reset a per-session counter.

An answer is "judged" when it says the passcode is not right (the guess was compared), "refused" when it
says to wait (the guess was not looked at), "open" if the page opened. The figure is guesses answered per
second and, of those, judged per second; bounded by --seconds and --sessions.

    python bench/passcode_guess.py --repo /path/to/checkout [--sessions 8] [--seconds 20] [--reconnect]
    python bench/passcode_guess.py --url http://127.0.0.1:8501   # a server you started, passcode set
"""
from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fixtures.st_socket import BareSession  # noqa: E402

PASSCODE = "correct horse battery staple"


async def new_session(url: str) -> BareSession:
    session = await BareSession(url).open()
    await session.run()
    return session


async def guess(session: BareSession, text: str) -> str:
    states = [session.text("Passcode", text)]
    if "Unlock" in session.widgets:  # the gate is a form: its button sends the guess
        states.append(session.press("Unlock"))
    joined = " ".join(await session.run(states))
    if "not right" in joined:
        return "judged"
    if "Try again in" in joined:
        return "refused"
    if "text_area:Prompt" in joined:
        return "open"
    return "other"


async def attacker(url: str, deadline: float, reconnect: bool, out: list[tuple[float, str]]) -> None:
    session = await new_session(url)
    try:
        while time.monotonic() < deadline:
            if reconnect:
                await session.close()
                session = await new_session(url)
            out.append((time.monotonic(), await guess(session, secrets.token_hex(8))))
    finally:
        await session.close()


async def warm_up(url: str) -> None:
    await (await new_session(url)).close()


async def attack(url: str, sessions: int, seconds: float, reconnect: bool) -> dict:
    out: list[tuple[float, str]] = []
    start = time.monotonic()
    deadline = start + seconds
    await asyncio.gather(*(attacker(url, deadline, reconnect, out) for _ in range(sessions)))
    elapsed = time.monotonic() - start
    counts = Counter(o for _, o in out)
    return {"seconds": elapsed, "answered": len(out), "counts": dict(counts),
            "answered_per_s": len(out) / elapsed, "judged_per_s": counts.get("judged", 0) / elapsed,
            "judged_per_min": counts.get("judged", 0) / elapsed * 60}


def start_server(repo: Path, tmp: Path) -> tuple[subprocess.Popen, str]:
    port = 18000 + secrets.randbelow(2000)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOAPIS_", "PLAYGROUND_"))}
    env.update({"PLAYGROUND_PASSCODE": PASSCODE, "PLAYGROUND_DATA": str(tmp),
                "PLAYGROUND_DB_URL": f"sqlite:///{tmp / 'ledger.db'}"})
    log = (tmp / "streamlit.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true"],
                            cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(f"{url}/_stcore/health", timeout=1).ok:
                return proc, url
        except requests.RequestException:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("the server did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", type=Path, help="start `streamlit run app.py` from this checkout")
    ap.add_argument("--url", help="attack a server that is already running (its passcode set)")
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--reconnect", action="store_true", help="a new websocket session for every guess")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc = None
        url = args.url
        if url is None:
            proc, url = start_server((args.repo or ROOT).resolve(), Path(tmp))
        try:
            asyncio.run(warm_up(url))  # the first page view starts the services: not part of the figure
            result = asyncio.run(attack(url, args.sessions, args.seconds, args.reconnect))
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(10)
    print(f"{args.repo or url}: {args.sessions} sessions{' (reconnecting)' if args.reconnect else ''}, "
          f"{result['seconds']:.1f} s: {result['answered']} guesses answered "
          f"({result['answered_per_s']:.1f}/s), judged {result['counts'].get('judged', 0)} "
          f"({result['judged_per_s']:.2f}/s = {result['judged_per_min']:.1f}/min); "
          f"outcomes {result['counts']}")


if __name__ == "__main__":
    main()

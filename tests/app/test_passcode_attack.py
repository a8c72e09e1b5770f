"""Guessing the passcode as an attacker would: many sessions, wrong guesses, then the right one.

Every AppTest is a new Streamlit session of one process (what a script reconnecting over websockets
gets); the guard is process-wide, so a fresh session does not get fresh tries. Real clock, bounded loop.
"""
from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from lib import passcode

APP = "../../app.py"
PASSCODE = "correct horse battery staple"


def new_session() -> AppTest:
    return AppTest.from_file(APP, default_timeout=30).run()


def guess(at: AppTest, text: str) -> AppTest:
    at.text_input(key="passcode_input").set_value(text)
    return at.button[0].click().run()


def judged_by(elapsed: float) -> int:
    """The most guesses the schedule allows within `elapsed` seconds of the first (3 free, then waits
    of 2, 4, 8, … seconds between the next ones)."""
    n, t = passcode.FREE_FAILURES, 0.0
    while True:
        t += passcode.delay_after(n)
        if t > elapsed:
            return n
        n += 1


def page_text(at: AppTest) -> str:
    shown = [*at.error, *at.markdown, *at.title]
    return " ".join(e.value for e in shown)


def test_many_sessions_get_three_guesses_then_wait_even_with_the_right_one(monkeypatch):
    monkeypatch.setenv("PLAYGROUND_PASSCODE", PASSCODE)
    start = time.monotonic()
    answers: list[str] = []
    for i in range(10):  # ten fresh sessions, two guesses each
        at = new_session()
        for j in range(2):
            guess(at, f"wrong guess {i}-{j}")
            answers.append(page_text(at))
            assert not at.text_area, "a wrong guess opened the app"
    elapsed = time.monotonic() - start
    guard = passcode.guard_for(PASSCODE)
    judged = sum("not right" in a for a in answers)
    assert judged == guard.compared
    assert judged <= judged_by(elapsed), (judged, elapsed)
    assert judged < len(answers) // 2, answers  # most guesses were refused unseen
    assert any("Too many wrong passcodes from your address. Try again in" in a for a in answers)

    # The right passcode from yet another session, while the wait is on: refused, the page stays shut.
    at = new_session()
    wait, _ = guard.wait_for(passcode.LOCAL_CLIENT)
    if wait < 2.0:
        # A slow machine spent the last wait on the sessions above (their guesses came in after it ended
        # or were all refused unseen): one more wrong guess, once allowed, starts the next wait for sure.
        time.sleep(wait + 0.05)
        guess(at, "one more wrong guess")
        judged += 1
        at = new_session()
        wait, _ = guard.wait_for(passcode.LOCAL_CLIENT)
    assert wait > 0
    assert "Too many wrong passcodes" in page_text(at)  # the gate says so before anything is typed
    guess(at, PASSCODE)
    assert not at.text_area and "Try again in" in page_text(at)
    assert guard.compared == judged  # the right guess was not even compared

    time.sleep(guard.wait_for(passcode.LOCAL_CLIENT)[0] + 0.05)
    guess(at, PASSCODE)
    assert "Prompt" in [w.label for w in at.text_area]


def test_a_short_passcode_stops_the_app_with_words(monkeypatch, caplog):
    """Checked at start-up (lib/config.py): the words name the variable and the minimum, never the value.
    A passcode means strangers may see the page, so the set-up page names only the setting (not even the
    passcode's length); the whole sentence goes to the server log for the owner."""
    monkeypatch.setenv("PLAYGROUND_PASSCODE", "hunter2")
    with caplog.at_level("WARNING"):
        at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    shown = [e.value for e in [*at.error, *at.markdown, *at.text, *at.info, *at.warning]]
    text = " ".join(str(s) for s in shown).replace("\\", "")
    assert "PLAYGROUND_PASSCODE" in text and "7 characters" not in text, shown
    assert "PLAYGROUND_PASSCODE is 7 characters long; it must have at least 12" in caplog.text
    assert "hunter2" not in text and "hunter2" not in caplog.text
    assert not at.text_area and not at.text_input  # no Compose, no passcode box either

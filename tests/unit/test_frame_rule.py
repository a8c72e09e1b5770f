"""When the live fragment reruns a whole page (lib/ui/frame.needs_full_run): only when the page needs it.

A full rerun per state change of any run made every open session redraw itself several times a second
with many runs in flight (bench/RESULTS.md figure 4); these cases pin the rule down.
"""
from __future__ import annotations

import pytest

from lib.ui.frame import needs_full_run

RUNNING = ("in_progress", False, False)
DONE_NO_VIDEO = ("completed", False, False)
DONE = ("completed", True, False)


def rule(busy_then=True, busy_now=True, started=False, follow_new=False, followed=None, now=None) -> bool:
    return needs_full_run(busy_then=busy_then, busy_now=busy_now, started=started, follow_new=follow_new,
                          followed=followed or {}, now=now or {})


def test_a_busy_page_that_follows_nothing_does_not_rerun_when_runs_change_or_start():
    assert not rule(started=True)
    assert not rule()


@pytest.mark.parametrize(("then", "now"), [(False, True), (True, False)])
def test_a_run_starting_on_an_idle_page_or_the_last_one_ending_reruns(then, now):
    assert rule(busy_then=then, busy_now=now)


def test_a_page_that_lists_new_runs_reruns_when_one_starts():
    assert rule(started=True, follow_new=True)
    assert not rule(started=False, follow_new=True)


def test_followed_runs_rerun_the_page_when_they_look_different():
    followed = {"a": RUNNING, "b": DONE_NO_VIDEO}
    assert not rule(followed=followed, now={"a": RUNNING, "b": DONE_NO_VIDEO, "other": DONE})
    assert rule(followed=followed, now={"a": DONE_NO_VIDEO, "b": DONE_NO_VIDEO})  # finished
    assert rule(followed=followed, now={"a": RUNNING, "b": DONE})  # its video was archived
    assert rule(followed=followed, now={"a": RUNNING})  # deleted

"""Toasts for finished runs (lib/ui/frame.finished_toasts): one per run while few finish in a tick, one
summary per outcome when many do, so a finished grid does not stack a dozen toasts over the page."""
from __future__ import annotations

from types import SimpleNamespace

from lib.contract import VideoRequest
from lib.ledger import COMPLETED, FAILED, UNKNOWN
from lib.ui.frame import TOASTS_PER_TICK, finished_toasts


def run(state: str, prompt: str) -> SimpleNamespace:
    return SimpleNamespace(state=state, request=VideoRequest(prompt=prompt, mode="std", duration=5))


def test_few_finished_runs_get_a_toast_each_in_words():
    toasts = finished_toasts([run(COMPLETED, "a kite over dunes"), run(FAILED, "a heron")])
    assert toasts == [("Video ready: a kite over dunes", ":material/check_circle:"),
                      ("Run failed (not billed): a heron", ":material/error:")]


def test_many_finished_runs_get_one_summary_per_outcome():
    runs = [run(COMPLETED, f"take {i}") for i in range(5)] + [run(FAILED, "a heron"), run(UNKNOWN, "fog")]
    assert len(runs) > TOASTS_PER_TICK
    toasts = finished_toasts(runs)
    assert toasts == [("5 videos ready: take 0 and 4 more", ":material/check_circle:"),
                      ("Run failed (not billed): a heron", ":material/error:"),
                      ("Run outcome unknown: fog", ":material/help:")]


def test_long_prompts_are_shortened_and_markdown_is_escaped():
    (text, _), = finished_toasts([run(COMPLETED, "**bold** " + "very long words " * 10)])
    assert text.startswith("Video ready: \\*\\*bold\\*\\*")
    assert len(text) < len("Video ready: ") + 60


def test_nothing_finished_means_no_toast():
    assert finished_toasts([]) == []

"""Toasts for finished runs (lib/ui/frame.finished_toasts): one per run while few finish in a tick, one
summary per outcome when many do, so a finished grid does not stack a dozen toasts over the page."""
from __future__ import annotations

from types import SimpleNamespace

from lib.contract import VideoRequest
from lib.ledger import COMPLETED, FAILED, UNKNOWN
from lib.ui.frame import TOASTS_PER_TICK, finished_toasts


def run(state: str, prompt: str, **extra: object) -> SimpleNamespace:
    fields = {"task_id": "task_1", "error_code": "generation_failed", "error_message": "internal error",
              "source": "compose", **extra}
    return SimpleNamespace(state=state, request=VideoRequest(prompt=prompt, mode="std", duration=5), **fields)


def test_few_finished_runs_get_a_toast_each_in_words():
    toasts = finished_toasts([run(COMPLETED, "a kite over dunes"), run(FAILED, "a heron")])
    assert toasts[0] == ("Video ready: a kite over dunes", ":material/check_circle:")
    text, icon = toasts[1]
    assert icon == ":material/error:"
    assert text.startswith("Run failed (not billed): a heron — The gateway could not generate this video")


def test_many_finished_runs_get_one_summary_per_outcome():
    runs = [run(COMPLETED, f"take {i}") for i in range(5)] + [run(FAILED, "a heron"), run(UNKNOWN, "fog")]
    assert len(runs) > TOASTS_PER_TICK
    toasts = finished_toasts(runs)
    assert toasts[0] == ("5 videos ready: take 0 and 4 more", ":material/check_circle:")
    assert toasts[1][0].startswith("Run failed (not billed): a heron — ")
    assert toasts[2][0].startswith("Run outcome unknown: fog — ")


def test_long_prompts_are_shortened_and_markdown_is_escaped():
    (text, _), = finished_toasts([run(COMPLETED, "**bold** " + "very long words " * 10)])
    assert text.startswith("Video ready: \\*\\*bold\\*\\*")
    assert len(text) < len("Video ready: ") + 60


def test_nothing_finished_means_no_toast():
    assert finished_toasts([]) == []


def test_a_failure_without_a_prompt_still_says_which_task_and_why():
    """A recovered task has no prompt: the toast names its task and carries the reason after the colon."""
    gone = run(FAILED, "", task_id="task_from_curl", error_code="task_not_found",
               error_message="The gateway has no task task_from_curl (HTTP 404, 3 times).")
    (text, _), = finished_toasts([gone])
    shown = text.replace("\\", "")  # what the toast renders once the markdown escapes are read
    assert shown == ("Run failed (not billed): task task_from_curl — The gateway has no task "
                     "task_from_curl (HTTP 404, 3 times).")
    assert not text.rstrip().endswith(":")

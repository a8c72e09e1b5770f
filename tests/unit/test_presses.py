"""lib.presses: one press, one charge, at any click cadence; and grid cells with ids of their own.

The rule is pure (a book, a clock, an id factory), so the cadences people click at are tested here with
an explicit clock; the browser proof is tests/e2e/test_presses_e2e.py. The last tests run the rule with
the real ledger: a repeat of a press writes nothing, a grid's cells get random ids unrelated to the group.
"""
from __future__ import annotations

import itertools
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lib import compare, playground, presses
from lib.config import load_settings
from lib.contract import VideoRequest
from lib.ledger import Ledger


def ids_from(prefix: str = "id") -> tuple[list[int], object]:
    """An id factory that counts its calls (the ledger's new_id in the app)."""
    calls = [0]
    counter = itertools.count()

    def make() -> list[str]:
        calls[0] += 1
        return [f"{prefix}{next(counter)}"]

    return calls, make


@pytest.mark.parametrize("gap_ms", [0, 50, 150, 300, 600, 1000, 2000])
def test_five_clicks_at_any_human_gap_are_one_press(gap_ms: int) -> None:
    book: dict = {}
    calls, make = ids_from()
    inputs = {"prompt": "a fox", "mode": "std"}
    kinds = [presses.decide(book, "generate", inputs, new_ids=make, now=100 + i * gap_ms / 1000).kind
             for i in range(5)]
    assert kinds == [presses.NEW] + [presses.SAME] * 4
    assert calls[0] == 1  # one id was ever made: every click maps to the first press's run


def test_the_window_slides_with_each_repeat_and_ends_in_a_new_take() -> None:
    book: dict = {}
    _, make = ids_from()
    first = presses.decide(book, "generate", {"p": 1}, new_ids=make, now=0.0)
    # clicks 2.9 s apart for ~12 s: each is within the window of the previous one
    for i in range(1, 5):
        again = presses.decide(book, "generate", {"p": 1}, new_ids=make, now=i * 2.9)
        assert again.same and again.ids == first.ids and again.gap == pytest.approx(2.9)
    later = presses.decide(book, "generate", {"p": 1}, new_ids=make, now=4 * 2.9 + 3.01)
    assert later.kind == presses.NEW_TAKE and later.ids != first.ids
    assert "New take" in presses.new_take(later) and "3.0 s ago" in presses.new_take(later)


def test_other_inputs_or_another_action_are_a_new_press() -> None:
    book: dict = {}
    _, make = ids_from()
    step = presses.GUARD + 0.2   # past the guard: a deliberate press of another button
    a = presses.decide(book, "generate", {"prompt": "a"}, new_ids=make, now=0)
    b = presses.decide(book, "generate", {"prompt": "b"}, new_ids=make, now=0.5)  # an edit, then Generate
    pair = presses.decide(book, "pair", {"prompt": "b"}, new_ids=make, now=0.5 + step)
    assert a.kind == b.kind == pair.kind == presses.NEW
    assert len({a.ids, b.ids, pair.ids}) == 3
    # back to "a" within the window: the previous press of "generate" was "b", so this is new, not "a"'s
    back = presses.decide(book, "generate", {"prompt": "a"}, new_ids=make, now=0.5 + 2 * step)
    assert back.kind == presses.NEW and back.ids != a.ids


def test_another_button_right_after_a_press_is_held_then_sent_when_pressed_again() -> None:
    """A quick double click whose second click lands on another card's button (the list moved)."""
    book: dict = {}
    calls, make = ids_from()
    take = presses.decide(book, "take:run-A", {"p": 1}, new_ids=make, now=10.0)
    held = presses.decide(book, "take:run-B", {"p": 2}, new_ids=make, now=10.6)
    assert held.kind == presses.TOO_SOON and held.ids == () and held.gap == pytest.approx(0.6)
    assert "take:run-B" not in book and calls[0] == 1                # nothing recorded, no ids made
    assert presses.too_soon(held).startswith("Not sent: this press came 0.6 s after")
    # the held click does not extend the moment: pressing B again after it is a new press
    meant = presses.decide(book, "take:run-B", {"p": 2}, new_ids=make, now=10.0 + presses.GUARD + 0.01)
    assert meant.kind == presses.NEW and meant.ids != take.ids
    # and the same button with the same inputs is never held: it is the same press
    again = presses.decide(book, "take:run-B", {"p": 2}, new_ids=make, now=meant.press.last_at + 0.05)
    assert again.same and again.ids == meant.ids


def test_presses_decided_at_the_same_instant_on_two_threads_are_one_press() -> None:
    """Streamlit's fast reruns start a second script thread for a tab while the first still runs.

    With a tiny thread switch interval the race is real: without presses.LOCK, 38 of 200 rounds made
    more than one new press (and one crashed iterating the book while another thread changed it).
    """
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        _race_rounds(200)
    finally:
        sys.setswitchinterval(old)


def _race_rounds(rounds: int) -> None:
    for _ in range(rounds):
        book: dict = {}
        calls, make = ids_from()
        barrier = threading.Barrier(8)
        out: list = [None] * 8

        def press(i: int, book: dict = book, make: Any = make, out: list = out,
                  barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            out[i] = presses.decide(book, "generate", {"p": 1}, new_ids=make)

        threads = [threading.Thread(target=press, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert calls[0] == 1 and len({d.ids for d in out}) == 1
        assert sorted(d.kind for d in out) == [presses.NEW] + [presses.SAME] * 7


def test_the_fingerprint_ignores_key_order_and_sees_every_value() -> None:
    assert presses.fingerprint("g", {"a": 1, "b": [1, 2]}) == presses.fingerprint("g", {"b": [1, 2], "a": 1})
    assert presses.fingerprint("g", {"a": 1}) != presses.fingerprint("g", {"a": 2})
    assert presses.fingerprint("g", {"a": 1}) != presses.fingerprint("h", {"a": 1})


def test_a_forgotten_press_is_judged_afresh() -> None:
    book: dict = {}
    _, make = ids_from()
    presses.decide(book, "generate", {"p": 1}, new_ids=make, now=0)
    presses.forget(book, "generate")   # e.g. the budget refused it: nothing was written
    again = presses.decide(book, "generate", {"p": 1}, new_ids=make, now=10)
    assert again.kind == presses.NEW   # not a "new take" of a run that was never made


def test_several_ids_per_press_and_a_bounded_book() -> None:
    book: dict = {}
    counter = itertools.count()
    grid = presses.decide(book, "grid", {"cells": 3}, new_ids=lambda: [f"x{next(counter)}" for _ in range(4)],
                          now=0)
    assert len(grid.ids) == 4 and len(set(grid.ids)) == 4
    with pytest.raises(ValueError):
        presses.decide(book, "bad", {}, new_ids=lambda: ["same", "same"], now=5)
    for i in range(presses.KEPT + 50):
        presses.decide(book, f"promote:run-{i}", {}, new_ids=lambda: [f"p{next(counter)}"], now=10 + 2 * i)
    assert len(book) == presses.KEPT
    assert f"promote:run-{presses.KEPT + 49}" in book and "grid" not in book  # least recent go first


def test_words_for_a_repeat_say_nothing_was_sent() -> None:
    book: dict = {}
    _, make = ids_from()
    presses.decide(book, "generate", {}, new_ids=make, now=0)
    repeat = presses.decide(book, "generate", {}, new_ids=make, now=0.4)
    words = presses.already_sent(repeat)
    assert words.startswith("Already sent — see the card below") and "0.4 s ago" in words
    assert "nothing new was sent or charged" in words


@pytest.mark.parametrize(("value", "ok"), [("3", 3.0), ("0.5", 0.5), ("60", 60.0), ("abc", None),
                                           ("0", None), ("-1", None), ("0.1", None), ("61", None),
                                           ("nan", None)])
def test_the_window_setting_is_checked_in_words(value: str, ok: float | None) -> None:
    env = {"PLAYGROUND_PRESS_WINDOW": value}
    if ok is not None:
        assert load_settings(env=env).press_window == ok
        return
    with pytest.raises(ValueError) as err:
        load_settings(env=env)
    assert "PLAYGROUND_PRESS_WINDOW" in str(err.value) and repr(value) in str(err.value)
    assert load_settings(env={}).press_window == presses.DEFAULT_WINDOW


# ------------------------------------------------------------------ with the real ledger


class _Worker:
    def wake(self) -> None:
        """The worker is not running in these tests: nothing is ever sent."""


def services(tmp_path: Path, budget: float | None = None) -> SimpleNamespace:
    env = {"PLAYGROUND_DATA": str(tmp_path), "TOAPIS_BASE_URL": "http://127.0.0.1:9"}
    if budget is not None:
        env["PLAYGROUND_BUDGET_USD"] = str(budget)
    return SimpleNamespace(settings=load_settings(env=env), ledger=Ledger(f"sqlite:///{tmp_path / 'l.db'}"),
                           worker=_Worker())


def test_repeated_presses_through_the_ledger_write_one_run(tmp_path: Path) -> None:
    svc = services(tmp_path)
    book: dict = {}
    req = VideoRequest("a kite over dunes", mode="std", duration=5)
    created = []
    for i in range(5):  # 600 ms apart, as a person clicks
        d = presses.decide(book, "generate", req.to_dict(), new_ids=lambda: [svc.ledger.new_id()],
                           now=i * 0.6)
        created.append(playground.submit(svc, req, run_id=d.ids[0]).created)
    assert created == [True, False, False, False, False]
    assert svc.ledger.count_runs() == 1
    svc.ledger.close()


def test_grid_cells_get_random_ids_and_a_repress_writes_nothing(tmp_path: Path) -> None:
    svc = services(tmp_path)
    plan = compare.expand(compare.GridSpec(prompts=("a", "b"), durations=(5, 10)), svc.settings.prices)
    book: dict = {}
    n = 1 + len(plan.submittable)

    def press(now: float) -> compare.GridSubmit:
        d = presses.decide(book, "grid", compare.spec_to_params(plan.spec),
                           new_ids=lambda: [svc.ledger.new_id() for _ in range(n)], now=now)
        return compare.submit_grid(svc, plan, d.ids[0], run_ids=d.ids[1:])

    first = press(0.0)
    assert first.ok and first.created == 8
    ids = [r.run_id for r in first.runs]
    assert len(set(ids)) == 8 and all(r.group_id == first.group_id for r in first.runs)
    # nothing derived: no cell id contains the group id or shares a long prefix with another id
    assert all(first.group_id not in rid and rid not in first.group_id for rid in ids)
    assert max(len(_common_prefix(a, b)) for a, b in itertools.combinations([first.group_id, *ids], 2)) < 8
    again = press(1.5)  # the same press inside the window: the same ids, nothing new
    assert again.ok and again.created == 0 and again.group_id == first.group_id
    assert [r.run_id for r in again.runs] == ids
    assert svc.ledger.count_runs() == 8
    later = press(1.5 + presses.DEFAULT_WINDOW + 0.1)  # a deliberate second grid
    assert later.created == 8 and later.group_id != first.group_id
    assert svc.ledger.count_runs() == 16
    svc.ledger.close()


def test_promote_and_another_take_get_ids_of_their_own(tmp_path: Path) -> None:
    svc = services(tmp_path)
    base = playground.submit(svc, VideoRequest("a heron", mode="std", duration=5), run_id=svc.ledger.new_id())
    promoted = playground.promote(svc, base.run, run_id=svc.ledger.new_id())
    take = playground.another_take(svc, base.run)
    for child in (promoted.run, take.run):
        assert child.parent_id == base.run.run_id
        assert base.run.run_id not in child.run_id and len(_common_prefix(child.run_id, base.run.run_id)) < 8
    assert take.run.source == "rerun" and take.run.request == base.run.request
    svc.ledger.close()


def _common_prefix(a: str, b: str) -> str:
    out = []
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        out.append(x)
    return "".join(out)

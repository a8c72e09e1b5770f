"""AppTest for Compare's single-run view (`?run=<id>`, lib/ui/pair_view.py): the run beside its pair
from the ledger; with no pair, one priced button that makes only the missing half, once per press.

Real parts: the embedded local gateway, the worker thread and a SQLite ledger in tmp_path.
"""
from __future__ import annotations

from pathlib import Path

from lib import pairs
from lib.contract import VideoRequest
from lib.ledger import Ledger, NewRun, RunFilter
from tests.app.test_compare_page import open_compare

PROMPT = "A lighthouse at dusk, waves below, slow pan"
STD = VideoRequest(PROMPT, mode="std", duration=5, aspect_ratio="16:9")


def seed(tmp: Path, *requests: VideoRequest) -> list[str]:
    led = Ledger(f"sqlite:///{tmp / 'ledger.db'}")
    ids = [led.new_id() for _ in requests]
    led.create_runs([NewRun(i, r, 0.18) for i, r in zip(ids, requests, strict=True)])
    led.close()
    return ids


def count(tmp: Path) -> int:
    led = Ledger(f"sqlite:///{tmp / 'ledger.db'}")
    try:
        return led.count_runs(RunFilter())
    finally:
        led.close()


def test_a_single_run_with_a_pair_is_shown_beside_it_and_nothing_is_sent(isolated: Path) -> None:
    std_id, pro_id = seed(isolated, STD, STD.replace(mode="pro"))
    seed(isolated, STD.replace(mode="pro", duration=10))  # other settings: not its pair
    at = open_compare({"run": std_id})
    keys = {c.key for c in at.get("flex_container") if c.key} | {c.key for c in at.get("vertical_block")
                                                                   if getattr(c, "key", None)}
    drawn = " ".join(str(k) for k in keys)
    assert f"pair_std_{std_id}" in drawn and f"pair_pro_{pro_id}" in drawn, drawn
    assert not [b for b in at.button if b.key and b.key.startswith("pair_make_")]
    assert "This run beside its pair" in [s.value for s in at.subheader]
    assert count(isolated) == 3


def test_a_run_without_a_pair_offers_the_missing_half_priced_and_makes_it_once(isolated: Path) -> None:
    (std_id,) = seed(isolated, STD)
    at = open_compare({"run": std_id})
    (make,) = [b for b in at.button if b.key == f"pair_make_{std_id}"]
    assert make.label.startswith("Make the pro (1080p) version · ≈ $0.31"), make.label
    make.click().run()
    assert not at.exception, at.exception
    # the new pro run now fills the right half: there is no button left to press twice
    assert not [b for b in at.button if b.key == f"pair_make_{std_id}"]
    assert count(isolated) == 2  # the std run and one pro run: never a grid, never two
    led = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    try:
        run = led.get(std_id)
        pair = pairs.find_pair(led, run)
        assert pair is not None and pair.request == STD.replace(mode="pro") and pair.parent_id == std_id
    finally:
        led.close()

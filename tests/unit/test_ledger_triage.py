"""Triage in the ledger (lib/ledger/triage.py) on a real SQLite file and a real PostgreSQL: marks kept per
run, bad values refused in words with nothing written, History's filters and sort in SQL, the CSV with the
marks (formula-safe), and verdicts: one per pair and judge, a change of mind replacing it, counted in the
pro-vs-std stats with what the pro takes cost."""
from __future__ import annotations

import csv
import io
import threading

import pytest

from lib import owners, triage
from lib.ledger import Ledger, LedgerError, NewRun, RunFilter
from lib.owners import Actor
from lib.triage import TriageError


def _run(ledger: Ledger, run_id: str, prompt: str = "a fox", mode: str = "std", cost: float = 0.18,
         owner: str | None = None) -> None:
    ledger.create_runs([NewRun(run_id, {"prompt": prompt, "mode": mode, "duration": 5}, cost, owner=owner,
                               owner_name=owner and owner.title())])


def test_marks_are_kept_partly_changed_and_read_in_one_batch(ledger: Ledger) -> None:
    _run(ledger, "run-1")
    _run(ledger, "run-2")
    assert ledger.get_triage("run-1") == triage.Triage("run-1")  # never marked: the defaults
    before = ledger.changes()
    marked = ledger.set_triage("run-1", rating=4, favourite=True, tags="Snow, #keep,  SNOW ",
                               note="  first <script>alert(1)</script>\nline two  ", by="alice")
    assert ledger.changes()[0] == before[0] + 1  # History's cached counts see the change
    assert (marked.rating, marked.favourite, marked.tags) == (4, True, ("snow", "keep"))
    assert marked.note == "first <script>alert(1)</script>\nline two" and marked.updated_by == "alice"
    again = ledger.set_triage("run-1", rating=None)  # only the rating changes: the rest stays
    assert (again.rating, again.favourite, again.tags, again.note) == (None, True, ("snow", "keep"),
                                                                       marked.note)
    ledger.set_triage("run-2", tags=["ünïcode ✓", "日本"])
    many = ledger.triage_many(["run-1", "run-2", "missing"])
    assert set(many) == {"run-1", "run-2"} and many["run-2"].tags == ("ünïcode ✓", "日本")
    assert ledger.triage_tags() == ["keep", "snow", "ünïcode ✓", "日本"]


@pytest.mark.parametrize(("changes", "words"), [
    ({"rating": 0}, "1 to 5 stars (got 0)"),
    ({"rating": 6}, "1 to 5 stars (got 6)"),
    ({"rating": -1}, "got -1"),
    ({"rating": 4.5}, "whole number of stars"),
    ({"rating": "5"}, "whole number of stars"),
    ({"rating": True}, "whole number of stars"),
    ({"favourite": "yes"}, "Favourite is on or off"),
    ({"tags": "x" * 401}, "at most 400 in all"),
    ({"tags": "a" * 25}, "25 characters; at most 24"),
    ({"tags": ",".join(f"t{i}" for i in range(9))}, "9 tags; a run takes at most 8 — remove 1"),
    ({"tags": "a|b"}, "contains “|”"),
    ({"tags": "bad\ttag"}, "control characters"),
    ({"tags": 5}, "Tags must be text"),
    ({"tags": ["ok", 3]}, "A tag must be text (got int)"),
    ({"note": "n" * 1001}, "1,001 characters; at most 1,000"),
    ({"note": "nul \x00 inside"}, "control characters (for example a NUL)"),
    ({"note": 12}, "A note must be text"),
])
def test_bad_values_are_refused_in_words_and_nothing_is_written(ledger: Ledger, changes: dict,
                                                                words: str) -> None:
    _run(ledger, "run-1")
    ledger.set_triage("run-1", rating=3, tags="kept", note="kept")
    before = ledger.changes()
    with pytest.raises(TriageError, match=words.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        ledger.set_triage("run-1", **changes)
    got = ledger.get_triage("run-1")
    assert (got.rating, got.tags, got.note) == (3, ("kept",), "kept") and ledger.changes() == before


def test_a_huge_note_or_tag_text_is_refused_quickly(ledger: Ledger) -> None:
    _run(ledger, "run-1")
    with pytest.raises(TriageError, match="at most 1,000"):
        ledger.set_triage("run-1", note="x" * 5_000_000)
    with pytest.raises(TriageError, match="at most 400"):
        ledger.set_triage("run-1", tags="," * 5_000_000)
    assert ledger.get_triage("run-1").empty


def test_an_empty_tag_box_or_note_clears_them(ledger: Ledger) -> None:
    _run(ledger, "run-1")
    ledger.set_triage("run-1", tags="a, b", note="n")
    cleared = ledger.set_triage("run-1", tags="  , ,", note="   ")
    assert cleared.tags == () and cleared.note == ""
    assert ledger.list_runs(RunFilter(tag="a")) == []


def test_a_run_not_in_the_ledger_cannot_be_marked(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="not in the ledger"):
        ledger.set_triage("nope", rating=3)
    assert ledger.triage_many(["nope"]) == {}


def test_filters_and_the_rating_sort_run_in_sql(ledger: Ledger) -> None:
    for i in range(5):
        _run(ledger, f"run-{i}", prompt=f"prompt {i}")
    ledger.set_triage("run-0", rating=5, tags="sea")
    ledger.set_triage("run-1", rating=2, favourite=True, tags="sea, night")
    ledger.set_triage("run-2", rating=4, favourite=True)
    ledger.set_triage("run-3", tags="seaside")  # "sea" must not match "seaside"

    def ids(**kw: object) -> list[str]:
        return [r.run_id for r in ledger.list_runs(RunFilter(**kw))]  # type: ignore[arg-type]

    assert ids(min_rating=4) == ["run-2", "run-0"]
    assert ledger.count_runs(RunFilter(min_rating=2)) == 3
    assert ids(favourite=True) == ["run-2", "run-1"]
    assert ids(tag="sea") == ["run-1", "run-0"] and ids(tag="night", favourite=True) == ["run-1"]
    assert ids(tag="%") == [] and ids(tag="_") == []  # LIKE wildcards are plain characters
    assert ids(sort="rating") == ["run-0", "run-2", "run-1", "run-4", "run-3"]  # unrated last, newest first
    assert ids(sort="rating", min_rating=1, text="prompt") == ["run-0", "run-2", "run-1"]
    page = ledger.list_runs(RunFilter(sort="rating"), limit=2, offset=2)
    assert [r.run_id for r in page] == ["run-1", "run-4"]


def test_the_csv_has_the_marks_and_neutralises_formulas(ledger: Ledger) -> None:
    _run(ledger, "run-1")
    _run(ledger, "run-2")
    ledger.set_triage("run-1", rating=5, favourite=True, tags="=cmd, night sky",
                      note="=HYPERLINK(\"http://evil\")\nsecond line")
    rows = list(csv.DictReader(io.StringIO(ledger.to_csv())))
    by_id = {r["run_id"]: r for r in rows}
    one = by_id["run-1"]
    assert (one["rating"], one["favourite"], one["tags"]) == ("5", "True", "'=cmd, night sky")
    assert one["note"] == "'=HYPERLINK(\"http://evil\")\nsecond line"
    two = by_id["run-2"]
    assert (two["rating"], two["favourite"], two["note"]) == ("", "False", "")


def test_the_csv_names_who_made_each_run_under_sign_in(ledger: Ledger) -> None:
    """A team's export says whose run each row is (the name shown on shared views); the team's own runs
    (made without sign-in) have none, and a name that looks like a formula stays text."""
    _run(ledger, "alices", owner="alice")
    _run(ledger, "teams")
    _run(ledger, "odd", owner="=evil")
    rows = {r["run_id"]: r["owner"] for r in csv.DictReader(io.StringIO(ledger.to_csv()))}
    assert rows == {"alices": "Alice", "teams": "", "odd": "'=Evil"}  # _run titles the name


def test_the_csv_reads_marks_in_batches(ledger: Ledger) -> None:
    """More runs than one look-up batch: every row still carries its own marks."""
    from lib.ledger import reports

    n = reports.CSV_BATCH + 3
    for i in range(n):
        _run(ledger, f"run-{i:04d}")
    ledger.set_triage("run-0000", rating=1)
    ledger.set_triage(f"run-{n - 1:04d}", rating=5)
    rows = {r["run_id"]: r["rating"] for r in csv.DictReader(io.StringIO(ledger.to_csv()))}
    assert len(rows) == n and rows["run-0000"] == "1" and rows[f"run-{n - 1:04d}"] == "5"
    assert sum(1 for v in rows.values() if v) == 2


def test_only_the_owner_edits_with_sign_in(ledger: Ledger) -> None:
    _run(ledger, "alices", owner="alice")
    _run(ledger, "teams")
    alice, bob = Actor("alice", "Alice", True), Actor("bob", "Bob", True)
    run = ledger.get("alices")
    assert run is not None
    with pytest.raises(owners.NotYours, match="belongs to Alice, so you cannot rate or tag it"):
        triage.edit(ledger, True, run, bob, rating=1)
    with pytest.raises(owners.NotYours, match="Sign in first"):
        triage.edit(ledger, True, run, owners.NOBODY, rating=1)
    assert ledger.get_triage("alices").empty
    assert triage.edit(ledger, True, run, alice, rating=5).rating == 5
    team = ledger.get("teams")
    assert team is not None and triage.edit(ledger, True, team, bob, favourite=True).favourite
    assert triage.edit(ledger, False, run, owners.NOBODY, rating=2).rating == 2  # no sign-in: the team's


# ---------------------------------------------------------------- verdicts

def test_a_repeat_is_one_verdict_and_a_change_of_mind_replaces_it(ledger: Ledger) -> None:
    _run(ledger, "std-1", mode="std", cost=0.18)
    _run(ledger, "pro-1", mode="pro", cost=0.31)
    first, changed = ledger.record_verdict("std-1", "pro-1", "pro-1", blind=True)
    assert changed and (first.run_a, first.run_b) == ("pro-1", "std-1")  # one spelling of the pair
    assert (first.winner, first.blind) == ("pro-1", True)
    before = ledger.changes()
    again, changed = ledger.record_verdict("pro-1", "std-1", "pro-1", blind=True)  # other order, same pair
    assert not changed and again == first and ledger.changes() == before
    mind, changed = ledger.record_verdict("std-1", "pro-1", "std-1", blind=True)
    assert changed and mind.winner == "std-1" and mind.created_at == first.created_at
    assert ledger.count_verdicts() == 1
    assert ledger.verdict_for("pro-1", "std-1") == mind
    # each signed-in person has their own verdict on the pair
    ledger.record_verdict("std-1", "pro-1", "pro-1", judge="bob", judge_name="Bob")
    assert ledger.count_verdicts() == 2 and ledger.verdict_for("std-1", "pro-1", "bob").judge_name == "Bob"


@pytest.mark.parametrize(("args", "words"), [
    (("std-1", "std-1", "std-1"), "two different runs"),
    (("std-1", "pro-1", "other"), "must be one of the two runs"),
    (("std-1", "gone", "std-1"), "not in the ledger"),
    (("", "pro-1", "pro-1"), "two different runs"),
])
def test_a_bad_verdict_is_refused_in_words(ledger: Ledger, args: tuple[str, str, str], words: str) -> None:
    _run(ledger, "std-1")
    _run(ledger, "pro-1", mode="pro")
    with pytest.raises((TriageError, LedgerError), match=words):
        ledger.record_verdict(*args)
    assert ledger.count_verdicts() == 0


def test_presses_from_several_threads_at_once_store_one_verdict(ledger_url: str) -> None:
    """Six tabs (threads, each its own Ledger) pressing the same choice at one instant: one row."""
    setup = Ledger(ledger_url)
    _run(setup, "std-1")
    _run(setup, "pro-1", mode="pro")
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def press() -> None:
        led = Ledger(ledger_url)
        try:
            barrier.wait(timeout=30)
            led.record_verdict("std-1", "pro-1", "pro-1", blind=True)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            led.close()

    threads = [threading.Thread(target=press) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert errors == [] and setup.count_verdicts() == 1
    finally:
        setup.close()


def test_stats_say_how_often_pro_won_per_prompt_and_what_it_cost(ledger: Ledger) -> None:
    assert triage.stats_words(ledger.verdict_stats().overall).startswith("No std-vs-pro verdicts yet")
    for i, (prompt, winner) in enumerate((("fox", "pro"), ("fox", "pro"), ("owl", "std"))):
        _run(ledger, f"s{i}", prompt=prompt, mode="std", cost=0.18)
        _run(ledger, f"p{i}", prompt=prompt, mode="pro", cost=0.3125)
        ledger.record_verdict(f"s{i}", f"p{i}", f"{winner[0]}{i}", blind=i != 1)
    _run(ledger, "s9", prompt="fox")  # two std takes: no answer to "was pro worth it"
    ledger.record_verdict("s0", "s9", "s9")
    stats = ledger.verdict_stats()
    o = stats.overall
    assert (o.verdicts, o.pro_wins, o.std_wins, o.blind, o.blind_pro_wins) == (3, 2, 1, 2, 1)
    assert o.extra_cost == pytest.approx(3 * 0.1325)
    assert triage.stats_words(o) == (
        "Pro beat std twice in 3 verdicts (67%); blind, 1 of 2. The pro takes cost ≈ $0.40 more than their "
        "std pairs (≈ $0.13 a pair); ≈ $0.20 extra for each pro win.")
    table = triage.stats_table(stats)
    assert [(r["prompt"], r["verdicts"], r["pro won"], r["pro win rate"]) for r in table] == [
        ("fox", 2, 2, "100%"), ("owl", 1, 0, "0%")]
    assert table[0]["extra paid for pro"] == pytest.approx(0.27)
    assert triage.stats_words(stats.by_prompt["owl"]).endswith("pro never won, so that was paid for nothing.")

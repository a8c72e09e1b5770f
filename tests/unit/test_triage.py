"""Triage rules (lib/triage.py), pure: tag normalisation, the words for bad values, the blind order."""
from __future__ import annotations

import pytest

from lib import triage
from lib.triage import TriageError


def test_tags_are_normalised_merged_and_kept_in_order() -> None:
    assert triage.parse_tags(" Snow ,#KEEP, snow,  night   sky ,,") == ("snow", "keep", "night sky")
    assert triage.parse_tags(["Ünïcode ✓", "ÜNÏCODE ✓"]) == ("ünïcode ✓",)
    assert triage.parse_tags("<script>x</script>") == ("<script>x</script>",)
    assert triage.parse_tags("") == () and triage.parse_tags(None) == () and triage.parse_tags(" , ") == ()


def test_every_problem_is_said_at_once() -> None:
    with pytest.raises(TriageError) as caught:
        triage.parse_tags("a|b, " + "x" * 30)
    words = str(caught.value)
    assert "contains “|”" in words and "30 characters; at most 24" in words


@pytest.mark.parametrize("value", [0, 6, 2.0, "3", True, [], -5])
def test_a_rating_outside_one_to_five_is_refused(value: object) -> None:
    with pytest.raises(TriageError, match="stars"):
        triage.check_rating(value)


def test_ratings_and_filters_read_only_known_values() -> None:
    assert [triage.check_rating(v) for v in (None, 1, 5)] == [None, 1, 5]
    assert [triage.min_rating_of(v) for v in (None, 0, 3, 6, "3", True)] == [None, None, 3, None, None, None]
    assert triage.tag_filter_of(" #Snow ") == "snow" and triage.tag_filter_of("a|b") is None
    assert triage.tag_filter_of("x\x00") is None and triage.tag_filter_of(3) is None
    assert triage.sort_of("rating") == "rating" and triage.sort_of("'; drop") == "newest"
    assert triage.stars(3) == "★★★☆☆" and triage.stars(None) == ""


def test_the_blind_order_is_stable_per_pair_and_shuffled_across_pairs() -> None:
    orders = [triage.blind_order(f"std-{i}", f"pro-{i}") for i in range(40)]
    assert [triage.blind_order(f"pro-{i}", f"std-{i}") for i in range(40)] == orders  # asked either way
    firsts = {o[0].split("-")[0] for o in orders}
    assert firsts == {"std", "pro"}  # some pairs show pro first, some std
    with pytest.raises(TriageError, match="two different runs"):
        triage.blind_order("a", "a")


def test_a_note_keeps_its_lines_and_is_trimmed() -> None:
    assert triage.check_note("\n  keep\n  these lines \n") == "keep\n  these lines"
    assert triage.check_note("x" * triage.MAX_NOTE) == "x" * triage.MAX_NOTE

"""lib/query.py: the one tolerant reader every page's query string goes through.

Each hostile input a link can carry is read to a clean value or left out with a note in words; nothing
raises, and no note repeats the refused value.
"""
from __future__ import annotations

import pytest

from lib import query
from lib.contract import ASPECTS, DURATIONS, MODES
from lib.query import QueryReader, ascii_int, clean_text, is_id

RID = "AbCdEfGhIjKlMnOpQrStUv"  # the shape of secrets.token_urlsafe(16)


@pytest.mark.parametrize(("raw", "value"), [
    ("5", 5), (" 10 ", 10), ("015", 15), (7, 7), (10.0, 10),
    ("²", None), ("٥", None), ("５", None), ("1²", None), ("-5", None), ("+5", None), ("5.0", None),
    ("", None), ("   ", None), ("9" * 10, None), ("9" * 5000, None), (True, None), (None, None),
    ("0x10", None), ("1e3", None), ("5\x00", None), (10.5, None), (float("nan"), None),
])
def test_ascii_int_accepts_only_plain_ascii_digits(raw: object, value: int | None) -> None:
    assert ascii_int(raw) == value


def test_python_itself_would_have_accepted_some_of_them() -> None:
    # why ascii_int exists: isdigit() says yes to "²" (then int() raises), and int() reads Arabic digits
    assert "²".isdigit() and int("٥") == 5
    with pytest.raises(ValueError):
        int("²")


@pytest.mark.parametrize(("value", "ok"), [
    (RID, True), ("abc_DEF-12", True), ("a" * 64, True), ("a" * 65, False), ("short", False),
    ("../../etc/passwd", False), ("<script>x</script>", False), (RID + "\n", False), (RID + " ", False),
    (RID + "\x00", False), ("²" * 22, False), ("ａ" * 22, False), ("", False), (None, False),
    (12345678, False),
])
def test_is_id(value: object, ok: bool) -> None:
    assert is_id(value) is ok


def test_clean_text_removes_control_characters() -> None:
    assert clean_text("a\x00b\x07c\x7fd\ne\tf") == "abcd\ne\tf"
    assert clean_text("a\r\n\tb\x00", multiline=False) == "a b"


def test_repeated_keys_use_the_first_value_with_a_note() -> None:
    r = QueryReader({"duration": ["10", "5"], "mode": ["pro", "pro"]})
    assert r.integer("duration", allowed=DURATIONS) == 10
    assert r.choice("mode", MODES) == "pro"
    assert r.notes == ["The link gives the duration more than once; the first one is used."]


def test_lists_merge_repeated_keys_and_drop_unknown_items_with_one_note() -> None:
    r = QueryReader({"modes": ["std,<script>", "PRO", "std"], "durations": "10,²,5,99999999999,../,10"})
    assert r.choices("modes", MODES, label="modes") == ("std", "pro")
    assert r.integers("durations", DURATIONS, label="durations") == (10, 5)
    assert r.notes == [
        "1 value of the modes in the link is not one of std or pro and was left out.",
        "3 values of the durations in the link are not one of 5, 10 or 15 and were left out.",
    ]


@pytest.mark.parametrize("hostile", [
    "²", "٥", "9" * 5000, "<script>alert(1)</script>", "../../etc/passwd", "\x00", "%00", "x" * 20_000, "",
    " ", "15.0", "true",
])
def test_no_getter_raises_or_echoes_a_hostile_value(hostile: str) -> None:
    r = QueryReader({"d": hostile, "m": hostile, "i": hostile, "f": hostile, "l": hostile, "t": hostile})
    assert r.integer("d", allowed=DURATIONS) in (None, *DURATIONS)
    assert r.choice("m", ASPECTS) in (None, *ASPECTS)
    assert r.ident("i") is None
    assert r.flag("f") in (None, True)
    assert set(r.integers("l", DURATIONS)) <= set(DURATIONS)
    text = r.text("t", max_chars=100)
    assert text is not None and len(text) <= 100 and "\x00" not in text
    for note in r.notes:
        assert len(note) < 200
        if len(hostile.strip()) > 3:
            assert hostile.strip() not in note


def test_text_is_cut_with_a_note_and_keeps_line_breaks_when_multiline() -> None:
    r = QueryReader({"prompt": "line one\nline two" + "x" * 3000})
    text = r.text("prompt", max_chars=2500, label="prompt", multiline=True)
    assert text is not None and len(text) == 2500 and text.startswith("line one\nline two")
    assert r.notes == ["The prompt in the link was 3,017 characters; it was cut to 2,500."]


def test_nul_and_controls_are_removed_from_text_with_a_note() -> None:
    r = QueryReader({"prompt": "a\x00b"})
    assert r.text("prompt", max_chars=50, label="prompt") == "ab"
    assert r.notes == ["Control characters were removed from the prompt in the link."]


def test_absent_and_empty_values() -> None:
    r = QueryReader({"duration": "", "mode": "  ", "flag": ""})
    assert r.integer("duration", allowed=DURATIONS, default=5) == 5
    assert r.choice("mode", MODES, default="std") == "std"
    assert r.flag("flag") is None and r.flag("missing", default=False) is False
    assert r.text("missing", max_chars=5) is None and r.text("duration", max_chars=5) == ""
    assert r.has("duration") and not r.has("missing")
    assert r.notes == []


def test_empty_keys_and_non_string_keys_are_ignored() -> None:
    r = QueryReader([("", "x"), ("id", RID)])
    assert r.keys() == ["id"] and r.ident("id") == RID


def test_reader_reads_streamlit_query_params_with_repeated_keys() -> None:
    class FakeQueryParams:  # the two methods QueryReader uses from st.query_params
        def keys(self) -> list[str]:
            return ["id"]

        def get_all(self, key: str) -> list[str]:
            return [RID, "other"]

    r = QueryReader(FakeQueryParams())
    assert r.ident("id") == RID and r.used == ["id"]


def test_reader_passes_a_reader_through() -> None:
    r = QueryReader({"a": "1"})
    assert query.reader(r) is r
    assert query.reader({"a": "1"}) is not r


def test_notes_are_bounded() -> None:
    r = QueryReader({f"k{i}": "x" for i in range(30)})
    for i in range(30):
        r.integer(f"k{i}")
    assert len(r.notes) == query.MAX_NOTES

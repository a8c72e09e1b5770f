"""The pages' parsers on hostile links: Compose (links.request_from_query), Compare
(compare.spec_from_query), the share view (history.parse_share_query) and History's filters
(history.parse_filter). Each goes through lib.query: it never raises, and says what it left out.
"""
from __future__ import annotations

import pytest

from lib import compare, history, links
from lib.contract import LATEST, MAX_PROMPT, VideoRequest
from lib.ledger import RunFilter
from lib.query import QueryReader

RID = "AbCdEfGhIjKlMnOpQrStUv"
HOSTILE = ["²", "٥", "9" * 5000, "<script>alert(1)</script>", "../../etc/passwd", "\x00", "x" * 20_000, ""]


@pytest.mark.parametrize("bad", HOSTILE)
def test_compose_link_with_any_hostile_value_reads_without_raising(bad: str) -> None:
    q = {k: bad for k in (*links.QUERY_KEYS, "image_3")}
    q["prompt"] = "a fox"
    r = QueryReader(q)
    req = links.request_from_query(r)
    assert req is not None and req.prompt == "a fox"
    assert req.duration is None or isinstance(req.duration, int)
    assert req.watermark in (None, True, False)
    assert all("\x00" not in u and len(u) <= links.MAX_QUERY_URL for u in req.image_urls)


def test_compose_link_repeated_and_unicode_values() -> None:
    r = QueryReader({"prompt": ["first", "second"], "duration": "²", "watermark": "maybe"})
    assert links.request_from_query(r) == VideoRequest("first")
    assert r.notes == [
        "The link gives the prompt more than once; the first one is used.",
        "The duration in the link is not a whole number; it was left out.",
        "The watermark setting in the link is not true or false; it was left out.",
    ]


def test_compose_link_cuts_a_huge_prompt_but_keeps_one_just_over_the_limit() -> None:
    # just over: kept whole, so Compose says "cut to 2,500" itself (README: bad-input table)
    assert len(links.request_from_query({"prompt": "p" * (MAX_PROMPT + 1)}).prompt) == MAX_PROMPT + 1
    r = QueryReader({"prompt": "p" * 100_000})
    assert len(links.request_from_query(r).prompt) == links.MAX_QUERY_PROMPT
    assert "cut to 10,000" in r.notes[0]


@pytest.mark.parametrize(("durations", "want"), [
    ("²", (5,)), ("10,²", (10,)), ("9" * 5000, (5,)), ("٥,10", (10,)), ("15,5,5", (5, 15)), ("", (5,)),
])
def test_grid_link_durations(durations: str, want: tuple[int, ...]) -> None:
    spec = compare.spec_from_query({"prompt": "x", "durations": durations})
    assert spec is not None and spec.durations == want


def test_grid_link_with_hostile_values_drops_them_with_notes() -> None:
    r = QueryReader({"prompt": "x", "prompt2": "<script>", "modes": "<script>,pro", "aspects": "../,1:1",
                     "durations": ["²", "10"], "watermark": "\x00", "first_frame": "a\x00b"})
    spec = compare.spec_from_query(r)
    assert spec == compare.GridSpec(prompts=("x", "<script>"), modes=("pro",), durations=(10,),
                                    aspects=("1:1",), image_urls=("ab",), watermark=None)
    assert r.notes == [
        "1 value of the aspect ratios in the link is not one of 16:9, 9:16 or 1:1 and was left out.",
        "Control characters were removed from the first frame URL in the link.",
        "1 value of the modes in the link is not one of std or pro and was left out.",
        "1 value of the durations in the link is not one of 5, 10 or 15 and was left out.",
        "The watermark setting in the link is not true or false; it was left out.",
    ]


@pytest.mark.parametrize("value", ["²" * 22, RID + "\x00", "../" + RID, RID * 3, "<script>", "", "%00"])
def test_share_link_with_a_malformed_id_is_not_found(value: str) -> None:
    target = history.parse_share_query(QueryReader({"id": value}))
    assert target == history.ShareTarget("invalid", message=history.NOT_FOUND_MESSAGE)


def test_share_link_with_a_repeated_id_opens_the_first() -> None:
    other = "ZyXwVuTsRqPoNmLkJiHgFe"
    assert history.parse_share_query({"id": [RID, other]}) == history.ShareTarget("run", RID)
    assert history.parse_share_query({"group": [RID, "../x"]}) == history.ShareTarget("group", RID)


def test_history_filter_values_are_read_the_same_strict_way() -> None:
    flt = history.parse_filter("fox\x00 ", ["completed"], ["pro"], ["²", "٥", "10", 15, "9" * 5000])
    assert flt == RunFilter(text="fox", states=("completed",), modes=("pro",), durations=(10, 15))


def test_a_latest_grid_link_keeps_sound_references_and_every_duration_only_under_latest() -> None:
    """A grid made under TOAPIS_CONTRACT=latest (7 s, Sound, two references) survives its share link's
    "Re-run this grid"; the same link opened by a v1 app fills in what v1 can send and says what it left."""
    spec = compare.GridSpec(prompts=("x",), durations=(3, 7), audio=True, contract=LATEST,
                            references=("https://e.com/r1.png", "https://e.com/r2.png"))
    q = compare.spec_to_query(spec)
    assert (q["durations"], q["sound"], q["reference2"]) == ("3,7", "true", "https://e.com/r2.png")
    assert compare.spec_from_query(q, LATEST) == spec
    r = QueryReader(q)
    v1 = compare.spec_from_query(r)
    assert v1 == compare.GridSpec(prompts=("x",), durations=(5,))
    assert r.notes[0].startswith("That grid was made with the latest contract; this app sends v1: its Sound "
                                 "and reference images are not filled in.")
    assert "2 values of the durations in the link are not one of 5, 10 or 15" in r.notes[1]
    hostile = QueryReader({"prompt": "x", "durations": "16,2,3", "sound": "<script>",
                           "reference1": "a\x00b", "reference9": "https://e.com/x.png"})
    got = compare.spec_from_query(hostile, LATEST)
    assert got is not None and (got.durations, got.audio, got.references) == ((3,), None, ("ab",))

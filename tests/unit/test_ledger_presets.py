"""The presets table (lib/ledger/presets.py) on a real SQLite file and a real PostgreSQL: names unique per
ledger whatever their case, overwrite keeps the id, rename/retag/delete, imports in one transaction that
skip duplicates by name and content and never overwrite, and two processes saving one name at once."""
from __future__ import annotations

import threading

import pytest

from lib import presets
from lib.contract import VideoRequest
from lib.ledger import Ledger, LedgerError
from lib.presets import NameTaken

FOX = VideoRequest("a fox", mode="pro", duration=10, aspect_ratio="1:1", negative_prompt="blur",
                   watermark=True, image_urls=("https://example.com/a.jpg",))


def make(name: str, request: VideoRequest = FOX, tags: str = "") -> presets.Preset:
    return presets.make(name, tags, request)


def test_save_list_and_find_by_name_and_tag(ledger: Ledger) -> None:
    saved = ledger.save_preset(make("Fox", tags="nature, Snow"))
    ledger.save_preset(make("owl", VideoRequest("an owl"), "night"))
    assert saved.preset_id and saved.created_at > 0
    got = ledger.get_preset(saved.preset_id)
    assert got is not None and (got.name, got.tags, got.request) == ("Fox", ("nature", "Snow"), FOX)
    assert [p.name for p in ledger.list_presets()] == ["Fox", "owl"]  # by name, any case
    assert [p.name for p in ledger.list_presets(tag="SNOW")] == ["Fox"]
    assert ledger.preset_tags() == ["nature", "night", "Snow"]
    assert ledger.find_preset(" FOX ") == got
    assert ledger.count_runs() == 0  # a preset is not a run


def test_a_taken_name_is_refused_unless_overwritten_and_overwrite_keeps_the_id(ledger: Ledger) -> None:
    first = ledger.save_preset(make("Fox"))
    with pytest.raises(NameTaken, match="A preset named “fOX” already exists"):
        ledger.save_preset(make("fOX", VideoRequest("another fox")))
    assert ledger.get_preset(first.preset_id or "").request == FOX
    again = ledger.save_preset(make("fOX", VideoRequest("another fox")), overwrite=True)
    assert again.preset_id == first.preset_id and again.created_at == first.created_at
    assert [(p.name, p.request.prompt) for p in ledger.list_presets()] == [("fOX", "another fox")]


def test_rename_retag_and_delete(ledger: Ledger) -> None:
    fox = ledger.save_preset(make("Fox"))
    ledger.save_preset(make("Owl"))
    with pytest.raises(NameTaken):
        ledger.rename_preset(fox.preset_id or "", "owl")
    with pytest.raises(LedgerError, match="The name is empty"):
        ledger.rename_preset(fox.preset_id or "", "  ")
    assert ledger.rename_preset(fox.preset_id or "", "Fox ").name == "Fox"  # its own name, other spacing
    renamed = ledger.rename_preset(fox.preset_id or "", "Arctic fox")
    assert ledger.find_preset("arctic fox") == renamed and ledger.find_preset("fox") is None
    assert ledger.retag_preset(fox.preset_id or "", "a, b").tags == ("a", "b")
    with pytest.raises(LedgerError, match="at most 12"):
        ledger.retag_preset(fox.preset_id or "", ",".join(str(i) for i in range(13)))
    assert ledger.delete_preset(fox.preset_id or "") is True
    assert ledger.delete_preset(fox.preset_id or "") is False
    with pytest.raises(LedgerError, match="no longer exists"):
        ledger.rename_preset(fox.preset_id or "", "x")
    assert [p.name for p in ledger.list_presets()] == ["Owl"]


def test_import_skips_duplicates_and_never_overwrites(ledger: Ledger) -> None:
    ledger.save_preset(make("Fox", tags="nature"))
    result = ledger.import_presets([make("fox", tags="NATURE"), make("Fox", VideoRequest("other")),
                                    make("Owl", VideoRequest("an owl"))])
    assert result.added == ["Owl"]
    assert result.skipped == ["“fox” is already in the library; skipped."]
    assert result.problems == ["“Fox”: a preset named “Fox” already exists with other settings; skipped — "
                               "rename one of them and import again."]
    assert {p.name: p.request.prompt for p in ledger.list_presets()} == {"Fox": "a fox", "Owl": "an owl"}
    assert ledger.import_presets([make("Owl", VideoRequest("an owl"))]).added == []  # twice is once


class Broken(presets.Preset):
    """A preset whose settings cannot be written: the database's error in the middle of an import."""

    def settings(self) -> dict:
        raise OSError("disk gone")


def test_an_import_that_fails_mid_way_writes_nothing(ledger: Ledger) -> None:
    good = make("Heron", VideoRequest("a heron"))
    with pytest.raises(OSError, match="disk gone"):
        ledger.import_presets([good, Broken(name="Broken", request=VideoRequest("x"))])
    assert ledger.list_presets() == []


def test_two_processes_saving_one_name_at_once_store_one(ledger_url: str) -> None:
    ledgers = [Ledger(ledger_url) for _ in range(6)]
    barrier = threading.Barrier(len(ledgers))
    outcomes: list[str] = []

    def save(i: int) -> None:
        barrier.wait()
        try:
            ledgers[i].save_preset(make("Race", VideoRequest(f"take {i}")))
            outcomes.append("saved")
        except NameTaken:
            outcomes.append("taken")

    threads = [threading.Thread(target=save, args=(i,)) for i in range(len(ledgers))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(outcomes) == ["saved"] + ["taken"] * (len(ledgers) - 1)
        assert len(ledgers[0].list_presets()) == 1
    finally:
        for led in ledgers:
            led.close()

"""The Share popovers (lib/ui/share_links.py) through AppTest: the copyable link is the short link that
unfurls, and a run's embed code is offered once its video is archived (words until then)."""
from __future__ import annotations

from typing import Any

import pytest

from lib.contract import VideoRequest
from lib.ledger import Ledger
from tests.app.test_share_page import archived, ledger, seed, share

__all__ = ["ledger"]  # a fixture, used by name


def codes(at: Any) -> list[str]:
    """The code blocks inside the view's Share popover (the link, then the embed code)."""
    return [c.value for p in at.main.get("popover") if p.proto.popover.label == "Share" for c in p.code]


def captions(at: Any) -> str:
    return " ".join(str(c.value) for p in at.main.get("popover") for c in p.caption)


def test_an_archived_runs_share_view_offers_its_short_link_and_embed_code(ledger: Ledger) -> None:
    rid = seed(ledger, VideoRequest(prompt='a "kite" <b>', mode="std", duration=5, aspect_ratio="9:16"),
               **archived(name="kiteVideoToken01"))
    at = share(id=rid)
    link, embed = codes(at)
    assert link.startswith("http://") and link.endswith(f"/s/{rid}")
    assert embed.startswith(f'<iframe src="{link[: -len(f"/s/{rid}")]}/e/{rid}" width="360" height="640"')
    assert 'title="a &quot;kite&quot; &lt;b&gt;"' in embed and "Embed code" in captions(at)


def test_a_run_still_in_flight_gets_its_link_and_words_instead_of_embed_code(ledger: Ledger) -> None:
    rid = seed(ledger, VideoRequest(prompt="a lighthouse"), state_="in_progress")
    at = share(id=rid)
    (link,) = codes(at)
    assert link.endswith(f"/s/{rid}")
    assert "It appears here once the video is saved." in captions(at)


def test_a_grid_share_view_offers_the_grids_short_link(ledger: Ledger) -> None:
    gid = Ledger.new_id()
    for mode in ("std", "pro"):
        seed(ledger, VideoRequest(prompt="a fox", mode=mode), group_id=gid, label=mode, **archived())
    at = share(group=gid)
    (link,) = codes(at)
    assert link.endswith(f"/s/{gid}")


def test_a_pinned_public_url_is_the_links_origin(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYGROUND_PUBLIC_URL", "https://play.example.com")
    rid = seed(ledger, VideoRequest(prompt="a lighthouse"), **archived(name="pinnedVideoTok01"))
    at = share(id=rid)
    link, embed = codes(at)
    assert link == f"https://play.example.com/s/{rid}"
    assert embed.startswith(f'<iframe src="https://play.example.com/e/{rid}"')

"""What the video area of a finished run shows, decided without Streamlit (lib/ui/player.py draws it).

Why one rule: a card must never swap the source of a video under a viewer, and a browser player must
never be pointed at a source this app did not vet. So:
- archived: our own copy, served by the app's archive route; the only source a card normally plays;
- saving (completed, not archived yet, normally under a second): "Saving…" and no player at all;
- retrying (archiving failed for now and is tried again): the reason in words, and the gateway's link as a
  link (never a player, so nothing swaps when the archived copy arrives), with its expiry;
- failed (archiving gave up): the reason in words, and the gateway's link played only when it is a vetted
  absolute http(s) URL that has not expired; otherwise words alone.
A string that is not an absolute http(s) URL never reaches a player: `st.video("/proc/self/environ")`
would read that file on the server and send it to the browser.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from lib.ledger import COMPLETED, Run
from lib.safe_fetch import url_problem

Kind = Literal["archived", "saving", "retrying", "failed", "none"]

SAVING = "Saving… the video is being copied into this app's archive; it plays here in a moment."
NOT_PLAYABLE = ("The gateway's link to this video is not a web address this app will play, so no player is "
                "shown for it.")
LINK_EXPIRED = "The gateway's own link to it has expired as well."


@dataclass(frozen=True)
class Playback:
    kind: Kind
    archive_key: str | None = None     # archived: the ledger's key of our copy
    gateway_url: str | None = None     # retrying/failed: a vetted link that has not expired
    expires_in: float | None = None    # seconds left on gateway_url, when the gateway said
    message: str | None = None         # words for the viewer (retrying/failed)


def vetted_http_url(url: Any) -> str | None:
    """The URL itself when a browser may be pointed at it (lib.safe_fetch.url_problem: absolute http(s),
    a plain host, no credentials, whitespace, control characters or backslashes, a sane length); else None."""
    return url if isinstance(url, str) and url_problem(url) is None else None


def playback(run: Run, now: float) -> Playback:
    """The decision for one run at `now` (see the module docstring)."""
    if run.state != COMPLETED:
        return Playback("none")
    if run.video_path:
        return Playback("archived", archive_key=run.video_path)
    failed = bool(run.error_code)
    if not failed and not run.error_message:
        return Playback("saving", message=SAVING)
    message = run.error_message or "The video could not be saved in this app's archive."
    # a link the archive refused as pointing somewhere it never goes (bad_url) is not offered either
    url = None if run.error_code == "bad_url" else vetted_http_url(run.video_url)
    expires_in = None if run.expires_at is None else run.expires_at - now
    if run.video_url and url is None:
        message = f"{message} {NOT_PLAYABLE}"
    elif url is not None and (run.error_code == "expired" or (expires_in is not None and expires_in <= 0)):
        if run.error_code != "expired":
            message = f"{message} {LINK_EXPIRED}"
        url = None
    return Playback("failed" if failed else "retrying", gateway_url=url,
                    expires_in=expires_in if url else None, message=message)

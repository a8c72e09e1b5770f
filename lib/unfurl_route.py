"""The app's own routes for demo links: `/s/<id>` (a short link that unfurls) and `/e/<id>` (an embed page).

Why our own Starlette routes (st.App, beside the archive route) and not a Streamlit page: a link-preview
bot reads the first HTML answer and runs no JavaScript, and Streamlit's pages are an empty shell until
their script runs over a websocket. These answer finished HTML (lib/unfurl.py builds it) from the ledger
alone: no worker, gateway or session is started by a bot fetching a link.

Like the share view, they are open to anyone holding the link (a passcode does not guard them): they show
exactly what `/run?id=…` shows to that person, less (no price, no settings table, no gateway words).
A malformed id is refused before any lookup and answers the same 404 words as an unknown one.

Headers: `nosniff`, `Referrer-Policy: no-referrer`, `Cache-Control: no-store` (the answer follows the
run's state, and its absolute URLs the request's Host unless PLAYGROUND_PUBLIC_URL pins them), a CSP with
no script at all; the short link page may not be framed, the embed page may be framed by any site
(`frame-ancestors *`: that is what it is for) and loads media only from this origin.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from lib import unfurl
from lib.query import is_id

log = logging.getLogger(__name__)

_COMMON = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
LINK_HEADERS = {**_COMMON, "Content-Security-Policy": f"{_CSP}; frame-ancestors 'none'",
                "X-Frame-Options": "DENY"}
EMBED_HEADERS = {**_COMMON, "Content-Security-Policy": f"{_CSP}; media-src 'self'; frame-ancestors *"}
UNAVAILABLE_HEADING = "This link cannot be shown"
UNAVAILABLE = "The playground cannot look this link up right now. Try again in a minute."
BAD_HOST = ("This request names no plain host name (its Host header), so the link's preview cannot say "
            "where the video is. Open the link from a browser, or set PLAYGROUND_PUBLIC_URL.")


def make_routes(
    ledger: Callable[[], Any],
    *,
    base_path: str = "",
    public_url: Callable[[], str | None] = lambda: None,
) -> list[BaseRoute]:
    """The routes to pass to st.App(routes=...). `ledger` and `public_url` are called per request (built
    lazily from the settings); a failure of either answers 503 in words and is tried again next time."""
    prefix = "/" + base_path.strip("/") if base_path.strip("/") else ""

    def page(text: str, status: int, headers: dict[str, str]) -> Response:
        return HTMLResponse(text, status_code=status, headers=headers)

    async def lookup(ident: str, headers: dict[str, str]) -> unfurl.Subject | Response:
        if not is_id(ident):
            return page(unfurl.not_found_page(base_path=base_path), 404, headers)
        try:
            found = await run_in_threadpool(lambda: unfurl.find(ledger(), ident))
        except Exception:  # a ledger that cannot be opened or read: the log has the details
            log.exception("a demo link could not be looked up")
            return page(unfurl.not_found_page(UNAVAILABLE, base_path, UNAVAILABLE_HEADING), 503, headers)
        if found is None:
            return page(unfurl.not_found_page(base_path=base_path), 404, headers)
        return found

    async def short_link(request: Request) -> Response:
        found = await lookup(request.path_params["ident"], LINK_HEADERS)
        if isinstance(found, Response):
            return found
        try:
            base = public_url()
        except Exception:  # a bad PLAYGROUND_PUBLIC_URL: words here, details in the log
            log.exception("PLAYGROUND_PUBLIC_URL cannot be used")
            return page(unfurl.not_found_page(UNAVAILABLE, base_path, UNAVAILABLE_HEADING), 503, LINK_HEADERS)
        base = base or unfurl.origin_from_host(request.url.scheme, request.headers.get("host"))
        if base is None:
            return page(unfurl.not_found_page(BAD_HOST, base_path, UNAVAILABLE_HEADING), 400, LINK_HEADERS)
        return page(unfurl.link_page(found, base, base_path), 200, LINK_HEADERS)

    async def embed(request: Request) -> Response:
        found = await lookup(request.path_params["ident"], EMBED_HEADERS)
        if isinstance(found, Response):
            return found
        if not found.embeddable:  # a grid has no single video to play: its short link shows it
            return page(unfurl.not_found_page(base_path=base_path), 404, EMBED_HEADERS)
        return page(unfurl.embed_page(found, base_path), 200, EMBED_HEADERS)

    async def nothing_here(request: Request) -> Response:
        del request
        return page(unfurl.not_found_page(base_path=base_path), 404, LINK_HEADERS)

    routes: list[BaseRoute] = []
    for path, handler in ((unfurl.SHORT_PREFIX, short_link), (unfurl.EMBED_PREFIX, embed)):
        routes += [
            Route(f"{prefix}{path}/{{ident}}", handler, methods=["GET", "HEAD"]),
            Route(f"{prefix}{path}/{{rest:path}}", nothing_here, methods=["GET", "HEAD"]),
            Route(f"{prefix}{path}", nothing_here, methods=["GET", "HEAD"]),
        ]
    return routes

"""The app's own HTTP routes beside Streamlit's, for the `st.App` entry in app.py: the archive, and the
demo links (`/s/<id>`, `/e/<id>`, lib/unfurl_route.py), which read the ledger alone (built the same way).

Why here: the route must find the archive the same way the pages do (environment, then
.streamlit/secrets.toml, through lib.config), and reading st.secrets / Streamlit's options is UI-side code.
The route only needs the storage, so it builds that alone, once per process, on the first request: no
ledger, gateway or worker is started by someone fetching a video. A bad setting answers 503 with words
(the details go to the server log) and is read again on the next request.
"""
from __future__ import annotations

import threading
from typing import Any

import streamlit as st
from starlette.routing import BaseRoute

from lib import archive_route, unfurl_route
from lib.storage import Storage, open_storage
from lib.ui import state

_lock = threading.Lock()
_storage: list[Storage] = []


def archive_storage() -> Storage:
    """The configured archive's storage (PLAYGROUND_ARCHIVE: a folder, default data/archive, or an
    s3:// bucket), built once."""
    with _lock:
        if not _storage:
            from lib.config import load_settings

            # the same settings the pages use (state._start reads them the same way)
            _storage.append(open_storage(load_settings(secrets=state._secrets()).archive_location))
        return _storage[0]


_links: dict[str, Any] = {}
_links_lock = threading.Lock()  # not _lock: a slow database must not hold up the archive


def _link_settings() -> Any:
    """The settings the demo links need, read once; a bad setting raises and is read again next time."""
    with _links_lock:
        if "settings" not in _links:
            from lib.config import load_settings

            _links["settings"] = load_settings(secrets=state._secrets())
        return _links["settings"]


def link_ledger() -> Any:
    """A ledger of the process's own for the demo links (reads only): no worker or gateway behind it."""
    settings = _link_settings()
    with _links_lock:
        if "ledger" not in _links:
            from lib.ledger import Ledger

            _links["ledger"] = Ledger(settings.db_url)
        return _links["ledger"]


def public_url() -> str | None:
    return _link_settings().public_url


def routes() -> list[BaseRoute]:
    """What app.py passes to st.App(routes=...): the archive under Streamlit's server.baseUrlPath."""
    prefix = archive_route.prefix_for(st.get_option("server.baseUrlPath"))
    demo = unfurl_route.make_routes(link_ledger, base_path=st.get_option("server.baseUrlPath") or "",
                                    public_url=public_url)
    return archive_route.make_routes(archive_storage, prefix=prefix) + demo

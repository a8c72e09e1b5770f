"""Per-process services and small per-session hand-offs between pages.

Why here: `st.cache_resource` makes `start_services` run once per server process (one worker, one
ledger, one rate limiter for every session), and the two session hand-offs (switch page after a
callback, fill the Compose form from another page) need one agreed set of session_state keys.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import streamlit as st

from lib.contract import VideoRequest
from lib.ui import upload_quota

if TYPE_CHECKING:
    from lib.services import Services

NAV_KEY = "_nav_pending"
RESTORE_KEY = "_compose_restore"


def _secrets() -> dict[str, Any]:
    """st.secrets as a plain dict, or {} when there is no secrets.toml (reading it must not fail)."""
    try:
        return {k: st.secrets[k] for k in st.secrets}
    except Exception:  # noqa: BLE001 - no/invalid secrets file: the environment still applies
        return {}


def secrets() -> dict[str, Any]:
    """What settings are read from besides the environment (the set-up page reads them again)."""
    return _secrets()


_STARTED: list[Services] = []  # every Services this process started, so tests can stop them


def _release(services: Services) -> None:
    """Stop the worker and embedded gateway when the cache drops them (tests clear it between apps)."""
    stop = getattr(services, "stop", None)
    if callable(stop):
        stop()


@st.cache_resource(show_spinner="Starting the playground…", on_release=_release)
def _start() -> Services:
    from lib.config import load_settings
    from lib.services import start_services

    started = start_services(load_settings(secrets=_secrets()))
    _STARTED.append(started)
    return started


def stop_all() -> None:
    """Stop every Services this process started (tests; a server just exits)."""
    while _STARTED:
        _release(_STARTED.pop())


def services() -> Services:
    """The process-wide Services (settings, ledger, client, archive, worker, local gateway)."""
    upload_quota.install_in_runtime()  # once per process; before _start, which may refuse bad settings
    return _start()


def navigate(page: str, query_params: Mapping[str, str] | None = None) -> None:
    """Switch page from a widget callback: frame.render() performs it in the full run this asks for.

    Ends the callback (call it last). A button inside a fragment (the live run cards) would otherwise
    rerun only its fragment, and the switch would wait for the page's next full run, seconds or
    clicks later. `st.rerun()` from a callback makes the interaction a full-app rerun at once; from a
    button outside any fragment it changes nothing (that rerun is a full one already)."""
    st.session_state[NAV_KEY] = (page, dict(query_params or {}))
    st.rerun()


def take_navigation() -> tuple[str, dict[str, str]] | None:
    return st.session_state.pop(NAV_KEY, None)


def request_restore(request: VideoRequest) -> None:
    """Fill the Compose form with `request` (images too) the next time it renders."""
    st.session_state[RESTORE_KEY] = request.to_dict()


def take_restore() -> VideoRequest | None:
    data = st.session_state.pop(RESTORE_KEY, None)
    return VideoRequest.from_dict(data) if data else None

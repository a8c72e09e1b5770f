"""The last resort: an error nobody foresaw on a page becomes words on screen and details in the log.

The causes are fixed where they are (lib/query.py for links, lib/startup.py for settings, the ledger's
unreadable rows); this only catches what is left. Two ways in, because neither covers everything alone:

- `install()`, called by frame.render on every page: sets Streamlit's per-run `on_script_error` hook
  (ScriptRunContext.on_script_error, the field `st.App(on_script_error=...)` fills) when nothing else
  set it, and the session's (which later runs start from), so the page, its fragments' reruns and
  widget callbacks are covered from a session's first page on, with `streamlit run app.py` as it is.
- `st.App("app.py", on_script_error=last_resort.handle)` covers the first run of a session too, without
  reaching into Streamlit's session object.

streamlit-extras 1.6.0's `exception_handler` was evaluated and not used: it swaps the code of
`streamlit.error_util.handle_uncaught_app_exception`, which Streamlit 1.67 keeps only for compatibility
and no longer calls for script errors (exec_code uses handle_user_script_exception), so it changes
nothing (tests/app/test_last_resort.py shows it). `client.showErrorDetails = "none"` in
.streamlit/config.toml is the floor under both: Streamlit's own message then names no exception.
"""
from __future__ import annotations

import logging
import secrets

import streamlit as st

log = logging.getLogger(__name__)

MESSAGE = ("Something went wrong on this page, so it stopped here. Nothing you did is lost: every run is "
           "kept in the ledger. Reload the page to try again; if this keeps happening, tell the "
           "playground's owner the reference {ref} (the details are in the server log).")


def handle(exc: Exception) -> bool:
    """Log the exception with a short reference and show words instead of Streamlit's exception box.

    Returns True (the default display is suppressed) once the words are on the page; False when they
    could not be drawn, so Streamlit's own (redacted) message still appears.
    """
    ref = secrets.token_hex(4)
    log.error("unexpected error on a page (ref %s): %s", ref, type(exc).__name__, exc_info=exc)
    try:
        st.error(MESSAGE.format(ref=ref), icon=":material/error:")
    except Exception:  # the page is already broken; Streamlit's own box is the fallback
        log.exception("could not draw the error message (ref %s)", ref)
        return False
    return True


def install() -> bool:
    """Use `handle` for the rest of this run, and for the session's later runs, unless a handler is set
    already (e.g. by st.App). Returns whether `handle` is this run's hook (False outside a Streamlit run)."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None or not hasattr(ctx, "on_script_error"):
        return False
    if ctx.on_script_error is None:
        ctx.on_script_error = handle
    _install_for_session(ctx.session_id)
    return ctx.on_script_error is handle


def _install_for_session(session_id: str) -> None:
    """Widget callbacks and fragment reruns start in a new run context, made from the session's handler
    (what st.App passes down): set that too, so they are covered from the session's second run on.
    Streamlit internals (AppSession._on_script_error); if they move, only this extra reach is lost."""
    try:
        from streamlit.runtime import Runtime

        if not Runtime.exists():
            return
        info = Runtime.instance()._session_mgr.get_active_session_info(session_id)
        session = getattr(info, "session", None)
        if session is not None and getattr(session, "_on_script_error", handle) is None:
            session._on_script_error = handle
    except Exception:  # best effort on internals; the per-run hook above still holds
        log.debug("could not set the session's error handler", exc_info=True)

"""Rerun one named fragment from inside another fragment's tick.

Why: a page's run cards sit in one fragment that is redrawn only when one of its runs changes; a tiny
ticking fragment watches the ledger's change token and asks for that redraw. Streamlit 1.67 offers
`st.rerun(scope=<key>)` only from widget callbacks, while a fragment body may ask only for itself
(`scope="fragment"`), which goes through the very same request: a fragment-scoped `RerunData` queued on
the session's script requests, then a yield point. This builds that request for another fragment's
key. If a Streamlit upgrade moves those internals, it falls back to a full rerun (correct, only dearer),
and tests/app/test_compose.py notices the fallback through its run counts.
"""
from __future__ import annotations

import logging

import streamlit as st

log = logging.getLogger(__name__)


def rerun(key: str) -> None:
    """Rerun the fragment registered with `key` (does not return), or the whole page if that cannot be.
    Returns, asking nothing, when another run is already requested (a press, a full rerun): folding this
    request into that one could turn it into a fragment run; the caller's next tick asks again."""
    try:
        from streamlit.runtime.scriptrunner_utils.script_requests import RerunData, ScriptRequestType
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

        ctx = get_script_run_ctx()
        if ctx is None or not ctx.script_requests or not ctx.fragment_ids_this_run:
            raise LookupError("not in a fragment run")
        if getattr(ctx.script_requests, "_state", ScriptRequestType.CONTINUE) != ScriptRequestType.CONTINUE:
            return
        ids = ctx.fragment_storage.resolve_target(key)
        data = RerunData(query_string=ctx.query_string, page_script_hash=ctx.page_script_hash,
                         fragment_id_queue=list(ids), is_fragment_scoped_rerun=True,
                         cached_message_hashes=ctx.cached_message_hashes, context_info=ctx.context_info)
    except Exception as exc:  # noqa: BLE001 - moved internals or no such fragment: a full rerun is right too
        log.debug("fragment_rerun: full rerun instead of %r (%s)", key, exc.__class__.__name__)
        st.rerun()
    ctx.script_requests.request_rerun(data)
    st.empty()  # a yield point: the runner stops this run here and starts the requested one
    st.rerun()  # a safety net: if nothing stopped this run at the yield point, a full rerun

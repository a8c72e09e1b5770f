"""Forget Streamlit's bookkeeping for widgets that are gone, so a tab left open stays the same size.

Why: Streamlit 1.67 keeps, per session, a `WidgetMetadata` (with its serializer, deserializer, callback
and args) and a key → id entry for every widget id the session has ever drawn. Its stale-widget cleanup
drops only the widget's value (`WStates.remove_stale_widgets` filters `states`, never
`widget_metadata`, and `KeyIdMapper` is never pruned). Run cards key their buttons by run id, on purpose:
a click must act on the run it was drawn for, even if the list has moved since. So every run that passes
through a card left about 1.2 KB per button behind in every open session, for as long as the tab stayed
open: the slow memory growth of bench figure 4's soak (bench/RESULTS.md).

`prune()` drops the metadata and key mapping of every widget that has no value left in the session, that
is, every widget Streamlit itself already treats as stale. A widget drawn in this run or kept for a
fragment (its value is still there) is never touched. If a Streamlit upgrade moves these internals, it
does nothing (tests/app/test_widget_gc.py says so loudly).
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def _session_state() -> Any | None:
    """The running session's SafeSessionState, or None outside a script run."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx
    from streamlit.runtime.state import get_session_state

    return get_session_state() if get_script_run_ctx() is not None else None


def prune(safe: Any | None = None) -> int:
    """Drop the metadata of widgets with no value left; returns how many were dropped."""
    safe = safe if safe is not None else _session_state()
    if safe is None:
        return 0
    try:
        with safe._lock:
            inner = safe._state
            widgets = inner._new_widget_state
            metadata: dict[str, Any] = widgets.widget_metadata
            alive = widgets.states.keys() | inner._old_state.keys()
            gone = [wid for wid in metadata if wid not in alive]
            if not gone:
                return 0
            mapper = inner._key_id_mapper
            for wid in gone:
                del metadata[wid]
                key = mapper.id_key_mapping.get(wid)
                if key is not None and mapper.get_id_from_key(key) == wid:
                    mapper.delete(key)
                else:  # the key now names a newer widget: keep that mapping, drop this id's
                    mapper.id_key_mapping.pop(wid, None)
            return len(gone)
    except AttributeError:  # Streamlit's internals moved: leave them be
        log.debug("widget_gc: this Streamlit has no widget metadata where 1.67 keeps it")
        return 0

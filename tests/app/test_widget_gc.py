"""lib/ui/widget_gc: a tab left open while runs come and go does not keep every card's buttons forever.

Streamlit 1.67 drops a stale widget's value but keeps its metadata and key mapping (about 1.2 KB per
button) for the life of the session; run cards key their buttons by run id, so each run that passed
through a card stayed behind in every open tab. These tests pin the premise (if Streamlit starts pruning
by itself, the first one fails: then widget_gc can go), that pruning keeps the bookkeeping bounded, and
that no widget still on the page loses its value or its callback.
"""
from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from lib.contract import VideoRequest
from lib.ledger import COMPLETED, Ledger
from tests.app.test_frame import APP


def _inner(at: AppTest):
    return at.session_state._state._state  # SessionStateProxy → SafeSessionState → SessionState


def _metadata(at: AppTest) -> int:
    return len(_inner(at)._new_widget_state.widget_metadata)


def _cards(prune: bool) -> None:
    """Five buttons keyed by a number that moves on each run, like run cards as runs come and go."""
    import streamlit as st

    from lib.ui import widget_gc

    if prune:
        widget_gc.prune()
    n = st.session_state.setdefault("n", 0)
    st.session_state.n = n + 1
    st.session_state.setdefault("clicked", [])
    st.text_input("Prompt", key="prompt")  # a widget that stays: its value must survive
    for i in range(5):
        st.button(f"card {n + i}", key=f"card_{n + i}",
                  on_click=lambda k=n + i: st.session_state.clicked.append(k))


def test_streamlit_alone_keeps_the_metadata_of_every_widget_it_ever_drew():
    at = AppTest.from_function(_cards, kwargs={"prune": False}).run()
    for _ in range(40):
        at.run()
    assert _metadata(at) >= 40, "Streamlit now prunes widget metadata itself: lib/ui/widget_gc can go"
    assert len(_inner(at)._new_widget_state.states) <= 7


def test_pruned_sessions_keep_only_the_widgets_still_there():
    at = AppTest.from_function(_cards, kwargs={"prune": True}).run()
    at.text_input(key="prompt").set_value("a heron at dawn").run()
    for _ in range(40):
        at.run()
    inner = _inner(at)
    assert _metadata(at) <= 12, _metadata(at)  # this run's 6 widgets + the ones it just dropped
    assert len(inner._key_id_mapper.id_key_mapping) <= 12
    assert at.text_input(key="prompt").value == "a heron at dawn"
    # a button drawn in the last run still calls its callback, with its own argument
    n = at.session_state.n - 1
    at.button(key=f"card_{n + 2}").click().run()
    assert at.session_state.clicked == [n + 2]


def test_compose_page_stays_the_same_size_while_runs_come_and_go(isolated):
    ledger = Ledger(f"sqlite:///{isolated / 'ledger.db'}")
    at = AppTest.from_file(APP, default_timeout=30).run()
    sizes = []
    for round_ in range(12):
        for i in range(2):
            ledger.create_run(Ledger.new_id(), VideoRequest(f"a kite over dunes, take {round_}.{i}"), 0.18)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and ledger.in_flight():
            time.sleep(0.1)
        at.run()
        sizes.append(_metadata(at))
    assert ledger.count_runs() == 24 and ledger.list_runs(limit=1)[0].state == COMPLETED
    ledger.close()
    assert not at.exception
    # from round 4 the 8 cards are full; 16 more runs passed through them. Without pruning each one
    # leaves its buttons behind (+8 a round, measured); with it the count stays where it was
    assert max(sizes[5:]) <= sizes[4] + 4, sizes

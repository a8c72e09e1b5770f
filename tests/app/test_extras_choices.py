"""Why two streamlit-extras candidates are not used (README, "streamlit-extras we use and why").

`steps` is a wizard: after its first draw it keeps the step in its own session state and ignores
`current`, so a run card drawn with it would keep showing "Queued" after the run moved on. `pagination`
is not needed: Streamlit 1.67 has st.pagination, which History uses with its SQL LIMIT/OFFSET pages.
"""
from __future__ import annotations

import streamlit as st
from streamlit.testing.v1 import AppTest


def _card_with_steps() -> None:
    import streamlit as st
    from streamlit_extras.steps import steps

    shown = steps(["Queued", "In progress", "Saving", "Done"], current=st.session_state.get("state", 0),
                  horizontal=True, key="card")
    st.caption(f"shown step {shown.current}")


def test_steps_ignores_current_after_its_first_draw() -> None:
    at = AppTest.from_function(_card_with_steps, default_timeout=30).run()
    assert not at.exception and [c.value for c in at.caption] == ["shown step 0"]
    at.session_state["state"] = 2  # the run is saving now
    at.run()
    assert [c.value for c in at.caption] == ["shown step 0"]  # still "Queued": not a way to draw state


def test_streamlit_has_its_own_pagination() -> None:
    assert callable(getattr(st, "pagination", None))  # History pages with it (tests/app/test_history_page.py)

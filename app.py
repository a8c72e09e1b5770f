"""Compose (home): write a prompt, pick the settings, generate, and watch the runs arrive.

`streamlit run app.py` first imports this file as the module `app` to find its ASGI entry (`app =
st.App(...)` below: Streamlit plus this app's own routes, i.e. the archive at /archive/…), then runs it as
the page script (`__name__ == "__main__"`) for every session, as AppTest does. Only the page run draws.
"""
from __future__ import annotations

import streamlit as st

if __name__ == "__main__":
    from lib.ledger import RunFilter
    from lib.ui import card, compose_form, frame, preset_controls, takes_strip, who

    services = frame.render("Compose", icon=":material/edit_note:")

    notes = compose_form.restore_from_request_sources(services, st.query_params)
    st.title("Compose")
    for note in notes:
        st.info(note, icon=":material/replay:")

    form_col, runs_col = st.columns([6, 5], gap="large")
    with form_col:
        preset_controls.compose_bar(services)
        compose_form.render(services)
    with runs_col:
        st.subheader("Latest runs")
        whole_team = who.team_switch(services, "compose_team")  # drawn only with sign-in: own runs first
        mine = RunFilter(owner=who.owner_filter(services, whole_team))
        card.live_runs(
            services,
            lambda: services.ledger.list_runs(mine, limit=8),
            key="compose_runs",
            draw=takes_strip.draw_runs,  # a press of several takes: one strip, played in sync
            empty="No runs yet: write a prompt and press Generate. Runs are kept in the ledger, so a reload "
                  "loses nothing.",
        )
else:
    import os

    from lib import sign_in
    from lib.ui import last_resort, routes

    # on_script_error: words instead of a traceback from a session's very first run on (lib/ui/last_resort);
    # secrets: the PLAYGROUND_OIDC_* settings as Streamlit's [auth] section, for st.login (lib/sign_in.py)
    app = st.App(__file__, routes=routes.routes(), on_script_error=last_resort.handle,
                 secrets=sign_in.app_secrets(os.environ))

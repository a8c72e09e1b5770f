"""The page shown instead of any other when the playground cannot start (a bad setting, a ledger that
cannot be opened): which setting, what is wrong, what to set, and never a traceback or a credential.

Why it is drawn from frame.render before anything else: every page starts there, and nothing else on a
page can work without the services. `st.cache_resource` keeps no result for a failed start, so each page
view tries again: a database that comes back, or a secrets.toml that is corrected, is picked up on reload.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

import streamlit as st

from lib import startup
from lib.config import Settings, load_settings
from lib.ui import state
from lib.ui.text import escape_md

if TYPE_CHECKING:
    from lib.services import Services

TITLE = "The playground cannot start"


def services_or_stop(*, public: bool = False) -> Services:
    """The process-wide Services, or this page (and st.stop()) when they cannot be started."""
    try:
        return state.services()
    except Exception as exc:  # noqa: BLE001 - any start-up failure becomes words on this page
        settings = _settings()
        problem = startup.diagnose(exc, settings)
        startup.log_failure(exc, problem, settings)
        secrets = state.secrets()
        show(problem, detailed=not public and not startup.passcode_set(os.environ, secrets))
        st.stop()


def _settings() -> Settings | None:
    """The settings again (a pure read), for the URL and folders the words name; None if they are bad."""
    try:
        return load_settings(secrets=state.secrets())
    except Exception:  # noqa: BLE001 - a bad setting is what diagnose() explains
        return None


def show(problem: startup.StartupProblem, *, detailed: bool) -> None:
    """Draw the words. `detailed=False` (a share link, or a deployment behind a passcode) names the
    setting only: what is wrong with it may say more about the server than a visitor should read."""
    st.title(TITLE)
    with st.container(key="setup_problem"):
        if not detailed:
            st.error(escape_md(
                "This playground is not set up correctly right now"
                + (f" (the setting {problem.setting})" if problem.setting else "")
                + ", so this page cannot be shown. Its owner can read what to change in the server log."),
                icon=":material/build:")
            return
        heading = f"{problem.setting}: " if problem.setting else ""
        st.error(escape_md(heading + problem.problem), icon=":material/build:")
        st.markdown("**What to do:** " + escape_md(problem.fix))
        if problem.detail:
            st.caption(escape_md(problem.detail))
        st.caption("Settings come from environment variables or .streamlit/secrets.toml. After changing "
                   "one, restart the server (streamlit run app.py) and reload this page. The details are "
                   "in the server log.")

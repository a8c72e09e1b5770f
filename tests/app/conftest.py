"""AppTest isolation shared by every page test: own data folder and ledger, a fast embedded gateway.

st.cache_resource is process-global, so services (worker, embedded gateway) are cleared and stopped
around each test; otherwise one test's runs would leak into the next one's pages.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st

from lib import passcode
from lib.ui import state

CLEARED = ("TOAPIS_API_KEY", "TOAPIS_BASE_URL", "PLAYGROUND_ARCHIVE", "PLAYGROUND_BUDGET_USD",
           "PLAYGROUND_PASSCODE", "PLAYGROUND_PUBLIC_URL")


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PLAYGROUND_DATA", str(tmp_path))
    monkeypatch.setenv("PLAYGROUND_DB_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.setenv("LOCAL_GATEWAY_SPEED", "40")
    monkeypatch.setenv("PLAYGROUND_FIRST_LOOK", "0.3")
    st.cache_resource.clear()
    st.cache_data.clear()
    passcode.reset()  # the guessing counters are process-wide on purpose: start each test with none
    yield tmp_path
    state.stop_all()
    st.cache_resource.clear()
    st.cache_data.clear()

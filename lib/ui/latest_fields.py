"""The newest kling-v3 fields' widgets (TOAPIS_CONTRACT=latest), shared by Compose and Compare.

Why one place: Sound must read the same, and name its own price, wherever it is offered, and the
duration range (every second from 3 to 15) must be the one lib.contract validates and prices.
"""
from __future__ import annotations

import streamlit as st

from lib.contract import LATEST_DURATIONS, Prices

SOUND_LABEL = "Sound"


def sound_help(prices: Prices) -> str:
    return (f"Adds an audio track to the video; billed as Sound: about ${prices.sound:g} per "
            "second on top of the mode's price (shown on its own in every estimate).")


def duration(key: str) -> None:
    """Every whole second from 3 to 15, as the newest page offers."""
    st.select_slider("Duration", LATEST_DURATIONS, key=key, format_func=lambda d: f"{d} s",
                     persist_state="session",  # kept across pages, like every other setting
                     help="3 to 15 s, every whole second (the newest kling-v3 page). Frames and reference "
                          "images work at every duration.")


def sound(key: str, prices: Prices) -> None:
    st.toggle(SOUND_LABEL, key=key, help=sound_help(prices), persist_state="session")

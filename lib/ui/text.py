"""User text (prompts) shown as plain text, never as Markdown or HTML.

Why: a prompt like "**bold** <img src=x> :red[hi]" must show exactly those characters. Where a
Markdown-only element is unavoidable (toasts, badges, captions) every ASCII punctuation character is
backslash-escaped, which CommonMark defines as a literal character.
"""
from __future__ import annotations

import re
import string

_PUNCT = set(string.punctuation)


def escape_md(text: str) -> str:
    """Escape `text` so Streamlit's Markdown shows it literally (newlines kept as spaces)."""
    out = []
    for ch in text.replace("\r", " ").replace("\n", " "):
        out.append("\\" + ch if ch in _PUNCT else ch)
    return "".join(out)


def shorten(text: str, limit: int = 60) -> str:
    """One line, at most `limit` characters, for titles and toasts."""
    one = " ".join((text or "").split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


def unescape_md(text: str) -> str:
    """What a reader sees of escape_md's output (tests compare against plain sentences)."""
    return re.sub(r"\\(.)", r"\1", text or "")

"""One tolerant reader for every page's query string (Compose, Compare, the share view).

Why one reader: a link is typed, pasted, cut short and forged by anyone, and Streamlit hands a page the
raw strings: repeated keys, digits Python's `str.isdigit` and `int()` accept but we do not ("²", "٥"),
numbers thousands of digits long, NUL bytes (PostgreSQL refuses them in text), `../`, markup. Pages
read their parameters only through `QueryReader`'s typed getters, which return a clean value or the
default and write one short note in words for each value they left out. Nothing here raises on input,
and notes never repeat the value they refused (a note is shown on the page; the value may be hostile).
"""
from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

# Anything longer is cut before any other work (Streamlit itself drops query strings over 512 KiB).
MAX_VALUE_CHARS = 20_000
MAX_NOTES = 8
# Run and group ids are secrets.token_urlsafe(16) (22 characters); accept a little either side, nothing else.
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{8,64}")
_ASCII_INT = re.compile(r"[0-9]+")          # [0-9] is ASCII only; \d would accept "٥"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")   # C0 controls and DEL, except \t \n \r
_LINE_BREAKS = re.compile(r"[\t\r\n]+")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def is_id(value: Any) -> bool:
    """A run or group id: 8 to 64 ASCII letters, digits, `-` or `_` (no room for a path or a query)."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def ascii_int(value: Any, *, max_digits: int = 9) -> int | None:
    """A whole number written only with ASCII digits (at most `max_digits`), else None.

    `int()` accepts "٥" and " 5\\n", `str.isdigit()` accepts "²" (which `int()` then refuses), and a
    5,000-digit string makes `int()` raise: this accepts exactly what a person means by a number.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 10 ** max_digits else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not 0 < len(text) <= max_digits or _ASCII_INT.fullmatch(text) is None:
        return None
    return int(text)


def clean_text(value: str, *, multiline: bool = True) -> str:
    """Control characters removed (NUL included); on one line, tabs and line breaks become spaces."""
    text = _CONTROL.sub("", value)
    return text if multiline else _LINE_BREAKS.sub(" ", text)


def _as_lists(source: Any) -> dict[str, list[str]]:
    """{key: [values]} from st.query_params (repeated keys kept), a Mapping, or (key, value) pairs."""
    out: dict[str, list[str]] = {}
    if source is None:
        return out
    if hasattr(source, "get_all") and hasattr(source, "keys"):   # st.query_params
        items: Iterable[tuple[Any, Any]] = [(k, source.get_all(k)) for k in list(source.keys())]
    elif isinstance(source, Mapping):
        items = source.items()
    else:
        items = source
    for key, value in items:
        if not isinstance(key, str) or not key:
            continue  # an empty key (`?=x`) names nothing
        values = value if isinstance(value, list | tuple) else [value]
        kept = [str(v)[:MAX_VALUE_CHARS] for v in values if v is not None]
        if kept:
            out.setdefault(key, []).extend(kept)
    return out


class QueryReader:
    """Typed, tolerant getters over one query string; `notes` says what was left out and why."""

    def __init__(self, source: Any = None) -> None:
        self._values = _as_lists(source)
        self.notes: list[str] = []
        self.used: list[str] = []   # keys read: pages drop these from the URL once applied

    def __repr__(self) -> str:
        return f"QueryReader(keys={sorted(self._values)!r}, notes={len(self.notes)})"

    # ------------------------------------------------------------------ plumbing
    def note(self, text: str) -> None:
        if text not in self.notes and len(self.notes) < MAX_NOTES:
            self.notes.append(text)

    def has(self, key: str) -> bool:
        """The key is in the link, with or without a value."""
        return key in self._values

    def keys(self) -> list[str]:
        return list(self._values)

    def first(self, key: str, *, label: str | None = None) -> str | None:
        """The first value of `key` (None when absent); a repeated key with other values gets a note."""
        values = self._values.get(key)
        if not values:
            return None
        if key not in self.used:
            self.used.append(key)
        if len(set(values)) > 1:
            self.note(f"The link gives the {label or key} more than once; the first one is used.")
        return values[0]

    def _all(self, key: str) -> list[str]:
        """Every comma-separated item of every value of `key` (repeated keys add up: ?modes=std&modes=pro)."""
        if key in self._values and key not in self.used:
            self.used.append(key)
        items: list[str] = []
        for value in self._values.get(key, ()):
            items += [part.strip() for part in value.split(",") if part.strip()]
        return items[:64]  # a list longer than any valid one is not worth reading

    # ------------------------------------------------------------------ getters
    def text(self, key: str, *, max_chars: int, label: str | None = None, multiline: bool = False,
             default: str | None = None) -> str | None:
        """The text as given, control characters removed, cut to `max_chars` (with a note)."""
        raw = self.first(key, label=label)
        if raw is None:
            return default
        text = clean_text(raw, multiline=multiline)
        if text != raw and _CONTROL.search(raw):
            self.note(f"Control characters were removed from the {label or key} in the link.")
        if len(text) > max_chars:
            self.note(f"The {label or key} in the link was {len(text):,} characters; it was cut to "
                      f"{max_chars:,}.")
            text = text[:max_chars]
        return text

    def choice(self, key: str, options: Sequence[str], *, label: str | None = None,
               default: str | None = None) -> str | None:
        """One of `options` (case-insensitive), else the default with a note."""
        raw = self.first(key, label=label)
        if raw is None or not raw.strip():
            return default
        found = _match(raw, options)
        if found is None:
            self.note(f"The {label or key} in the link is not one of {_or(options)}; it was left out.")
            return default
        return found

    def choices(self, key: str, options: Sequence[str], *, label: str | None = None) -> tuple[str, ...]:
        """The known items of a comma-separated list, in the given order, each once; a note for the rest."""
        picked: list[str] = []
        unknown = 0
        for item in self._all(key):
            found = _match(item, options)
            if found is None:
                unknown += 1
            elif found not in picked:
                picked.append(found)
        if unknown:
            self.note(f"{_count(unknown, 'value')} of the {label or key} in the link "
                      f"{'is' if unknown == 1 else 'are'} not one of {_or(options)} and "
                      f"{'was' if unknown == 1 else 'were'} left out.")
        return tuple(picked)

    def integer(self, key: str, *, allowed: Collection[int] | None = None, label: str | None = None,
                max_digits: int = 4, default: int | None = None) -> int | None:
        """A whole number in plain ASCII digits (and in `allowed` when given), else the default + a note."""
        raw = self.first(key, label=label)
        if raw is None or not raw.strip():
            return default
        value = ascii_int(raw, max_digits=max_digits)
        if value is None:
            self.note(f"The {label or key} in the link is not a whole number; it was left out.")
            return default
        if allowed is not None and value not in allowed:
            self.note(f"The {label or key} in the link is not one of {_or(allowed)}; it was left out.")
            return default
        return value

    def integers(self, key: str, allowed: Collection[int], *, label: str | None = None) -> tuple[int, ...]:
        """The allowed whole numbers of a comma-separated list, each once, in the given order."""
        picked: list[int] = []
        unknown = 0
        for item in self._all(key):
            value = ascii_int(item, max_digits=4)
            if value is None or value not in allowed:
                unknown += 1
            elif value not in picked:
                picked.append(value)
        if unknown:
            self.note(f"{_count(unknown, 'value')} of the {label or key} in the link "
                      f"{'is' if unknown == 1 else 'are'} not one of {_or(allowed)} and "
                      f"{'was' if unknown == 1 else 'were'} left out.")
        return tuple(picked)

    def ident(self, key: str, *, label: str | None = None, quiet: bool = False) -> str | None:
        """A run or group id (see `is_id`), else None; `quiet` when the page says "not found" itself."""
        raw = self.first(key, label=label)
        if raw is None:
            return None
        value = raw.strip()
        if is_id(value):
            return value
        if not quiet:
            self.note(f"The {label or key} in the link is not a valid id; it was left out.")
        return None

    def flag(self, key: str, *, label: str | None = None, default: bool | None = None) -> bool | None:
        """true/false, yes/no, on/off, 1/0; anything else is the default with a note."""
        raw = self.first(key, label=label)
        if raw is None or not raw.strip():
            return default
        word = raw.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        self.note(f"The {label or key} in the link is not true or false; it was left out.")
        return default


def reader(source: Any) -> QueryReader:
    """`source` itself when it is a QueryReader (a page collects every note in one place), else a new one."""
    return source if isinstance(source, QueryReader) else QueryReader(source)


def _match(item: str, options: Sequence[str]) -> str | None:
    text = item.strip()
    if text in options:
        return text
    lowered = text.lower()
    return next((o for o in options if str(o).lower() == lowered), None)


def _or(options: Iterable[Any]) -> str:
    shown = [str(o) for o in options]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"

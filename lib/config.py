"""Settings from the environment (or st.secrets passed in by lib/ui), read once and frozen.

Why one place: the API key must stay out of every repr, log line and URL, and every module must agree on
where data lives and whether the embedded local gateway is in use. Bad values fail here, in words, at
start-up instead of deep inside a request.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lib.contract import Prices
from lib.passcode import check_length
from lib.presses import DEFAULT_WINDOW, MAX_WINDOW, MIN_WINDOW

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASE_URL = "https://toapis.com"
LOCAL_API_KEY = "local-playground"  # the bearer token sent to a local gateway when no key is set
DEFAULT_FIRST_LOOK = 5.0            # api-contract §7.2: "Initial wait: 5 seconds"
DEFAULT_RUN_DEADLINE_MIN = 30.0     # minutes from submit until an unfinished run is "timed out"
MAX_RUN_DEADLINE_MIN = 1440.0       # the gateway keeps a task 24 h: a later deadline would never come


@dataclass(frozen=True, repr=False)
class Settings:
    """Everything the app needs to start; `api_key` and `passcode` never appear in repr()."""

    api_key: str | None = field(repr=False)
    base_url: str | None
    data_dir: Path
    db_url: str = field(repr=False)      # may hold a database password: shown masked by __repr__
    archive_dir: Path
    budget_usd: float | None = None
    local_speed: float = 1.0
    prices: Prices = field(default_factory=Prices)
    passcode: str | None = field(default=None, repr=False)
    first_look: float = DEFAULT_FIRST_LOOK
    file_hosts: tuple[str, ...] = ()     # PLAYGROUND_FILE_HOSTS: the only hosts videos are archived from
    run_deadline: float = DEFAULT_RUN_DEADLINE_MIN * 60  # seconds (PLAYGROUND_RUN_DEADLINE is in minutes)
    press_window: float = DEFAULT_WINDOW  # a repeat of a press within this many seconds is the same press
    public_url: str | None = None        # PLAYGROUND_PUBLIC_URL: the origin demo links' previews name

    def __repr__(self) -> str:
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr]
        shown.insert(3, f"db_url={mask_db_url(self.db_url)!r}")
        return f"Settings({', '.join(shown)})"

    __str__ = __repr__

    @property
    def uses_local_gateway(self) -> bool:
        """No key means no real gateway: the embedded one (base_url None) or one the user points at."""
        return not self.api_key

    @property
    def bearer_key(self) -> str:
        """The token to send: the real key, or the local gateway's fixed token."""
        return self.api_key or LOCAL_API_KEY


class SettingError(ValueError):
    """A setting that cannot be used. str() is the sentence naming it, what it must be and what it is;
    `name` and `fix` let the set-up page (lib/ui/setup_page.py) say which one and what to set."""

    def __init__(self, name: str, message: str, fix: str) -> None:
        super().__init__(message)
        self.name = name
        self.fix = fix


def mask_db_url(url: str) -> str:
    """The ledger URL with any password replaced by ***, for logs and the UI."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # e.g. an unclosed "[" in the host: show nothing of it rather than a password
        return "(a URL that cannot be read)"
    if not password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def gateway_label(settings: Settings) -> str:
    """Plain words for the sidebar: a newcomer must know whether clicks cost money."""
    if settings.uses_local_gateway:
        return "Local gateway — synthetic videos"
    return "ToAPIs gateway (real, billed)"


class _Source:
    """Environment first, then secrets; empty strings count as unset."""

    def __init__(self, env: Mapping[str, str], secrets: Mapping[str, Any]) -> None:
        self.env = env
        self.secrets = secrets

    def get(self, name: str) -> str | None:
        for source in (self.env, self.secrets):
            try:
                value = source.get(name)
            except (KeyError, AttributeError, TypeError):
                value = None
            if value is None or isinstance(value, Mapping):
                continue
            text = str(value).strip()
            if text:
                return text
        return None


def _number(
    src: _Source, name: str, default: float | None, *, what: str, positive: bool = False,
    unset: str = "to use the default",
) -> float | None:
    raw = src.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        need = "a positive number" if positive else "a number of 0 or more"
        raise SettingError(name, f"{name} must be {need} ({what}), but it is {raw!r}.",
                           f"Set {name} to {need} ({what}), or remove it {unset}.")
    return value


def _deadline(src: _Source) -> float:
    """PLAYGROUND_RUN_DEADLINE in minutes (fractions allowed, for tests and demos) -> seconds."""
    name = "PLAYGROUND_RUN_DEADLINE"
    minutes = _number(src, name, DEFAULT_RUN_DEADLINE_MIN, positive=True,
                      what="minutes after submit before an unfinished run counts as timed out, e.g. 30")
    assert minutes is not None
    if minutes > MAX_RUN_DEADLINE_MIN:
        raise ValueError(f"{name} must be at most {MAX_RUN_DEADLINE_MIN:.0f} minutes (24 hours: the gateway "
                         f"forgets a task after that), but it is {src.get(name)!r}.")
    return minutes * 60
def _press_window(src: _Source) -> float:
    """Shorter than a hesitant double press would charge twice; longer than a minute blocks real retakes."""
    name = "PLAYGROUND_PRESS_WINDOW"
    what = "seconds in which pressing the same button with the same settings again counts as one press"
    value = _number(src, name, DEFAULT_WINDOW, what=f"{what}, e.g. 3", positive=True) or DEFAULT_WINDOW
    if not MIN_WINDOW <= value <= MAX_WINDOW:
        raise ValueError(f"{name} must be between {MIN_WINDOW:g} and {MAX_WINDOW:g} ({what}), "
                         f"but it is {src.get(name)!r}.")
    return value


def _path(raw: str | None, default: Path) -> Path:
    """Relative paths are taken from the repository root, so the working directory does not matter."""
    if raw is None:
        return default
    path = Path(raw).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def _base_url(raw: str | None) -> str | None:
    if raw is None:
        return None
    fix = f"Set TOAPIS_BASE_URL to the gateway's address, such as {DEFAULT_BASE_URL}, or remove it."
    try:
        parts = urlsplit(raw)
        hostname, credentials = parts.hostname, parts.username or parts.password
    except ValueError:  # e.g. "http://[oops": not a URL at all, and it may hide a password: not echoed
        raise SettingError("TOAPIS_BASE_URL", "TOAPIS_BASE_URL must be an http(s) URL such as "
                           f"{DEFAULT_BASE_URL}, but it cannot be read as a URL.", fix) from None
    if credentials:
        # Never echo it: the URL itself carries a credential.
        raise SettingError(
            "TOAPIS_BASE_URL",
            "TOAPIS_BASE_URL must not contain a user name or password; set TOAPIS_API_KEY instead.",
            "Remove the user name and password from TOAPIS_BASE_URL and put the key in TOAPIS_API_KEY.",
        )
    if parts.scheme not in ("http", "https") or not hostname:
        raise SettingError(
            "TOAPIS_BASE_URL",
            f"TOAPIS_BASE_URL must be an http(s) URL such as {DEFAULT_BASE_URL}, but it is {raw!r}.", fix,
        )
    return raw.rstrip("/")


_HOST_NAME = re.compile(r"^(\*\.)?[a-z0-9_](?:[a-z0-9_.-]{0,251}[a-z0-9_])?$")


def _file_hosts(raw: str | None) -> tuple[str, ...]:
    """PLAYGROUND_FILE_HOSTS: comma-separated host names; `*.example.com` allows its subdomains."""
    if raw is None:
        return ()
    hosts: list[str] = []
    for entry in (part.strip().lower() for part in raw.split(",")):
        if not entry:
            continue
        if not _HOST_NAME.match(entry) or ".." in entry or entry.startswith("."):
            shown = entry if len(entry) <= 60 else entry[:60] + "…"
            raise ValueError(
                "PLAYGROUND_FILE_HOSTS must be a comma-separated list of host names such as "
                f"files.example.com or *.cdn.example.com (no scheme, port, path or user name), but {shown!r} "
                "is not one."
            )
        if entry not in hosts:
            hosts.append(entry)
    return tuple(hosts)


def _public_url(raw: str | None) -> str | None:
    """The origin people open the app at, pinned for link previews (else taken from each request)."""
    if raw is None:
        return None
    from lib.unfurl import check_public_url  # lazy: lib.unfurl reads the ledger's names

    return check_public_url(raw)


def load_settings(env: Mapping[str, str] | None = None, secrets: Mapping[str, Any] | None = None) -> Settings:
    """Read settings; `env` defaults to os.environ and wins over `secrets` (st.secrets)."""
    src = _Source(os.environ if env is None else env, secrets or {})
    api_key = src.get("TOAPIS_API_KEY")
    base_url = _base_url(src.get("TOAPIS_BASE_URL"))
    if base_url is None and api_key:
        base_url = DEFAULT_BASE_URL
    data_dir = _path(src.get("PLAYGROUND_DATA"), REPO_ROOT / "data")
    archive_dir = _path(src.get("PLAYGROUND_ARCHIVE"), data_dir / "archive")
    db_url = src.get("PLAYGROUND_DB_URL") or f"sqlite:///{(data_dir / 'ledger.db').as_posix()}"
    passcode = src.get("PLAYGROUND_PASSCODE")
    too_short = check_length(passcode)
    if too_short:
        raise ValueError(too_short)
    defaults = Prices()
    prices = Prices(
        std=_number(src, "PLAYGROUND_PRICE_STD", defaults.std, what="USD per second of std video"),
        pro=_number(src, "PLAYGROUND_PRICE_PRO", defaults.pro, what="USD per second of pro video"),
    )
    return Settings(
        api_key=api_key,
        base_url=base_url,
        data_dir=data_dir,
        db_url=db_url,
        archive_dir=archive_dir,
        budget_usd=_number(src, "PLAYGROUND_BUDGET_USD", None, what="a spend cap in US dollars, e.g. 20",
                           unset="for no spend cap"),
        local_speed=_number(src, "LOCAL_GATEWAY_SPEED", 1.0, positive=True,
                            what="the local gateway's clock speed, e.g. 1 or 10"),
        prices=prices,
        passcode=passcode,
        first_look=_number(src, "PLAYGROUND_FIRST_LOOK", DEFAULT_FIRST_LOOK,
                           what="seconds before the first status check after submit, e.g. 5", positive=True),
        file_hosts=_file_hosts(src.get("PLAYGROUND_FILE_HOSTS")),
        run_deadline=_deadline(src),
        press_window=_press_window(src),
        public_url=_public_url(src.get("PLAYGROUND_PUBLIC_URL")),
    )

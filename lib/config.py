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
from typing import Any, overload
from urllib.parse import urlsplit

from lib.contract import CONTRACTS, V1, Prices
from lib.passcode import check_length
from lib.presses import DEFAULT_WINDOW, MAX_WINDOW, MIN_WINDOW
from lib.sign_in import SignInSettingError, auth_section
from lib.storage import S3Location

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASE_URL = "https://toapis.com"
LOCAL_API_KEY = "local-playground"  # the bearer token sent to a local gateway when no key is set
DEFAULT_FIRST_LOOK = 5.0            # docs/api-contract.md §7.2: "Initial wait: 5 seconds"
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
    local_progress: str = "fast"          # LOCAL_GATEWAY_PROGRESS: fast | realistic (lib/local_gateway)
    prices: Prices = field(default_factory=Prices)
    passcode: str | None = field(default=None, repr=False)
    first_look: float = DEFAULT_FIRST_LOOK
    file_hosts: tuple[str, ...] = ()     # PLAYGROUND_FILE_HOSTS: the only hosts videos are archived from
    run_deadline: float = DEFAULT_RUN_DEADLINE_MIN * 60  # seconds (PLAYGROUND_RUN_DEADLINE is in minutes)
    press_window: float = DEFAULT_WINDOW  # a repeat of a press within this many seconds is the same press
    sign_in: bool = False                 # an OIDC provider is configured: st.login, runs have owners
    user_budget_usd: float | None = None  # PLAYGROUND_USER_BUDGET_USD: each signed-in user's spend cap
    archive_s3: S3Location | None = None  # PLAYGROUND_ARCHIVE=s3://…: the archive is a bucket, not a folder
    worker: str = "on"                   # PLAYGROUND_WORKER: "off" = this web process sends nothing itself
    rate_limit: str = "auto"             # PLAYGROUND_RATE_LIMIT: auto, shared or process (shared_limit)
    public_url: str | None = None        # PLAYGROUND_PUBLIC_URL: the origin demo links' previews name
    contract: str = V1                    # TOAPIS_CONTRACT: which kling-v3 page the forms send (lib.contract)

    @property
    def archive_location(self) -> Path | S3Location:
        """What lib.storage.open_storage takes: the bucket when one is configured, else the folder."""
        return self.archive_s3 if self.archive_s3 is not None else self.archive_dir

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


@overload
def _number(src: _Source, name: str, default: float, *, what: str, positive: bool = False,
            unset: str = "to use the default") -> float: ...
@overload
def _number(src: _Source, name: str, default: None, *, what: str, positive: bool = False,
            unset: str = "to use the default") -> float | None: ...
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
def _local_progress(src: _Source) -> str:
    """The embedded gateway's progress model: fast (short, near-linear; tests) or realistic (minutes)."""
    name, raw = "LOCAL_GATEWAY_PROGRESS", src.get("LOCAL_GATEWAY_PROGRESS")
    if raw is None:
        return "fast"
    if raw.lower() not in ("fast", "realistic"):
        raise SettingError(name, f"{name} must be fast or realistic, but it is {raw!r}.",
                           f"Set {name} to fast (short tasks) or realistic (the real gateway's 1-3 minutes, "
                           "uneven progress), or remove it for fast.")
    return raw.lower()


def _press_window(src: _Source) -> float:
    """Shorter than a hesitant double press would charge twice; longer than a minute blocks real retakes."""
    name = "PLAYGROUND_PRESS_WINDOW"
    what = "seconds in which pressing the same button with the same settings again counts as one press"
    value = _number(src, name, DEFAULT_WINDOW, what=f"{what}, e.g. 3", positive=True) or DEFAULT_WINDOW
    if not MIN_WINDOW <= value <= MAX_WINDOW:
        raise ValueError(f"{name} must be between {MIN_WINDOW:g} and {MAX_WINDOW:g} ({what}), "
                         f"but it is {src.get(name)!r}.")
    return value


def _sign_in(src: _Source, *, env: Mapping[str, str],
             secrets: Mapping[str, Any]) -> tuple[bool, float | None]:
    """(sign-in configured, per-user cap). A per-user cap without sign-in would be silently ignored (every
    run is the team's), so it is refused in words instead."""
    try:
        section = auth_section(env, secrets)
    except SignInSettingError as exc:
        raise SettingError(exc.name, str(exc), exc.fix) from None
    name = "PLAYGROUND_USER_BUDGET_USD"
    cap = _number(src, name, None, positive=True, unset="for no per-user cap",
                  what="each signed-in user's spend cap in US dollars, e.g. 5")
    if cap is not None and section is None:
        raise SettingError(
            name, f"{name} caps each signed-in user's spend, but sign-in is not set up, so every run belongs "
                  "to the whole team and the cap could never apply.",
            "Set up sign-in (the PLAYGROUND_OIDC_* settings or an [auth] section in secrets.toml), or "
            f"remove {name} and use PLAYGROUND_BUDGET_USD for the team's cap.")
    return section is not None, cap


WORKER_CHOICES = ("on", "off")
RATE_LIMIT_CHOICES = ("auto", "shared", "process")


def _choice(src: _Source, name: str, choices: tuple[str, ...], default: str, what: str) -> str:
    """A setting that is one of a few words; anything else is refused, naming the words."""
    raw = src.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value not in choices:
        words = " or ".join(repr(c) for c in choices)
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise SettingError(name, f"{name} must be {words} ({what}), but it is {shown!r}.",
                           f"Set {name} to {words}, or remove it to use {default!r}.")
    return value


def _contract(raw: str | None) -> str:
    """TOAPIS_CONTRACT: v1 (the seed page, the default) or latest (Sound, 3–15 s, reference images)."""
    if raw is None:
        return V1
    value = raw.strip().lower()
    if value not in CONTRACTS:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise SettingError("TOAPIS_CONTRACT", f"TOAPIS_CONTRACT must be v1 or latest, but it is {shown!r}.",
                           "Set TOAPIS_CONTRACT=v1 to send only the seed page's fields, or "
                           "TOAPIS_CONTRACT=latest to offer Sound, 3–15 s and reference images; or remove "
                           "it to use v1.")
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


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_ACCESS_KEY_ID = re.compile(r"^[A-Za-z0-9_+=,.@/-]{3,128}$")
_S3_ENV = ("PLAYGROUND_S3_ENDPOINT", "PLAYGROUND_S3_REGION")
ARCHIVE_FIX = ("Set PLAYGROUND_ARCHIVE to a folder (an absolute path, or one relative to the checkout), or "
               "to s3://bucket/prefix with PLAYGROUND_S3_ENDPOINT for a store other than AWS S3; or remove "
               "it to use data/archive.")


def _archive_s3(src: _Source) -> S3Location | None:
    """PLAYGROUND_ARCHIVE=s3://bucket/prefix with its endpoint, region and credentials, checked here.

    The secret is never echoed (nor the whole archive URL once it holds a user name or password); the
    access keys are optional together (boto3's own chain, e.g. an instance role, is used then)."""
    raw = src.get("PLAYGROUND_ARCHIVE")
    if raw is None or "://" not in raw:
        stray = [name for name in _S3_ENV if src.get(name)]
        if stray:
            raise SettingError(stray[0], f"{stray[0]} is set, but PLAYGROUND_ARCHIVE is not an s3:// "
                               "location, so it would be ignored.",
                               f"Set PLAYGROUND_ARCHIVE=s3://bucket/prefix to use it, or remove {stray[0]}.")
        return None
    name = "PLAYGROUND_ARCHIVE"
    try:
        parts = urlsplit(raw)
        has_login = bool(parts.username or parts.password)
        has_port = parts.port is not None
    except ValueError:
        raise SettingError(name, f"{name} cannot be read as a folder or as s3://bucket/prefix.",
                           ARCHIVE_FIX) from None
    if has_login or "@" in raw:  # "@" on the text too: a secret with a "/" in it hides from urlsplit
        raise SettingError(name, f"{name} must not contain a user name or password; the access key goes "
                           "in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.",
                           "Remove the user name and password from PLAYGROUND_ARCHIVE and set "
                           "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead.")
    shown = raw if len(raw) <= 80 else raw[:80] + "…"
    if parts.scheme.lower() != "s3":
        raise SettingError(name, f"{name} must be a folder or an s3://bucket/prefix location, but it is "
                           f"{shown!r} ({parts.scheme}:// stores are not supported).", ARCHIVE_FIX)
    if parts.query or parts.fragment or has_port:
        raise SettingError(name, f"{name} must be s3://bucket/prefix with no port, ?query or #fragment, "
                           f"but it is {shown!r}; the store's address goes in PLAYGROUND_S3_ENDPOINT.",
                           ARCHIVE_FIX)
    bucket = parts.netloc
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise SettingError(name, f"{name} names the bucket {bucket!r}, which is not a valid bucket name "
                           "(3 to 63 lower-case letters, digits, dots or dashes, starting and ending with "
                           "a letter or digit).", ARCHIVE_FIX)
    prefix = parts.path.strip("/")
    segments = prefix.split("/") if prefix else []
    if len(prefix) > 200 or not all(_PREFIX_SEGMENT.match(seg) for seg in segments):
        raise SettingError(name, f"The prefix in {name} ({prefix[:80]!r}) must be folder names made of "
                           "letters, digits, '_', '-' and '.', separated by '/', none starting with a dot.",
                           ARCHIVE_FIX)
    return S3Location(bucket=bucket, prefix=prefix, endpoint_url=_s3_endpoint(src.get(_S3_ENV[0])),
                      region=_s3_region(src), **_s3_keys(src))


def _s3_endpoint(raw: str | None) -> str | None:
    name = "PLAYGROUND_S3_ENDPOINT"
    if raw is None:
        return None
    fix = (f"Set {name} to the S3 server's address, such as http://127.0.0.1:8333 or "
           "https://s3.eu-central-1.amazonaws.com, or remove it to use AWS S3.")
    if "@" in raw:  # checked on the text itself: a secret with a "/" in it would hide from urlsplit
        raise SettingError(name, f"{name} must not contain a user name or password; set "
                           "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead.", fix)
    try:
        parts = urlsplit(raw)
        hostname, _port = parts.hostname, parts.port  # reading the port checks it is a number in range
    except ValueError:
        raise SettingError(name, f"{name} must be an http(s) address, but it cannot be read as a URL.",
                           fix) from None
    if parts.scheme not in ("http", "https") or not hostname or parts.query or parts.fragment \
            or parts.path.strip("/"):
        shown = raw if len(raw) <= 80 else raw[:80] + "…"
        raise SettingError(name, f"{name} must be the http(s) address of an S3 server with no path, such "
                           f"as http://127.0.0.1:8333, but it is {shown!r}.", fix)
    return raw.rstrip("/")


def _s3_region(src: _Source) -> str:
    for name in ("PLAYGROUND_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"):
        raw = src.get(name)
        if raw is None:
            continue
        if not _REGION.match(raw):
            raise SettingError(name, f"{name} must be a region name such as us-east-1, but it is "
                               f"{raw[:40]!r}.", f"Set {name} to the bucket's region, or remove it.")
        return raw
    return "us-east-1"


def _s3_keys(src: _Source) -> dict[str, str | None]:
    key_id, secret = src.get("AWS_ACCESS_KEY_ID"), src.get("AWS_SECRET_ACCESS_KEY")
    if (key_id is None) != (secret is None):
        missing = "AWS_SECRET_ACCESS_KEY" if secret is None else "AWS_ACCESS_KEY_ID"
        raise SettingError(missing, f"{missing} is not set, but the other half of the object store's access "
                           "key is: both or neither are needed.",
                           f"Set {missing} too, or remove both to use the machine's own AWS credentials.")
    if key_id is not None and not _ACCESS_KEY_ID.match(key_id):
        raise SettingError("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID must be an access key id (letters and "
                           "digits, no spaces), but it is not one.", "Set AWS_ACCESS_KEY_ID to the key id "
                           "your S3 store gave you.")
    if secret is not None and (len(secret) > 256 or not all(ch.isprintable() and not ch.isspace()
                                                            for ch in secret)):
        raise SettingError("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY contains spaces or characters a "
                           "secret key never has (it is not shown here).",
                           "Copy the secret access key again, without spaces or line breaks.")
    return {"access_key_id": key_id, "secret_access_key": secret}


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
    archive_s3 = _archive_s3(src)
    archive_dir = data_dir / "archive" if archive_s3 else _path(src.get("PLAYGROUND_ARCHIVE"),
                                                                 data_dir / "archive")
    db_url = src.get("PLAYGROUND_DB_URL") or f"sqlite:///{(data_dir / 'ledger.db').as_posix()}"
    passcode = src.get("PLAYGROUND_PASSCODE")
    too_short = check_length(passcode)
    if too_short:
        raise ValueError(too_short)
    sign_in, user_budget = _sign_in(src, env=src.env, secrets=secrets or {})
    defaults = Prices()
    prices = Prices(
        std=_number(src, "PLAYGROUND_PRICE_STD", defaults.std, what="USD per second of std video"),
        pro=_number(src, "PLAYGROUND_PRICE_PRO", defaults.pro, what="USD per second of pro video"),
        sound=_number(src, "PLAYGROUND_PRICE_SOUND", defaults.sound,
                      what="USD per second added when Sound is on"),
    )
    worker = _choice(src, "PLAYGROUND_WORKER", WORKER_CHOICES, "on",
                     "whether this web process runs its own worker; 'off' when `python -m lib.worker` runs "
                     "separately")
    if worker == "off" and not api_key and base_url is None:
        raise SettingError(
            "PLAYGROUND_WORKER",
            "PLAYGROUND_WORKER is 'off', but no gateway every process can reach is set: this process would "
            "start its own built-in gateway, which a separate worker cannot see, so runs would never be "
            "sent.",
            "Set TOAPIS_API_KEY (ToAPIs), or run `python -m lib.local_gateway --port 8765` and set "
            "TOAPIS_BASE_URL=http://127.0.0.1:8765; or remove PLAYGROUND_WORKER to run the worker here.",
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
        local_progress=_local_progress(src),
        prices=prices,
        passcode=passcode,
        first_look=_number(src, "PLAYGROUND_FIRST_LOOK", DEFAULT_FIRST_LOOK,
                           what="seconds before the first status check after submit, e.g. 5", positive=True),
        file_hosts=_file_hosts(src.get("PLAYGROUND_FILE_HOSTS")),
        run_deadline=_deadline(src),
        press_window=_press_window(src),
        archive_s3=archive_s3,
        sign_in=sign_in,
        user_budget_usd=user_budget,
        worker=worker,
        rate_limit=_choice(src, "PLAYGROUND_RATE_LIMIT", RATE_LIMIT_CHOICES, "auto",
                           "one gateway rate limit shared by every process on the ledger, or one per "
                           "process; 'auto' shares it on PostgreSQL or when the worker runs separately"),
        public_url=_public_url(src.get("PLAYGROUND_PUBLIC_URL")),
        contract=_contract(src.get("TOAPIS_CONTRACT")),
    )

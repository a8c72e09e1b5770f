"""Whether sign-in (OIDC through Streamlit's st.login) is configured, and its settings checked in words.

Why its own module: Streamlit reads the provider from the `[auth]` section of st.secrets, and this app
is otherwise configured by environment variables. Both work: an `[auth]` section in
.streamlit/secrets.toml is used as Streamlit documents it, and the PLAYGROUND_OIDC_* variables are
turned into that section by app.py (`st.App(secrets=...)`), so a container or a team script needs no
secrets file. Streamlit itself would only fail at the first press of "Sign in" with a bare error; here
a missing or malformed value stops the app at start-up with the setting's name and what to set.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

# environment variable -> key of Streamlit's [auth] section
ENV_KEYS = {
    "PLAYGROUND_OIDC_METADATA_URL": "server_metadata_url",
    "PLAYGROUND_OIDC_CLIENT_ID": "client_id",
    "PLAYGROUND_OIDC_CLIENT_SECRET": "client_secret",
    "PLAYGROUND_OIDC_REDIRECT_URI": "redirect_uri",
    "PLAYGROUND_OIDC_COOKIE_SECRET": "cookie_secret",
}
REQUIRED = ("server_metadata_url", "client_id", "client_secret", "redirect_uri", "cookie_secret")
MIN_COOKIE_SECRET = 32  # it signs the session cookie: a short one could be guessed offline
CALLBACK_PATH = "/oauth2callback"  # the route Streamlit serves for the provider's answer


class SignInSettingError(ValueError):
    """A sign-in setting that cannot be used; `name` is the variable (or secrets key) to fix."""

    def __init__(self, name: str, message: str, fix: str) -> None:
        super().__init__(message)
        self.name = name
        self.fix = fix


def _env_section(env: Mapping[str, str]) -> dict[str, str]:
    return {key: env[name].strip() for name, key in ENV_KEYS.items() if (env.get(name) or "").strip()}


def _name(key: str, from_env: bool) -> str:
    if from_env:
        return next(name for name, k in ENV_KEYS.items() if k == key)
    return f"[auth] {key} in .streamlit/secrets.toml"


def _http(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def auth_section(env: Mapping[str, str], secrets: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The `[auth]` section sign-in uses (environment first, then secrets), checked; None when sign-in
    is not configured at all. Raises SignInSettingError naming the setting when it is half set up."""
    from_env = _env_section(env)
    raw = (secrets or {}).get("auth") if secrets is not None else None
    from_secrets = {str(k): v for k, v in raw.items()} if isinstance(raw, Mapping) else {}
    if not from_env and not from_secrets:
        return None
    use_env = bool(from_env)
    section = from_env if use_env else from_secrets
    for key in REQUIRED:
        value = section.get(key)
        if not isinstance(value, str) or not value.strip():
            name = _name(key, use_env)
            raise SignInSettingError(
                name, f"Sign-in is partly set up: {name} is missing. Sign-in needs all of "
                      f"{', '.join(_name(k, use_env) for k in REQUIRED)}.",
                f"Set {name}, or remove the other sign-in settings to run without sign-in.")
    for key in ("server_metadata_url", "redirect_uri"):
        if not _http(section[key]):
            name = _name(key, use_env)
            raise SignInSettingError(name, f"{name} must be an http(s) address, but it is not one.",
                                     f"Set {name} to a full address such as https://example.com/….")
    if not urlsplit(section["redirect_uri"]).path.endswith(CALLBACK_PATH):
        name = _name("redirect_uri", use_env)
        raise SignInSettingError(
            name, f"{name} must end with {CALLBACK_PATH} (the address Streamlit answers the provider on).",
            f"Set {name} to this app's address followed by {CALLBACK_PATH}, e.g. "
            f"http://127.0.0.1:8501{CALLBACK_PATH}, and register the same address with the provider.")
    if len(section["cookie_secret"]) < MIN_COOKIE_SECRET:
        name = _name("cookie_secret", use_env)
        raise SignInSettingError(
            name, f"{name} has {len(section['cookie_secret'])} characters; it signs the sign-in cookie and "
                  f"must have at least {MIN_COOKIE_SECRET} so that it cannot be guessed.",
            f"Set {name} to a long random string (e.g. the output of python -c \"import secrets; "
            "print(secrets.token_hex(32))\"), the same on every app process.")
    return dict(section)


def app_secrets(env: Mapping[str, str]) -> dict[str, Any] | None:
    """What app.py hands to st.App(secrets=…): the [auth] section built from PLAYGROUND_OIDC_*, or None
    (no variables, or unusable ones: load_settings then says what is wrong on the set-up page)."""
    if not _env_section(env):
        return None
    try:
        section = auth_section(env)
    except SignInSettingError:
        return None
    return {"auth": section} if section else None


def provider_answers(metadata_url: str, timeout: float = 3.0) -> bool:
    """Whether the provider's discovery document can be read now. Why ask: when it cannot, Streamlit's
    sign-in route answers a bare "Authentication error" page; the sign-in screen says so in words first."""
    import requests  # only needed once a sign-in screen is drawn

    try:
        answer = requests.get(metadata_url, timeout=timeout, allow_redirects=False)
        return answer.status_code == 200 and "authorization_endpoint" in answer.json()
    except (requests.RequestException, ValueError):
        return False

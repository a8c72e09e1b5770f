"""Settings: defaults, env-over-secrets, numbers refused in words, and a key that never shows."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lib.config import (
    LOCAL_API_KEY,
    REPO_ROOT,
    Settings,
    load_settings,
    mask_db_url,
)
from lib.contract import Prices

KEY = "sk-live-0123456789abcdef"
BUDGET = "PLAYGROUND_BUDGET_USD must be a number of 0 or more (a spend cap in US dollars, e.g. 20),"


def test_repo_root_is_parent_of_lib() -> None:
    assert (REPO_ROOT / "lib" / "config.py").is_file()


def test_defaults_with_empty_environment() -> None:
    s = load_settings({}, {})
    data = REPO_ROOT / "data"
    assert s.api_key is None
    assert s.base_url is None
    assert s.data_dir == data
    assert s.db_url == f"sqlite:///{data / 'ledger.db'}"
    assert s.db_url.startswith("sqlite:////")  # absolute path: four slashes
    assert s.archive_dir == data / "archive"
    assert s.budget_usd is None
    assert s.local_speed == 1.0
    assert s.prices == Prices(std=0.0368, pro=0.0625)
    assert s.passcode is None
    assert s.first_look == 5.0
    assert s.uses_local_gateway is True
    assert s.bearer_key == LOCAL_API_KEY == "local-playground"


def test_key_selects_the_real_gateway() -> None:
    s = load_settings({"TOAPIS_API_KEY": f"  {KEY}\n"})
    assert s.api_key == KEY
    assert s.base_url == "https://toapis.com"
    assert s.uses_local_gateway is False
    assert s.bearer_key == KEY


def test_base_url_without_key_is_a_local_gateway() -> None:
    s = load_settings({"TOAPIS_BASE_URL": "http://127.0.0.1:8765/"})
    assert s.base_url == "http://127.0.0.1:8765"
    assert s.uses_local_gateway is True
    assert s.bearer_key == LOCAL_API_KEY


def test_key_with_custom_base_url() -> None:
    s = load_settings({"TOAPIS_API_KEY": KEY, "TOAPIS_BASE_URL": "https://gw.example.com/"})
    assert (s.base_url, s.uses_local_gateway) == ("https://gw.example.com", False)


def test_every_variable_is_read() -> None:
    s = load_settings({
        "PLAYGROUND_DATA": "/tmp/pg-data",
        "PLAYGROUND_DB_URL": "postgresql+psycopg://pg@db/ledger",
        "PLAYGROUND_ARCHIVE": "/srv/archive",
        "PLAYGROUND_BUDGET_USD": "12.5",
        "LOCAL_GATEWAY_SPEED": "20",
        "PLAYGROUND_PRICE_STD": "0.05",
        "PLAYGROUND_PRICE_PRO": "0.1",
        "PLAYGROUND_PASSCODE": "open sesame, friend",
        "PLAYGROUND_FIRST_LOOK": "0.5",
    })
    assert s.data_dir == Path("/tmp/pg-data")
    assert s.db_url == "postgresql+psycopg://pg@db/ledger"
    assert s.archive_dir == Path("/srv/archive")
    assert s.budget_usd == 12.5
    assert s.local_speed == 20.0
    assert s.prices == Prices(std=0.05, pro=0.1)
    assert s.passcode == "open sesame, friend"
    assert s.first_look == 0.5


def test_data_dir_moves_db_and_archive_with_it(tmp_path: Path) -> None:
    s = load_settings({"PLAYGROUND_DATA": str(tmp_path)})
    assert s.archive_dir == tmp_path / "archive"
    assert s.db_url == f"sqlite:///{tmp_path}/ledger.db"


def test_relative_paths_are_from_the_repo_root() -> None:
    s = load_settings({"PLAYGROUND_DATA": "var/data", "PLAYGROUND_ARCHIVE": "var/arch"})
    assert s.data_dir == REPO_ROOT / "var" / "data"
    assert s.archive_dir == REPO_ROOT / "var" / "arch"


def test_environment_wins_over_secrets() -> None:
    secrets = {"TOAPIS_API_KEY": "sk-from-secrets", "PLAYGROUND_BUDGET_USD": 3,
               "PLAYGROUND_PASSCODE": "secret from toml"}
    s = load_settings({"TOAPIS_API_KEY": KEY, "PLAYGROUND_BUDGET_USD": "7"}, secrets)
    assert s.api_key == KEY
    assert s.budget_usd == 7.0
    assert s.passcode == "secret from toml"  # only in secrets: used


def test_secrets_alone_and_toml_numbers() -> None:
    s = load_settings({}, {"TOAPIS_API_KEY": KEY, "LOCAL_GATEWAY_SPEED": 4, "connections": {"sql": {}}})
    assert (s.api_key, s.local_speed) == (KEY, 4.0)


def test_empty_values_count_as_unset() -> None:
    s = load_settings({"TOAPIS_API_KEY": "", "PLAYGROUND_BUDGET_USD": "  "}, {"TOAPIS_API_KEY": KEY})
    assert s.api_key == KEY
    assert s.budget_usd is None


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYGROUND_BUDGET_USD", "42")
    monkeypatch.delenv("TOAPIS_API_KEY", raising=False)
    assert load_settings().budget_usd == 42.0


def test_zero_budget_is_allowed() -> None:
    assert load_settings({"PLAYGROUND_BUDGET_USD": "0"}).budget_usd == 0.0


@pytest.mark.parametrize(("name", "value", "message"), [
    ("PLAYGROUND_BUDGET_USD", "twenty",
     "PLAYGROUND_BUDGET_USD must be a number of 0 or more (a spend cap in US dollars, e.g. 20), "
     "but it is 'twenty'."),
    ("PLAYGROUND_BUDGET_USD", "$20",
     f"{BUDGET} but it is '$20'."),
    ("PLAYGROUND_BUDGET_USD", "-5",
     f"{BUDGET} but it is '-5'."),
    ("PLAYGROUND_BUDGET_USD", "nan",
     f"{BUDGET} but it is 'nan'."),
    ("LOCAL_GATEWAY_SPEED", "0",
     "LOCAL_GATEWAY_SPEED must be a positive number (the local gateway's clock speed, e.g. 1 or 10), "
     "but it is '0'."),
    ("LOCAL_GATEWAY_SPEED", "fast",
     "LOCAL_GATEWAY_SPEED must be a positive number (the local gateway's clock speed, e.g. 1 or 10), "
     "but it is 'fast'."),
    ("PLAYGROUND_PRICE_STD", "-1",
     "PLAYGROUND_PRICE_STD must be a number of 0 or more (USD per second of std video), but it is '-1'."),
    ("PLAYGROUND_PRICE_PRO", "inf",
     "PLAYGROUND_PRICE_PRO must be a number of 0 or more (USD per second of pro video), but it is 'inf'."),
    ("PLAYGROUND_FIRST_LOOK", "0",
     "PLAYGROUND_FIRST_LOOK must be a positive number (seconds before the first status check after submit, "
     "e.g. 5), but it is '0'."),
    ("TOAPIS_BASE_URL", "toapis.com",
     "TOAPIS_BASE_URL must be an http(s) URL such as https://toapis.com, but it is 'toapis.com'."),
    ("TOAPIS_BASE_URL", "ftp://toapis.com",
     "TOAPIS_BASE_URL must be an http(s) URL such as https://toapis.com, but it is 'ftp://toapis.com'."),
])
def test_bad_values_are_refused_in_words(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        load_settings({name: value})
    assert str(info.value) == message


def test_credentials_in_base_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError) as info:
        load_settings({"TOAPIS_BASE_URL": "https://user:hunter2@toapis.com"})
    assert "hunter2" not in str(info.value)
    assert "set TOAPIS_API_KEY instead" in str(info.value)


def test_key_and_passcode_never_in_repr_or_str() -> None:
    s = load_settings({"TOAPIS_API_KEY": KEY, "PLAYGROUND_PASSCODE": "open sesame, friend",
                       "PLAYGROUND_DB_URL": "postgresql+psycopg://app:db-pass@db:5432/ledger"})
    for text in (repr(s), str(s), f"{s}", repr([s])):
        assert KEY not in text
        assert "open sesame" not in text
        assert "db-pass" not in text
        assert "base_url='https://toapis.com'" in text
        assert "db_url='postgresql+psycopg://app:***@db:5432/ledger'" in text


@pytest.mark.parametrize("passcode", ["s3cr3t", "open-sesame", "x" * 11])
def test_a_short_passcode_is_refused_at_start_up_in_words(passcode: str) -> None:
    with pytest.raises(ValueError) as info:
        load_settings({"PLAYGROUND_PASSCODE": passcode})
    words = str(info.value)
    assert words.startswith(f"PLAYGROUND_PASSCODE is {len(passcode)} characters long; it must have at least "
                            "12 so that it cannot be guessed.")
    assert passcode not in words  # never echoed
    assert load_settings({"PLAYGROUND_PASSCODE": "x" * 12}).passcode == "x" * 12


@pytest.mark.parametrize(("url", "shown"), [
    ("sqlite:////x/ledger.db", "sqlite:////x/ledger.db"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    ("postgresql://u:p%40ss@h:5/db", "postgresql://u:***@h:5/db"),
])
def test_mask_db_url(url: str, shown: str) -> None:
    assert mask_db_url(url) == shown


def test_settings_are_frozen() -> None:
    s = load_settings({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.api_key = KEY  # type: ignore[misc]
    assert isinstance(s, Settings)

"""PLAYGROUND_WORKER and PLAYGROUND_RATE_LIMIT: read in words, refused in words, and what they choose.

Also the schema they need (migration 0004: workers, rate_buckets, rate_calls) upgrading a ledger at 0002
with its runs kept, on a real SQLite file and a real PostgreSQL; and the heartbeat's "is a worker alive".
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from lib import migrations
from lib.config import SettingError, load_settings
from lib.contract import VideoRequest
from lib.heartbeat import NO_WORKER_WORDS, STALE_AFTER, Heartbeat, no_worker_notice
from lib.ledger import Ledger
from lib.ratelimit import RateLimiter
from lib.services import make_limiter
from lib.shared_limit import SharedRateLimiter, limiter_kind

GATEWAY = {"TOAPIS_BASE_URL": "http://127.0.0.1:8765"}


def test_defaults_keep_one_process_simple() -> None:
    s = load_settings({}, {})
    assert (s.worker, s.rate_limit) == ("on", "auto")
    assert limiter_kind("sqlite", s.rate_limit, worker=s.worker) == "process"


@pytest.mark.parametrize(("backend", "setting", "worker", "kind"), [
    ("sqlite", "auto", "on", "process"),
    ("sqlite", "auto", "off", "shared"),      # a standalone worker sends beside this process
    ("postgresql", "auto", "on", "shared"),   # a team ledger: several processes on one key
    ("postgresql", "process", "on", "process"),
    ("sqlite", "shared", "on", "shared"),
])
def test_which_limiter(backend: str, setting: str, worker: str, kind: str) -> None:
    assert limiter_kind(backend, setting, worker=worker) == kind


def test_the_setting_picks_the_limiter_services_use(sqlite_url: str) -> None:
    led = Ledger(sqlite_url)
    try:
        shared = load_settings({**GATEWAY, "PLAYGROUND_WORKER": "off"})
        assert isinstance(make_limiter(shared, led, "k"), SharedRateLimiter)
        assert isinstance(make_limiter(load_settings(GATEWAY), led, "k"), RateLimiter)
    finally:
        led.close()


@pytest.mark.parametrize(("name", "value", "words"), [
    ("PLAYGROUND_WORKER", "maybe", "PLAYGROUND_WORKER must be 'on' or 'off' (whether this web process "
                                   "runs its own worker"),
    ("PLAYGROUND_RATE_LIMIT", "global", "PLAYGROUND_RATE_LIMIT must be 'auto' or 'shared' or 'process'"),
])
def test_bad_values_are_refused_in_words(name: str, value: str, words: str) -> None:
    with pytest.raises(SettingError) as info:
        load_settings({**GATEWAY, name: value})
    assert str(info.value).startswith(words) and f"but it is {value!r}" in str(info.value)
    assert info.value.name == name and "Set " + name in info.value.fix


def test_case_and_spaces_are_forgiven() -> None:
    assert load_settings({**GATEWAY, "PLAYGROUND_WORKER": " OFF "}).worker == "off"


def test_worker_off_with_the_built_in_gateway_is_refused() -> None:
    """Every process would start its own built-in gateway: a separate worker could never send a run."""
    with pytest.raises(SettingError, match="which a separate worker cannot see") as info:
        load_settings({"PLAYGROUND_WORKER": "off"})
    assert "TOAPIS_BASE_URL" in info.value.fix


def test_migration_0004_upgrades_a_0002_ledger_and_keeps_its_runs(ledger_url: str) -> None:
    if ledger_url.startswith("sqlite"):
        Path(sa.make_url(ledger_url).database or "").parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(ledger_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            command.upgrade(migrations.config(conn), "0002")
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("rate_calls")
        led = Ledger(ledger_url)  # upgrades to head
        try:
            run_id = Ledger.new_id()
            led.create_run(run_id, VideoRequest(prompt="kept across the upgrade"), 0.18)
        finally:
            led.close()
        with engine.begin() as conn:
            command.downgrade(migrations.config(conn), "0002")
        with engine.connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
        assert {"workers", "rate_buckets", "rate_calls"}.isdisjoint(names) and "runs" in names
        led = Ledger(ledger_url)
        try:
            assert led.get(run_id) is not None
            with led.engine.connect() as conn:
                assert {"workers", "rate_buckets", "rate_calls"} <= set(sa.inspect(conn).get_table_names())
        finally:
            led.close()
    finally:
        engine.dispose()


def test_the_no_worker_notice(sqlite_url: str) -> None:
    led = Ledger(sqlite_url)
    now = [time.time()]
    beat = Heartbeat(led, clock=lambda: now[0])
    try:
        assert no_worker_notice(led, beat) is None                   # nothing waits
        led.create_run(Ledger.new_id(), VideoRequest(prompt="waits"), 0.18)
        assert no_worker_notice(led, beat) is None                   # not waited long yet
        now[0] += 11
        assert no_worker_notice(led, beat) == NO_WORKER_WORDS
        beat.beat("w1", threads=4)
        assert beat.alive() == 1 and no_worker_notice(led, beat) is None
        now[0] += STALE_AFTER + 1                                     # a killed worker's row goes stale
        assert beat.alive() == 0 and no_worker_notice(led, beat) == NO_WORKER_WORDS
        beat.beat("w2", force=True)
        beat.gone("w2")                                               # a clean stop removes it at once
        assert beat.alive() == 0
    finally:
        led.close()

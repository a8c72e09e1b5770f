"""The local gateway's REALISTIC progress model: the real gateway's minutes, a queue, uneven progress with
jumps and stalls, drawn from a seed (so the same seed reads the same on every call, run and restart)."""
from __future__ import annotations

import itertools
import sqlite3
import statistics
import time
from pathlib import Path

import pytest
import requests

from lib.local_gateway import LocalGateway, clock
from lib.local_gateway.store import Store

HEADERS = {"Authorization": "Bearer test-key"}
SUBMIT = "/v1/videos/generations"


def shape(mode: str, duration: int, seed: str, speed: float = 1.0) -> clock.Timeline:
    return clock.Timeline.for_task(mode, duration, speed, f"realistic:{seed}")


def curve(tl: clock.Timeline, step: float = 0.25) -> list[tuple[float, int]]:
    """(seconds after creation, progress) as a client polling every `step` s would see it."""
    out = []
    t = 0.0
    while t < tl.total + 2:
        r = clock.read("video_X", 0.0, t, tl, rendered_at=0.0, fail=False)
        out.append((t, r.progress))
        t += step
    return out


@pytest.mark.parametrize(("mode", "duration", "typical"), [("std", 5, 80.0), ("pro", 15, 190.0)])
def test_realistic_durations_are_the_real_gateways_minutes(mode: str, duration: int, typical: float) -> None:
    totals = [shape(mode, duration, str(s)).total for s in range(300)]
    assert statistics.median(totals) == pytest.approx(typical, rel=0.05)
    assert min(totals) > 0.6 * typical and max(totals) < 1.6 * typical  # spread, not outliers
    # speed compresses every time alike (the benches' time-scale factor)
    fast = shape(mode, duration, "3", speed=10.0).total
    assert fast == pytest.approx(shape(mode, duration, "3").total / 10)


def test_the_same_seed_reads_the_same_and_others_differ() -> None:
    a, b = shape("std", 10, "7-0"), shape("std", 10, "7-0")
    assert a == b and curve(a) == curve(b)
    assert len({shape("std", 10, f"7-{n}").total for n in range(20)}) == 20


def test_progress_is_queued_then_rises_unevenly_never_backwards() -> None:
    stalls = jumps = tails = 0
    for s in range(100):
        tl = shape("pro", 10, str(s))
        seen = curve(tl)
        statuses = [clock.read("v", 0.0, t, tl, rendered_at=0.0, fail=False).status for t, _ in seen]
        first_running = statuses.index("in_progress")
        assert all(st == "queued" for st in statuses[:first_running])
        assert seen[first_running][0] >= tl.queued_until - 0.25
        assert statuses[-1] == "completed"
        running = [p for (_, p), st in zip(seen, statuses, strict=True) if st == "in_progress"]
        assert all(1 <= p <= 99 for p in running)
        assert all(b >= a for a, b in itertools.pairwise(running))  # monotone
        steps = [b - a for a, b in itertools.pairwise(running)]
        jumps += max(steps, default=0) >= 10  # ≥ 10 points within one 0.25 s look
        flat = longest = 0
        for p0, p1 in itertools.pairwise(running):
            flat = flat + 1 if p1 == p0 and p0 < 95 else 0
            longest = max(longest, flat)
        stalls += longest * 0.25 >= 8  # flat for ≥ 8 s below the tail
        tails += sum(1 for p in running if p >= 95) * 0.25 >= 10  # a hold near the top
        rates = [b - a for a, b in zip(running[::20], running[20::20], strict=False)]
        assert len(set(rates)) > 1  # not linear
    # the documented probabilities, loosely: most tasks meet at least one of each kind now and then
    assert 15 <= stalls <= 90 and 15 <= jumps <= 95 and 10 <= tails <= 60, (stalls, jumps, tails)


def test_fast_stays_the_default_and_unchanged() -> None:
    assert clock.Timeline.for_task("std", 5, 1.0) == clock.Timeline.for_task("std", 5, 1.0, None)
    assert clock.Timeline.for_task("std", 5, 1.0).total == pytest.approx(15.0)
    assert clock.Timeline.for_task("std", 5, 1.0).knots is None


def _submit(url: str) -> dict:
    r = requests.post(url + SUBMIT, json={"model": "kling-v3", "prompt": "a kite over dunes", "mode": "std",
                                          "duration": 5}, headers=HEADERS, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_seeded_gateway_gives_every_run_the_same_shapes(tmp_path: Path) -> None:
    totals = []
    for run in range(2):
        with LocalGateway(tmp_path / f"gw{run}", speed=40.0, progress="realistic", seed=11) as gw:
            ids = [_submit(gw.url)["id"] for _ in range(3)]
            assert gw.engine is not None
            tasks = [gw.engine.store.get_task(i) for i in ids]
            totals.append([gw.engine.timeline(t).total for t in tasks if t is not None])
            assert [t.progress for t in tasks if t] == ["realistic:11-0", "realistic:11-1", "realistic:11-2"]
    assert totals[0] == totals[1] and len(set(totals[0])) == 3
    assert all(1.0 < t < 4.0 for t in totals[0])  # std 5 s ≈ 80 s at speed 40


def test_realistic_tasks_complete_over_http_and_fast_is_switchable(tmp_path: Path) -> None:
    with LocalGateway(tmp_path / "gw", speed=60.0) as gw:
        info = requests.post(gw.url + "/__control/config", json={"progress": "realistic", "seed": 3},
                             timeout=10).json()
        assert (info["progress"], info["seed"]) == ("realistic", 3)
        task = _submit(gw.url)
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            body = requests.get(f"{gw.url}{SUBMIT}/{task['id']}", headers=HEADERS, timeout=10).json()
            seen.append(body["progress"])
            if body["status"] == "completed":
                break
            time.sleep(0.05)
        assert body["status"] == "completed" and seen == sorted(seen)
        for bad in ({"progress": "slow"}, {"seed": "x"}, {"seed": True}):
            r = requests.post(gw.url + "/__control/config", json=bad, timeout=10)
            assert r.status_code == 400 and ("progress" in r.text or "seed" in r.text)
        back = requests.post(gw.url + "/__control/config", json={"progress": "fast"}, timeout=10).json()
        assert (back["progress"], back["seed"]) == ("fast", None)
        assert gw.engine is not None and gw.engine.store.get_task(_submit(gw.url)["id"]).progress is None


def test_a_data_dir_from_before_the_models_opens_with_fast_tasks(tmp_path: Path) -> None:
    db = tmp_path / "local_gateway.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE tasks (id TEXT PRIMARY KEY, created_at REAL NOT NULL, model TEXT NOT NULL, "
                "mode TEXT NOT NULL, duration INTEGER NOT NULL, aspect TEXT NOT NULL, prompt TEXT NOT NULL, "
                "request_json TEXT NOT NULL, first_image TEXT, last_image TEXT, speed REAL NOT NULL, "
                "cost REAL NOT NULL, fail_code TEXT, fail_message TEXT, refunded INTEGER NOT NULL DEFAULT 0, "
                "rendered_at REAL, expired INTEGER NOT NULL DEFAULT 0)")
    con.execute("INSERT INTO tasks VALUES ('video_OLD', 1.0, 'kling-v3', 'std', 5, '1:1', 'p', '{}', NULL, "
                "NULL, 1.0, 0.184, NULL, NULL, 0, 2.0, 0)")
    con.commit()
    con.close()
    store = Store(db)
    try:
        old = store.get_task("video_OLD")
        assert old is not None and old.progress is None
    finally:
        store.close()

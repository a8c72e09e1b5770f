"""Figure 2: server-side rerun time of Compose and History with 100, 10,000 and 100,000 runs in the ledger.

Timed with AppTest, not a real server: AppTest executes the page script in this process exactly as the
server's ScriptRunner does (same session state, same element protos), minus the websocket, so the clock
measures the script's own work and nothing else (a real server would add a browser round trip and
frontend rendering that do not depend on the ledger). Each page is run twice to warm up (services,
imports, caches), then rerun `reps` times; the median is reported.

The baseline is the page's fair floor (bench/floor.py), measured in the same run right after the page at
the same ledger size: the same page script drawing the same elements, with every ledger, client and
archive call answered from constants recorded on its first run (no SQL, no network, no worker). An
empty page (`import streamlit as st`) is still timed, for reference only.

Live tick: with nothing changed, each fragment a page registers with a `run_every` timer (the frame's
live fragment; the run cards' watcher and bars while something is in flight) is rerun alone, as its timer
does on a server (a fragment-scoped rerun of the
same AppTest session), and its median time is reported. Every time is the script thread's CPU time
(see `script_clock`).

Live tick with runs in flight (`ticks_in_flight`): Compose over a ledger whose newest IN_FLIGHT runs
are in progress (their next poll an hour away, so the worker leaves them alone and nothing changes);
each fragment that has a timer is ticked alone as above. This is the tick a session pays every second
while runs are in flight; the cards' list fragment has no timer and redraws only on a change.

Ledgers are fresh SQLite files filled with `lib.ledger.run_row` rows in one executemany (`bulk_insert`):
finished runs (90 % completed and archived, 10 % failed), so the worker has nothing to do while timing.
"""
from __future__ import annotations

import gc
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ROOT, Row, median
from bench.floor import FloorServices
from lib.contract import ASPECTS, DURATIONS, MODES, VideoRequest, estimate_cost
from lib.ledger import COMPLETED, FAILED, IN_PROGRESS, Ledger, bulk_insert, run_row

log = logging.getLogger(__name__)

PROMPTS = ("a red fox running through fresh snow", "neon city street in the rain, slow dolly",
           "ocean drone shot over turquoise reefs", "macro of coffee being poured, steam rising")


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    reps: int


FULL = Plan(sizes=(100, 10_000, 100_000), reps=21)
TINY = Plan(sizes=(100, 2_000), reps=3)


IN_FLIGHT = 3


def fill(url: str, n: int, batch: int = 20_000, in_flight: int = 0) -> None:
    """n finished runs, newest last, one executemany per batch (a fresh file: no indexes to fight); the
    newest `in_flight` of them in progress instead, not due for a poll for an hour."""
    ledger = Ledger(url)
    now = time.time()
    try:
        for start in range(0, n, batch):
            rows = []
            for i in range(start, min(n, start + batch)):
                mode, duration = MODES[i % 2], DURATIONS[(i // 2) % 3]
                req = VideoRequest(prompt=f"{PROMPTS[i % len(PROMPTS)]}, take {i}", mode=mode,
                                   duration=duration, aspect_ratio=ASPECTS[(i // 6) % 3])
                created = now - (n - i) * 30.0
                failed = i % 10 == 9
                row = run_row(f"bench{i:07d}{'x' * 4}", req, estimate_cost(req), now=created,
                              state=FAILED if failed else COMPLETED, task_id=f"video_bench_{i:07d}")
                done = created + 60 + duration * 6
                row.update(submitted_at=created + 0.2, completed_at=done, gateway_completed_at=done - 0.3,
                           updated_at=done, progress=0 if failed else 100, polls=6, next_poll_at=None)
                if failed:
                    row.update(error_code="content_policy",
                               error_message="The gateway refused the prompt (content policy). Not billed.")
                else:
                    row.update(video_url=f"http://127.0.0.1:9/files/videos/video_bench_{i:07d}.mp4",
                               thumbnail_url=f"http://127.0.0.1:9/files/posters/video_bench_{i:07d}.jpg",
                               expires_at=done + 86400, video_path=f"videos/{row['run_id']}.mp4",
                               poster_path=f"posters/{row['run_id']}.jpg", archived_at=done + 1)
                if i >= n - in_flight:
                    row.update(state=IN_PROGRESS, progress=40, completed_at=None, gateway_completed_at=None,
                               video_url=None, thumbnail_url=None, expires_at=None, video_path=None,
                               poster_path=None, archived_at=None, error_code=None, error_message=None,
                               created_at=now - 60, submitted_at=now - 59, updated_at=now - 5,
                               next_poll_at=now + 3600)
                rows.append(row)
            bulk_insert(ledger, rows)
    finally:
        ledger.close()


@contextmanager
def app_env(tmp: Path, db_url: str, gateway_url: str) -> Iterator[None]:
    """Point the app at a ledger file and a local gateway, and drop cached services afterwards."""
    import streamlit as st

    from lib.ui import state

    keys = ("PLAYGROUND_DB_URL", "PLAYGROUND_DATA", "PLAYGROUND_ARCHIVE", "TOAPIS_BASE_URL", "TOAPIS_API_KEY",
            "PLAYGROUND_PASSCODE", "PLAYGROUND_BUDGET_USD")
    saved = {k: os.environ.get(k) for k in keys}
    for k in keys:
        os.environ.pop(k, None)
    os.environ.update({"PLAYGROUND_DB_URL": db_url, "PLAYGROUND_DATA": str(tmp / "data"),
                       "PLAYGROUND_ARCHIVE": str(tmp / "archive"), "TOAPIS_BASE_URL": gateway_url})
    try:
        yield
    finally:
        state.stop_all()
        st.cache_resource.clear()
        st.cache_data.clear()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def script_clock() -> Iterator[list[float]]:
    """CPU seconds of each script run in the ScriptRunner's own thread (what a server spends on it),
    without AppTest's harness (its mock runtime, thread start and element-tree parsing: about 2 ms a
    run, as much as a whole live tick). CPU time, not wall time: this machine is shared by up to ~7
    sessions (load 10-50), and time spent waiting for a core is not the page's cost. SQLite runs in the
    same thread, so the queries are counted. Wall times are kept alongside (`WALL`)."""
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner
    from streamlit.testing.v1 import app_test, local_script_runner

    times: list[float] = []
    original = ScriptRunner._run_script
    # AppTest makes a new ScriptCache per run, so every run (a fragment tick too) would recompile the
    # page with its magic (several ms); a server keeps one per process: so do we.
    shared = ScriptCache()
    original_cache = app_test.ScriptCache
    app_test.ScriptCache = local_script_runner.ScriptCache = lambda: shared  # type: ignore[assignment,misc]

    def timed(self: Any, *a: Any, **k: Any) -> Any:
        started, wall = time.thread_time(), time.perf_counter()
        try:
            return original(self, *a, **k)
        finally:
            times.append(time.thread_time() - started)
            WALL.append(time.perf_counter() - wall)

    ScriptRunner._run_script = timed  # type: ignore[method-assign]
    try:
        yield times
    finally:
        ScriptRunner._run_script = original  # type: ignore[method-assign]
        app_test.ScriptCache = local_script_runner.ScriptCache = original_cache  # type: ignore[misc]


WALL: list[float] = []  # wall seconds of the same runs, for the notes


@contextmanager
def timers() -> Iterator[set[str]]:
    """Ids of the fragments registered with a `run_every` timer (what the server asks the browser to
    tick), read from the auto-rerun messages the script runs send."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import ScriptRunContext

    timed: set[str] = set()
    original = ScriptRunContext.enqueue

    def enqueue(self: Any, msg: Any) -> None:
        if msg.WhichOneof("type") == "auto_rerun" and msg.auto_rerun.fragment_id:
            timed.add(msg.auto_rerun.fragment_id)
        original(self, msg)

    ScriptRunContext.enqueue = enqueue  # type: ignore[method-assign]
    try:
        yield timed
    finally:
        ScriptRunContext.enqueue = original  # type: ignore[method-assign]


def _timed_run(at: Any, clock: list[float]) -> float:
    before = len(clock)
    at.run()
    if at.exception:
        raise RuntimeError(f"page raised: {[e.message for e in at.exception]}")
    return sum(clock[before:])


def _warm(make: Callable[[], Any], switch: str | None) -> Any:
    at = make()
    at.run()
    if switch:
        at.switch_page(switch)
    at.run()
    if at.exception:
        raise RuntimeError(f"page raised: {[e.message for e in at.exception]}")
    return at


def time_reruns(make: Callable[[], object], reps: int, switch: str | None = None,
                ticks: dict[str, list[float]] | None = None, timed_only: bool = False) -> list[float]:
    """Two warm-up runs, then `reps` timed reruns of the same AppTest session (script-thread seconds).

    `ticks`: also time each registered fragment rerun alone `reps` times (name -> seconds); with
    `timed_only`, only the fragments registered with a `run_every` timer (the ones a browser ticks)."""
    with script_clock() as clock, (timers() if timed_only else nullcontext(set())) as timed:
        at = _warm(make, switch)
        gc.collect()
        out = [_timed_run(at, clock) for _ in range(reps)]
        if ticks is not None:
            for name, fid in fragments(at).items():
                if timed_only and fid not in timed:
                    continue
                ticks[name] = [fragment_run(at, fid, clock) for _ in range(reps)]
    return out


def time_with_floor(make: Callable[[], Any], reps: int, switch: str | None,
                    floor: Any) -> tuple[list[float], list[float]]:
    """The page and its floor (bench/floor.py), each warmed up, then timed in alternation so that the
    machine's load changes fall on both alike. Returns (page, floor) script-thread seconds."""
    from lib.ui import state

    real = state.services

    def on_floor(fn: Callable[[], Any]) -> Any:
        state.services = lambda: floor  # type: ignore[assignment]
        try:
            return fn()
        finally:
            state.services = real  # type: ignore[assignment]

    with script_clock() as clock:
        page = _warm(make, switch)
        base = on_floor(lambda: _warm(make, switch))
        floor.freeze()
        gc.collect()
        page_t, floor_t = [], []
        for _ in range(reps):
            page_t.append(_timed_run(page, clock))
            floor_t.append(on_floor(lambda: _timed_run(base, clock)))
    return page_t, floor_t


def fragments(at: Any) -> dict[str, str]:
    """Name of the function each registered fragment runs (e.g. `_live`, `body`) -> fragment id."""
    out: dict[str, str] = {}
    storage = at._fragment_storage
    for fid, frag in list(storage._fragments.items()):
        name = "?"
        for cell in getattr(frag, "__closure__", None) or ():
            fn = cell.cell_contents
            if callable(fn) and getattr(fn, "__module__", "").startswith("lib."):
                name = f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}"
                break
        key, n = name, 2
        while key in out:
            key, n = f"{name}#{n}", n + 1
        out[key] = fid
    return out


def fragment_run(at: Any, fragment_id: str, clock: list[float]) -> float:
    """One fragment-scoped rerun (what the fragment's run_every timer asks a server for), in seconds."""
    from streamlit.runtime.scriptrunner_utils.script_requests import RerunData
    from streamlit.testing.v1 import local_script_runner

    def scoped(**kwargs: Any) -> RerunData:
        return RerunData(**kwargs, fragment_id_queue=[fragment_id], is_auto_rerun=True)

    local_script_runner.RerunData = scoped  # type: ignore[assignment,misc]
    try:
        return _timed_run(at, clock)
    finally:
        local_script_runner.RerunData = RerunData  # type: ignore[misc]


def ticks_in_flight(reps: int, in_flight: int = IN_FLIGHT, finished: int = 100) -> dict[str, list[float]]:
    """Compose with `in_flight` runs in progress among its cards: each fragment with a timer (the frame's
    `_live`, and whatever the cards tick) rerun alone `reps` times, nothing changing meanwhile."""
    from streamlit.testing.v1 import AppTest

    from lib.local_gateway import LocalGateway

    ticks: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_fig2_tick_") as d:
        tmp = Path(d)
        gw = LocalGateway(tmp / "gateway", port=0, speed=1.0).start()
        try:
            url = f"sqlite:///{tmp / 'ledger_tick.db'}"
            fill(url, finished + in_flight, in_flight=in_flight)
            with app_env(tmp, url, gw.url):
                every: dict[str, list[float]] = {}
                time_reruns(lambda: AppTest.from_file(str(ROOT / "app.py"), default_timeout=120), reps,
                            ticks=every, timed_only=True)
                ticks.update(every)
        finally:
            gw.stop()
    return ticks


# Streamlit's own cost of a fragment tick (and AppTest's mock runtime): the floor under any live tick.
_BARE_FRAGMENT = "import streamlit as st\nst.fragment(lambda: None, run_every=1.0)()\n"


def run(tiny: bool = False) -> list[Row]:
    from streamlit.testing.v1 import AppTest

    from lib.local_gateway import LocalGateway
    from lib.ui import state

    plan = TINY if tiny else FULL
    app = str(ROOT / "app.py")
    results: dict[tuple[str, int], float] = {}
    raw: dict[str, list[float]] = {}
    ticks: dict[str, list[float]] = {}
    misses: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_fig2_") as d:
        tmp = Path(d)
        gw = LocalGateway(tmp / "gateway", port=0, speed=1.0).start()
        try:
            for n in plan.sizes:
                url = f"sqlite:///{tmp / f'ledger_{n}.db'}"
                started = time.monotonic()
                fill(url, n)
                log.info("filled %d runs in %.1f s", n, time.monotonic() - started)
                with app_env(tmp, url, gw.url):
                    for page, switch in (("compose", None), ("history", "pages/history.py")):
                        def make() -> Any:
                            return AppTest.from_file(app, default_timeout=120)

                        page_ticks: dict[str, list[float]] = {}
                        t = time_reruns(make, plan.reps, switch,
                                        ticks=page_ticks if n == plan.sizes[-1] else None, timed_only=True)
                        results[(page, n)] = median(t) or 0.0
                        raw[f"{page}@{n}"] = [round(x, 4) for x in t]
                        for name, xs in page_ticks.items():
                            ticks[f"{page}:{name}"] = xs
                        if n == plan.sizes[-1]:
                            floor = FloorServices(state.services())
                            t, f = time_with_floor(make, plan.reps, switch, floor)
                            results[(f"{page} (with floor)", n)] = median(t) or 0.0
                            results[(f"{page} floor", n)] = median(f) or 0.0
                            raw[f"{page} (with floor)@{n}"] = [round(x, 4) for x in t]
                            raw[f"{page} floor@{n}"] = [round(x, 4) for x in f]
                            misses[page] = dict(floor.misses)
            for name, xs in ticks_in_flight(plan.reps).items():
                ticks[f"compose, {IN_FLIGHT} in flight:{name}"] = xs
            bare: dict[str, list[float]] = {}
            time_reruns(lambda: AppTest.from_string(_BARE_FRAGMENT), plan.reps, ticks=bare)
            ticks["bare:fragment"] = next(iter(bare.values()))
            empty = time_reruns(lambda: AppTest.from_string("import streamlit as st\n"), plan.reps)
            results[("empty", 0)] = median(empty) or 0.0
            raw["empty"] = [round(x, 4) for x in empty]
        finally:
            gw.stop()
    small, big = plan.sizes[0], plan.sizes[-1]
    e = results[("empty", 0)]
    ms = 1000.0
    tick_ms = {k: round((median(v) or 0.0) * ms, 3) for k, v in ticks.items()}
    notes = {"clock": "script-thread CPU time", "wall_s_all_runs": [round(x, 4) for x in WALL],
             "median_ms": {f"{k[0]}@{k[1]}": round(v * ms, 2) for k, v in results.items()}, "raw_s": raw,
             "floor_misses": misses, "tick_median_ms": tick_ms,
             "tick_raw_ms": {k: [round(x * ms, 3) for x in v] for k, v in ticks.items()}}
    rows = [
        Row("2", f"History@{big:,} vs @{small}", results[("history", big)] * ms,
            results[("history", small)] * ms, "ms", "≤ 1.3×",
            results[("history", big)] <= 1.3 * results[("history", small)],
            baseline_name=f"History@{small}", notes=notes),
        Row("2", f"Compose@{big:,} vs @{small}", results[("compose", big)] * ms,
            results[("compose", small)] * ms, "ms", "(info)", None, baseline_name=f"Compose@{small}"),
    ]
    for page, label in (("compose", "Compose"), ("history", "History")):
        v, f = results[(f"{page} (with floor)", big)], results[(f"{page} floor", big)]
        rows.append(Row("2", f"{label}@{big:,} vs its floor", v * ms, f * ms, "ms", "≤ 1.5×",
                        v <= 1.5 * f, baseline_name="same page, data from constants"))
    for page, label in (("compose", "Compose"), ("history", "History")):
        floor_ms = results[(f"{page} floor", big)] * ms
        rows.append(Row("2", f"{label} floor vs empty page", floor_ms, e * ms, "ms", "(info)", None,
                        baseline_name="empty page"))
    bare_ms = tick_ms.pop("bare:fragment")
    for name, value in sorted(tick_ms.items()):
        page, frag = name.split(":", 1)
        rows.append(Row("2", f"live tick, nothing changed: {page} {frag}", value, bare_ms, "ms", "≤ 2 ms",
                        value <= 2.0, baseline_name="a fragment that draws nothing"))
    return rows

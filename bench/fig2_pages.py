"""Figure 2: server-side rerun time of Compose and History with 100, 10,000 and 100,000 runs in the ledger.

Timed with AppTest, not a real server: AppTest executes the page script in this process exactly as the
server's ScriptRunner does (same session state, same element protos), minus the websocket, so the clock
measures the script's own work and nothing else (a real server would add a browser round trip and
frontend rendering that do not depend on the ledger). Each page is run twice to warm up (services,
imports, caches), then rerun `reps` times; the median is reported. The baseline is an empty page
(`import streamlit as st`) rerun the same way in the same process.

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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import ROOT, Row, median
from lib.contract import ASPECTS, DURATIONS, MODES, VideoRequest, estimate_cost
from lib.ledger import COMPLETED, FAILED, Ledger, bulk_insert, run_row

log = logging.getLogger(__name__)

PROMPTS = ("a red fox running through fresh snow", "neon city street in the rain, slow dolly",
           "ocean drone shot over turquoise reefs", "macro of coffee being poured, steam rising")


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    reps: int


FULL = Plan(sizes=(100, 10_000, 100_000), reps=9)
TINY = Plan(sizes=(100, 2_000), reps=2)


def fill(url: str, n: int, batch: int = 20_000) -> None:
    """n finished runs, newest last, one executemany per batch (a fresh file: no indexes to fight)."""
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


def time_reruns(make: Callable[[], object], reps: int, switch: str | None = None) -> list[float]:
    """Two warm-up runs, then `reps` timed reruns of the same AppTest session (seconds each)."""
    at = make()
    at.run()  # type: ignore[attr-defined]
    if switch:
        at.switch_page(switch)  # type: ignore[attr-defined]
    at.run()  # type: ignore[attr-defined]
    if at.exception:  # type: ignore[attr-defined]
        raise RuntimeError(f"page raised: {[e.message for e in at.exception]}")  # type: ignore[attr-defined]
    out = []
    gc.collect()
    for _ in range(reps):
        started = time.perf_counter()
        at.run()  # type: ignore[attr-defined]
        out.append(time.perf_counter() - started)
    return out


def run(tiny: bool = False) -> list[Row]:
    from streamlit.testing.v1 import AppTest

    from lib.local_gateway import LocalGateway

    plan = TINY if tiny else FULL
    app = str(ROOT / "app.py")
    results: dict[tuple[str, int], float] = {}
    raw: dict[str, list[float]] = {}
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
                        t = time_reruns(lambda: AppTest.from_file(app, default_timeout=120), plan.reps,
                                        switch)
                        results[(page, n)] = median(t) or 0.0
                        raw[f"{page}@{n}"] = [round(x, 4) for x in t]
            empty = time_reruns(lambda: AppTest.from_string("import streamlit as st\n"), plan.reps)
            results[("empty", 0)] = median(empty) or 0.0
            raw["empty"] = [round(x, 4) for x in empty]
        finally:
            gw.stop()
    small, big = plan.sizes[0], plan.sizes[-1]
    e = results[("empty", 0)]
    ms = 1000.0
    notes = {"median_ms": {f"{k[0]}@{k[1]}": round(v * ms, 2) for k, v in results.items()}, "raw_s": raw}
    rows = [
        Row("2", f"History@{big:,} vs @{small}", results[("history", big)] * ms,
            results[("history", small)] * ms, "ms", "≤ 1.3×",
            results[("history", big)] <= 1.3 * results[("history", small)],
            baseline_name=f"History@{small}", notes=notes),
        Row("2", f"Compose@{big:,} vs @{small}", results[("compose", big)] * ms,
            results[("compose", small)] * ms, "ms", "(info)", None, baseline_name=f"Compose@{small}"),
    ]
    for page, label in (("compose", "Compose"), ("history", "History")):
        v = results[(page, big)]
        rows.append(Row("2", f"{label}@{big:,} vs empty page", v * ms, e * ms, "ms", "≤ 1.5×",
                        v <= 1.5 * e, baseline_name="empty page"))
    return rows

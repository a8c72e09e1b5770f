"""Capacity: how many browser sessions one web process holds with 10 runs in flight while the p95 widget
response (click → updated element) stays ≤ 200 ms, found by adding sessions until it breaks.

Set-up: a real `streamlit run app.py` (its own worker, SQLite ledger) against a local gateway process on
the REALISTIC clock at real speed; the bench keeps 10 runs in flight (drafts written into the app's ledger,
replaced as they finish). Sessions are websocket clients speaking the browser's protocol
(/_stcore/stream, BackMsg/ForwardMsg): each opens Compose, then behaves like a browser tab:
- it runs the fragment timers the server asks for (`auto_rerun`: the frame's live fragment and the run
  cards tick once a second while runs are in flight), as the frontend does;
- at a human pace (one click every 2-5 s) it clicks the Duration radio, a real widget, and measures from
  sending that click until the element it changes arrives: the Generate button with its new price.
Nothing is rendered, so the figure is the server's side only (a browser adds its own paint time).

Steps add sessions (`Plan.steps`); each step runs `step_seconds` of clicks after the new sessions have
loaded, and reports the p95 over every click in that step. The figure is the largest step whose p95 is
≤ 200 ms; the first step above it is where it broke. A step is also recorded with the server's CPU share
and the machine's load, since other work on a shared machine moves the break point.

    python bench/capacity.py [--tiny] [--json out.json]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import websockets  # noqa: E402
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402
from streamlit.proto.WidgetStates_pb2 import WidgetState  # noqa: E402

from bench.common import Row, percentile, table  # noqa: E402
from lib.contract import VideoRequest  # noqa: E402
from lib.ledger import Ledger  # noqa: E402
from tests.fixtures.servers import AppServer, GatewayProcess  # noqa: E402

log = logging.getLogger(__name__)

GOAL_MS = 200.0
XSRF_COOKIE = "_streamlit_xsrf"
DURATIONS = (5, 10, 15)


@dataclass(frozen=True)
class Plan:
    steps: tuple[int, ...]
    step_seconds: float
    in_flight: int = 10
    click_gap: tuple[float, float] = (2.0, 5.0)
    speed: float = 1.0  # the gateway's REALISTIC clock: 1 = real durations (80-190 s)


FULL = Plan(steps=(1, 5, 10, 15, 20, 30, 40, 50, 60, 80), step_seconds=40.0)
TINY = Plan(steps=(1, 2), step_seconds=2.0, click_gap=(0.5, 1.0), in_flight=3, speed=20.0)


class Session:
    """One browser tab, minus the painting: its websocket, its fragment timers, its clicks."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self.ws: Any = None
        self.radio_id: str | None = None
        self.duration_index = 0
        self.options: list[str] = []
        self.generate_label: str | None = None
        self.label_changed = asyncio.Event()
        self.finished = asyncio.Event()
        self.timers: dict[str, asyncio.Task] = {}
        self.tasks: list[asyncio.Task] = []
        self.latencies: list[float] = []
        self.timeouts = 0
        self.ticks_sent = 0
        self.closed = False

    async def open(self) -> None:
        http = requests.Session()
        http.get(f"{self.url}/_stcore/health", timeout=30)
        xsrf = http.cookies.get(XSRF_COOKIE)
        http.close()
        protocols = ["streamlit", xsrf] if xsrf else ["streamlit"]
        headers = {"Cookie": f"{XSRF_COOKIE}={xsrf}"} if xsrf else {}
        self.ws = await websockets.connect(self.url.replace("http://", "ws://") + "/_stcore/stream",
                                           subprotocols=protocols, additional_headers=headers, max_size=None)
        self.tasks.append(asyncio.create_task(self._read()))
        await self._send(self._rerun())

    def _widgets(self) -> list[WidgetState]:
        if self.radio_id is None or not self.options:
            return []
        # Streamlit 1.67 radios send the formatted option (string_value), as the frontend does
        return [WidgetState(id=self.radio_id, string_value=self.options[self.duration_index])]

    def _rerun(self, fragment_id: str | None = None) -> BackMsg:
        back = BackMsg()
        back.rerun_script.query_string = ""
        back.rerun_script.page_script_hash = ""
        back.rerun_script.widget_states.widgets.extend(self._widgets())
        if fragment_id:
            back.rerun_script.fragment_id = fragment_id
            back.rerun_script.is_auto_rerun = True
        return back

    async def _send(self, back: BackMsg) -> None:
        if not self.closed:
            await self.ws.send(back.SerializeToString())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = ForwardMsg()
                msg.ParseFromString(raw)
                kind = msg.WhichOneof("type")
                if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                    el = msg.delta.new_element
                    which = el.WhichOneof("type")
                    if which == "radio" and el.radio.label == "Duration":
                        self.radio_id = el.radio.id
                        self.options = list(el.radio.options)
                    elif (which == "button" and el.button.label.startswith("Generate")
                          and el.button.label != self.generate_label):
                        self.generate_label = el.button.label
                        self.label_changed.set()
                    if os.environ.get("CAPACITY_DEBUG") and which in ("radio", "button"):
                        print(self.name, which, getattr(el, which).label, getattr(el, which).id[-30:],
                              file=sys.stderr)
                elif kind == "auto_rerun":
                    self._timer(msg.auto_rerun.fragment_id, msg.auto_rerun.interval)
                elif kind == "stop_auto_rerun":
                    for task in self.timers.values():
                        task.cancel()
                    self.timers.clear()
                elif kind == "script_finished":
                    self.finished.set()
        except (websockets.ConnectionClosed, asyncio.CancelledError):
            return

    def _timer(self, fragment_id: str, interval: float) -> None:
        old = self.timers.pop(fragment_id, None)
        if old is not None:
            old.cancel()

        async def tick() -> None:
            while not self.closed:
                await asyncio.sleep(interval)
                self.ticks_sent += 1
                await self._send(self._rerun(fragment_id))

        self.timers[fragment_id] = asyncio.create_task(tick())

    async def click(self, timeout: float = 10.0) -> float | None:
        """Pick the next Duration; seconds until the Generate button shows its new price (None: timeout)."""
        if self.radio_id is None or not self.options:
            return None
        self.duration_index = (self.duration_index + 1) % len(self.options)
        self.label_changed.clear()
        started = time.perf_counter()
        await self._send(self._rerun())
        try:
            await asyncio.wait_for(self.label_changed.wait(), timeout)
        except TimeoutError:
            self.timeouts += 1
            return None
        return time.perf_counter() - started

    async def clicking(self, until: float, gap: tuple[float, float], rng: random.Random) -> None:
        await asyncio.sleep(rng.uniform(*gap))
        while time.monotonic() < until and not self.closed:
            latency = await self.click()
            if latency is not None:
                self.latencies.append(latency)
            await asyncio.sleep(rng.uniform(*gap))

    async def close(self) -> None:
        self.closed = True
        for task in [*self.timers.values(), *self.tasks]:
            task.cancel()
        if self.ws is not None:
            await self.ws.close()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class InFlight:
    """Keeps `n` runs in flight in the app's ledger (the app's own worker submits and polls them)."""

    def __init__(self, ledger: Ledger, n: int) -> None:
        self.ledger, self.n = ledger, n
        self.made = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="in-flight", daemon=True)

    def start(self) -> InFlight:
        self._top_up()
        self._thread.start()
        return self

    def _top_up(self) -> None:
        for _ in range(max(0, self.n - self.ledger.in_flight())):
            self.made += 1
            req = VideoRequest(prompt=f"a lighthouse in fog, take {self.made}", mode="std",
                               duration=DURATIONS[self.made % 3], aspect_ratio="1:1")
            self.ledger.create_run(Ledger.new_id(), req, 0.0)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self._top_up()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


async def _steps(app: AppServer, plan: Plan, pid: int, keep_going: bool = False) -> list[dict]:
    rng = random.Random(7)
    sessions: list[Session] = []
    out: list[dict] = []
    try:
        for target in plan.steps:
            while len(sessions) < target:
                s = Session(app.url, f"s{len(sessions)}")
                await s.open()
                sessions.append(s)
            # every new tab has loaded (its first run finished and the radio is known)
            deadline = time.monotonic() + 60 + 2 * target
            while time.monotonic() < deadline and not all(s.finished.is_set() and s.radio_id
                                                          for s in sessions):
                await asyncio.sleep(0.1)
            loaded = sum(1 for s in sessions if s.finished.is_set() and s.radio_id)
            for s in sessions:
                s.latencies.clear()
                s.timeouts = 0
            cpu0, t0, load0 = _cpu_seconds(pid), time.monotonic(), os.getloadavg()[0]
            until = t0 + plan.step_seconds
            await asyncio.gather(*(s.clicking(until, plan.click_gap, rng) for s in sessions))
            cpu = (_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
            lat = [x for s in sessions for x in s.latencies]
            p95 = percentile(lat, 95)
            step = {"sessions": target, "loaded": loaded, "clicks": len(lat),
                    "timeouts": sum(s.timeouts for s in sessions),
                    "p50_ms": None if not lat else round((percentile(lat, 50) or 0) * 1000, 1),
                    "p95_ms": None if p95 is None else round(p95 * 1000, 1),
                    "server_cpu": round(cpu, 3), "cpu_per_session": round(cpu / target, 4),
                    "load": (round(load0, 1), round(os.getloadavg()[0], 1)),
                    "ticks_sent": sum(s.ticks_sent for s in sessions)}
            log.warning("capacity step %s", step)
            print(f"[capacity] {step}", file=sys.stderr, flush=True)
            out.append(step)
            if (p95 is None or p95 * 1000 > GOAL_MS or step["timeouts"]) and not keep_going:
                break
    finally:
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    return out


def run(tiny: bool = False, keep_going: bool = False, steps: tuple[int, ...] | None = None) -> list[Row]:
    """`keep_going`: step on past the break (to measure the server's CPU per session at every size)."""
    plan = TINY if tiny else FULL
    if steps:
        plan = Plan(steps=steps, step_seconds=plan.step_seconds, in_flight=plan.in_flight,
                    click_gap=plan.click_gap, speed=plan.speed)
    with tempfile.TemporaryDirectory(prefix="bench_capacity_") as d:
        tmp = Path(d)
        gw = GatewayProcess(tmp / "gateway", speed=plan.speed, progress="realistic", seed=5).start()
        app = AppServer(tmp / "app", gw, extra_env={"PLAYGROUND_ARCHIVE": str(tmp / "archive"),
                                                     "PLAYGROUND_FIRST_LOOK": "5"})
        flight: InFlight | None = None
        steps_seen: list[dict] = []
        try:
            app.start()
            assert app.proc is not None
            ledger = Ledger(f"sqlite:///{app.db_path}")
            flight = InFlight(ledger, plan.in_flight).start()
            done = asyncio.run(_steps(app, plan, app.proc.pid, keep_going))
            flight.stop()
            ledger.close()
            steps_seen = done
        finally:
            if flight is not None:
                flight.stop()
            app.stop()
            gw.stop()
    steps = steps_seen
    held = []
    for s in steps:  # the sizes that held, up to the first that broke
        if s["p95_ms"] is None or s["p95_ms"] > GOAL_MS or s["timeouts"]:
            break
        held.append(s)
    best = held[-1] if held else None
    broke = next((s for s in steps if s not in held), None)
    notes = {"steps": steps, "plan": {"steps": plan.steps, "step_seconds": plan.step_seconds,
                                      "in_flight": plan.in_flight, "speed": plan.speed}}
    return [
        Row("capacity", f"sessions per web process, {plan.in_flight} runs in flight, p95 click ≤ 200 ms",
            best["sessions"] if best else 0, broke["sessions"] if broke else None, "count", "(info)", None,
            baseline_name="broke at" if broke else "never broke", notes=notes),
        Row("capacity", "  … p95 click → updated element at that size", best["p95_ms"] if best else None,
            GOAL_MS, "ms", "≤ 200 ms", bool(best), baseline_name="goal"),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--keep-going", action="store_true", help="step on past the break (CPU per session)")
    ap.add_argument("--steps", default="", help="comma-separated session counts, e.g. 1,5,10,20")
    args = ap.parse_args(argv)
    steps = tuple(int(x) for x in args.steps.split(",") if x.strip()) or None
    rows = run(tiny=args.tiny, keep_going=args.keep_going, steps=steps)
    print(table(rows))
    print(json.dumps(rows[0].notes, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"rows": [r.__dict__ for r in rows]}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

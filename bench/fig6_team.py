"""Figure 6: one rate limit for every process on one API key (3 web processes + 2 standalone workers).

Set-up, all real processes on this machine: a local gateway process enforcing ToAPIs' limits per key
(5 submits/s, 50 queries/s, 429 with Retry-After beyond them) and rendering real MP4s in its pool (two at
once); one shared ledger (SQLite file or PostgreSQL); three `streamlit run app.py` web processes with
PLAYGROUND_WORKER=off and two `python -m lib.worker` workers. Twenty Streamlit websocket sessions (each
press sets the prompt and triggers the real Generate button, as a click sends), spread over the three web
processes, issue `runs` presses with distinct prompts within 10 s: 15 each, 0.67 s apart, the sessions
staggered. `--pacing pipelined` sends each press at its moment even while the page is still rerunning
(what a browser does); `--pacing acked` waits for the session's previous rerun to finish first. Then
every run is followed until it is archived (or a deadline).

Value: the gateway's 429 answers with PLAYGROUND_RATE_LIMIT=shared (lib/shared_limit.py). Baseline, in
the same run, the same load with PLAYGROUND_RATE_LIMIT=process (one in-memory limiter per process).
Each leg uses its own API key (the gateway limits per key) and its own fresh ledger. Also counted per
leg: presses that made no run (by prompt), tasks the gateway accepted per run (read from its own store:
a double submit shows as two), archived files and video downloads per run, the seconds from the first
press to the last run written, sent and archived (the ledger's own stamps), the busiest second the
gateway saw, and the load average.

    python -m bench.fig6_team [--runs 300 --sessions 20 --speed 8 --db sqlite|postgres]
                              [--pacing pipelined|acked] [--limiters shared,process]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench.common import ROOT, Row, wait_until
from lib.ledger import Ledger
from tests.fixtures.press import _generate_label, open_compose
from tests.fixtures.servers import AppServer, GatewayProcess
from tests.fixtures.st_socket import BareSession

log = logging.getLogger(__name__)

WEB = 3
WORKERS = 2


def peak_per_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


PRESS_WINDOW = 10.0  # seconds in which every press is issued (issue 16 item 3)


class _Presser:
    """One Streamlit session pressing Generate on a schedule, without (or with) waiting for each rerun.

    `pipelined`: each press is one BackMsg sent at its moment, whatever the page is doing, as a browser
    sends a click during a running rerun; a reader drains the session's ForwardMsgs meanwhile. Streamlit
    folds a request that arrives while another is still pending into one rerun (the newer widget values
    win, the Generate trigger is kept), so two presses can become one: the ledger then shows fewer runs than
    presses, and the prompts tell which. `acked`: a press waits for the previous rerun's script_finished
    (and for its moment), which a person's browser does not do but no press can be folded."""

    def __init__(self, session: BareSession) -> None:
        self.session = session
        self.finished: dict[str, int] = {}   # script_finished status -> count
        self.exceptions: list[str] = []      # exception elements drawn (a traceback on the screen)
        self.notes: list[str] = []           # alerts drawn after a press (held, already sent, errors)
        self.sent: list[tuple[float, str]] = []
        self.acks: list[float] = []          # seconds from each press to the next script_finished
        self._waiting: float | None = None
        self._ack = asyncio.Event()
        self._reader: asyncio.Task | None = None

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        ws = self.session.ws
        try:
            while True:
                msg = ForwardMsg()
                msg.ParseFromString(await ws.recv())
                kind = msg.WhichOneof("type")
                if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                    el = msg.delta.new_element
                    which = el.WhichOneof("type")
                    if which == "exception":
                        self.exceptions.append(f"{el.exception.type}: {el.exception.message}"[:300])
                    elif which == "alert":
                        self.notes.append(el.alert.body[:200])
                elif kind == "script_finished":
                    name = ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished)
                    self.finished[name] = self.finished.get(name, 0) + 1
                    if self._waiting is not None:
                        self.acks.append(time.monotonic() - self._waiting)
                        self._waiting = None
                    self._ack.set()
        except (websockets.ConnectionClosed, asyncio.CancelledError):
            return

    async def press(self, prompt: str) -> None:
        back = BackMsg()
        back.rerun_script.query_string = self.session.query
        back.rerun_script.page_script_hash = ""
        back.rerun_script.widget_states.widgets.extend(
            [self.session.text("Prompt", prompt), self.session.press(_generate_label(self.session))])
        self._ack.clear()
        if self._waiting is None:
            self._waiting = time.monotonic()
        self.sent.append((time.time(), prompt))
        await self.session.ws.send(back.SerializeToString())

    async def acked(self, timeout: float = 120.0) -> None:
        await asyncio.wait_for(self._ack.wait(), timeout)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self.session.close()


async def _press_all(urls: list[str], sessions: int, runs: int, tag: str, pacing: str,
                     window: float = PRESS_WINDOW) -> dict[str, Any]:
    """`sessions` sessions over `urls` issue `runs` presses (distinct prompts) spread evenly over `window`
    seconds: session s presses at s·(gap/sessions) + i·gap, gap = window / presses per session."""
    opened = await asyncio.gather(*(open_compose(urls[s % len(urls)]) for s in range(sessions)))
    pressers = [_Presser(o) for o in opened]
    for p in pressers:
        p.start()
    share = [runs // sessions + (1 if s < runs % sessions else 0) for s in range(sessions)]
    gap = window / max(share)
    late: list[float] = []

    async def one(s: int, t0: float) -> None:
        for i in range(share[s]):
            due = t0 + s * gap / sessions + i * gap
            if pacing == "acked" and i:
                await pressers[s].acked()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                late.append(-wait)
            await pressers[s].press(f"{tag} session {s}: a lighthouse in fog, take {i}")

    t0 = time.monotonic()
    await asyncio.gather(*(one(s, t0) for s in range(sessions)))
    sent = sorted(t for p in pressers for t, _ in p.sent)
    # let the last reruns finish before the sessions close (a closed session stops its script)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(p._waiting is not None for p in pressers):
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    acks = sorted(a for p in pressers for a in p.acks)
    out = {
        "pacing": pacing, "presses": len(sent), "first_press": sent[0], "last_press": sent[-1],
        "press_span_s": round(sent[-1] - sent[0], 2),
        "presses_late_over_0_1s": sum(1 for x in late if x > 0.1),
        "script_finished": _sum_counts(p.finished for p in pressers),
        "rerun_ack_p50_s": round(acks[len(acks) // 2], 3) if acks else None,
        "rerun_ack_p95_s": round(acks[int(len(acks) * 0.95)], 3) if acks else None,
        "exceptions": [e for p in pressers for e in p.exceptions][:10],
        "notes": sorted({n for p in pressers for n in p.notes})[:20],
        "prompts": [prompt for p in pressers for _, prompt in p.sent],
    }
    await asyncio.gather(*(p.close() for p in pressers))
    return out


def _sum_counts(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    return total


def _gateway_tasks_per_prompt(gateway: GatewayProcess, tag: str) -> dict[str, int]:
    """Tasks the gateway accepted per prompt of this leg, read from its own store (each prompt is one run)."""
    db = sqlite3.connect(f"file:{gateway.data_dir / 'local_gateway.db'}?mode=ro", uri=True, timeout=30)
    try:
        rows = db.execute("SELECT prompt, COUNT(*) FROM tasks WHERE prompt LIKE ? GROUP BY prompt",
                          (f"{tag} session %",)).fetchall()
    finally:
        db.close()
    return {prompt: n for prompt, n in rows}


def _leg(root: Path, gateway: GatewayProcess, kind: str, *, runs: int, sessions: int, db_url: str,
         deadline: float, pacing: str, logs: Path | None = None) -> dict[str, Any]:
    key = f"bench-{kind}-{pacing}-key"
    tag = f"{kind}-{pacing}"
    data = root / tag
    data.mkdir(parents=True)
    env_extra = {"PLAYGROUND_WORKER": "off", "PLAYGROUND_RATE_LIMIT": kind, "TOAPIS_API_KEY": key,
                 "PLAYGROUND_DATA": str(data), "PLAYGROUND_DB_URL": db_url}
    Ledger(db_url).close()  # migrated once before five processes open it
    webs = [AppServer(data / f"web{i}", gateway, extra_env=env_extra) for i in range(WEB)]
    workers: list[subprocess.Popen] = []
    load = {"before": _load()}
    t0 = time.time()
    try:
        for w in webs:
            w.start()
        env = webs[0].env()
        for i in range(WORKERS):
            with (data / f"worker{i}.log").open("ab") as out:
                workers.append(subprocess.Popen([sys.executable, "-m", "lib.worker"], cwd=ROOT, env=env,
                                                stdout=out, stderr=subprocess.STDOUT))
        t0 = time.time()
        pressing = asyncio.run(_press_all([w.url for w in webs], sessions, runs, tag, pacing))
        load["after_pressing"] = _load()
        pressed = pressing["presses"]

        led = Ledger(db_url)
        try:
            def settled() -> bool:
                rs = led.list_runs(limit=runs + 50)
                quiet = time.time() - pressing["last_press"] > 30  # a lost press never arrives
                return all(r.video_path or r.error_code for r in rs) and (len(rs) >= pressed or quiet)

            finished = wait_until(settled, deadline, step=2.0)
            elapsed = time.time() - t0
            load["end"] = _load()
            rs = led.list_runs(limit=runs + 50)
        finally:
            led.close()
    finally:
        for p in workers:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in workers:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        for w in webs:
            w.stop()
    # an error a page caught (lib/ui/last_resort) says "details are in the server log": keep them
    web_errors = [line[:400] for w in webs if w.log.exists()
                  for line in w.log.read_text(errors="replace").splitlines()
                  if "unexpected error on a page" in line or "Error:" in line or "Exception:" in line][:20]
    if logs is not None:  # --logs: the web processes' whole logs (tracebacks included), kept
        logs.mkdir(parents=True, exist_ok=True)
        for i, w in enumerate(webs):
            if w.log.exists():
                shutil.copyfile(w.log, logs / f"{tag}-web{i}.log")
    log_rows = [r for r in gateway.requests() if r["t"] >= t0]
    # the gateway's log does not name keys; each leg runs alone, so its window is its own
    submits = [r for r in log_rows if r["category"] == "submit"]
    queries = [r for r in log_rows if r["category"] == "query"]
    files = [r for r in log_rows if r["category"] == "file" and r["path"].endswith(".mp4")]
    videos = list((data / "archive" / "videos").glob("*.mp4"))
    downloads: dict[str, int] = {}
    for f in files:
        downloads[f["path"]] = downloads.get(f["path"], 0) + 1
    prompts = pressing.pop("prompts")
    runs_per_prompt: dict[str, int] = {}
    for r in rs:
        text = str(r.params.get("prompt", ""))
        runs_per_prompt[text] = runs_per_prompt.get(text, 0) + 1
    tasks_per_prompt = _gateway_tasks_per_prompt(gateway, tag)
    lost = [x for x in prompts if x not in runs_per_prompt]
    video_paths = [r.video_path for r in rs if r.video_path]
    return {
        "limiter": kind, "db": db_url.split(":", 1)[0], "runs_pressed": pressed, **pressing,
        "load": load, "web_errors": web_errors,
        # from the first press, by the ledger's own stamps: the last run written, sent, archived
        "seconds_to_last": {name: _last(rs, name, pressing["first_press"])
                            for name in ("created_at", "submitted_at", "archived_at")},
        "counts": {"in_ledger": len(rs), "submitted": sum(1 for r in rs if r.task_id),
                   "archived": sum(1 for r in rs if r.video_path)},
        "runs_in_ledger": len(rs), "presses_lost": len(lost), "lost_prompts": lost[:10],
        "presses_with_two_runs": sum(1 for n in runs_per_prompt.values() if n > 1),
        "archived": len(video_paths), "archived_twice": len(video_paths) - len(set(video_paths)),
        "errors": sorted({f"{r.error_code}: {r.error_message}"[:160] for r in rs if r.error_code}),
        "states": _sum_counts([{r.state: 1} for r in rs]),
        "all_finished": finished, "seconds_to_settled": round(elapsed, 1),
        "submit_429": sum(1 for r in submits if r["status"] == 429),
        "query_429": sum(1 for r in queries if r["status"] == 429),
        "accepted_submits": sum(1 for r in submits if r["status"] == 200),
        "distinct_task_ids": len({r.task_id for r in rs if r.task_id}),
        "gateway_tasks": sum(tasks_per_prompt.values()),
        "runs_with_two_gateway_tasks": sum(1 for n in tasks_per_prompt.values() if n > 1),
        "archive_files": len(videos), "video_downloads": len(files),
        "videos_downloaded_twice": sum(1 for n in downloads.values() if n > 1),
        "busiest_second": {"submit": peak_per_window([r["t"] for r in submits if r["status"] != 429]),
                           "query": peak_per_window([r["t"] for r in queries if r["status"] != 429])},
    }


def _last(rs: list, field: str, since: float) -> float | None:
    stamps = [getattr(r, field) for r in rs]
    return None if not stamps or None in stamps else round(max(stamps) - since, 1)


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _postgres() -> tuple[Any, Any]:
    """A PostgreSQL started the way the tests start one (tests/fixtures/ledger.py): (server, databases)."""
    from tests.fixtures.ledger import PgServer, _find_pg_bindir, _LocalPg

    bindir = _find_pg_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL binaries not found (install Debian's postgresql)")
    local = _LocalPg(bindir)
    return local, PgServer(local.start())


def run(tiny: bool = False, *, runs: int = 300, sessions: int = 20, speed: float = 8.0,
        db: str = "sqlite", deadline: float | None = None, pacing: str = "pipelined",
        limiters: tuple[str, ...] = ("shared", "process"), logs: Path | None = None) -> list[Row]:
    if tiny:
        runs, sessions = 12, 4
    legs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_fig6_") as d:
        root = Path(d)
        gateway = GatewayProcess(root / "gateway", speed=speed).start()
        gateway.control("config", balance=100_000)  # every leg's runs must not run out of credit
        local, pg = _postgres() if db == "postgres" else (None, None)
        try:
            for kind in limiters:
                url = (pg.new_database() if pg is not None
                       else f"sqlite:///{root / f'{kind}-{pacing}' / 'ledger.db'}")
                legs.append(_leg(root, gateway, kind, runs=runs, sessions=sessions, db_url=url,
                                 deadline=deadline or runs * 1.5 + 300, pacing=pacing, logs=logs))
                log.info("leg %s: %s", kind, json.dumps(legs[-1], default=str))
                time.sleep(2.0)  # the gateway's one-second windows empty between legs
        finally:
            gateway.stop()
            if local is not None:
                local.stop()
    by_kind = {leg["limiter"]: leg for leg in legs}
    shared = by_kind.get("shared", legs[0])
    per_process = by_kind.get("process")
    limited = shared["submit_429"] + shared["query_429"]
    baseline = float(per_process["submit_429"] + per_process["query_429"]) if per_process else float("nan")
    ok = (limited == 0 and shared["all_finished"] and shared["presses_lost"] == 0
          and shared["runs_with_two_gateway_tasks"] == 0
          and shared["accepted_submits"] == shared["runs_pressed"]
          and shared["archive_files"] == shared["runs_pressed"] and shared["archived_twice"] == 0
          and shared["press_span_s"] <= PRESS_WINDOW)
    return [Row("6", f"gateway 429s, {WEB} web + {WORKERS} workers, {shared['runs_pressed']} presses "
                     f"from {sessions} sessions ({pacing}, {db})", float(limited), baseline, "count", "0", ok,
                baseline_name="per-process limiters", notes={"legs": legs, "db": db, "gateway_speed": speed})]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--speed", type=float, default=8.0)
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--deadline", type=float, help="seconds per leg to wait for every run to be archived "
                    "(default runs x 1.5 + 300)")
    ap.add_argument("--pacing", choices=("pipelined", "acked"), default="pipelined",
                    help="pipelined: each press at its moment, as a browser sends clicks during a rerun; "
                         "acked: a session waits for its previous rerun to finish first")
    ap.add_argument("--limiters", default="shared,process",
                    help="legs to run, in order (shared = lib/shared_limit.py, process = the baseline)")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--logs", type=Path, help="a folder to keep each web process's whole log in")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    rows = run(args.tiny, runs=args.runs, sessions=args.sessions, speed=args.speed, db=args.db,
               deadline=args.deadline, pacing=args.pacing, limiters=tuple(args.limiters.split(",")),
               logs=args.logs)
    out = json.dumps([r.__dict__ for r in rows], indent=2, default=str)
    print(out)
    if args.json:
        args.json.write_text(out)
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())

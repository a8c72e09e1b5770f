"""The per-process background worker: submits drafts, polls due runs, archives finished videos.

Why one worker per server process (or one standalone `python -m lib.worker`, see lib/worker_main.py):
pages never talk to the gateway for status, so a hundred open tabs cost the gateway nothing, and the rate
limiter (inside the client; shared through the ledger when several processes use one key) covers every
request. The ledger is the only shared state: the worker leases due runs (`claim_due`), works on each in a
small thread pool, renews the leases of steps still running, and releases each run with the time of its
next look. It claims only as many runs as each pool has idle threads: a claimed run waiting in a queue
would be held from every other worker, and a backlog of slow archive downloads must not hold up a submit.
A new worker on the same ledger (after a restart) therefore carries on with every unfinished run, and
nothing is ever re-submitted by itself: only a draft is submitted, and a submit that may have reached the
gateway becomes "unknown", never a draft.

No streamlit imports here: the worker runs the same under `streamlit run`, pytest and the benches.
"""
from __future__ import annotations

import heapq
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from lib import ledger as L
from lib.archive import EXPIRED_MESSAGE, Archive, ArchiveError
from lib.contract import DURATIONS, LATEST, LATEST_ONLY_WORDS, MODES
from lib.gateway import (
    GatewayClient,
    GatewayError,
    GatewayTimeout,
    GatewayUnavailable,
    NotFound,
    ProtocolError,
    RateLimited,
    ServerError,
    Task,
    user_message,
)
from lib.lease_renewal import renew_leases
from lib.schedule import (
    CAP,
    DEADLINE,
    FIRST_LOOK,
    FLOOR,
    LATE_EVERY,
    LATE_WINDOW,
    Calibration,
    late_look,
    next_look,
    observe,
)

log = logging.getLogger(__name__)

LEASE = 60.0          # a claim outlives the slowest single step (35 s submit/poll timeouts) with margin
IDLE = 1.0            # longest sleep: runs made by other processes are noticed within this
EXPERIENCE = 20       # finished runs of each mode and duration a starting worker learns from (the ledger)
ERROR_BACKOFF_MAX = 120.0    # api-contract §7.2: back off up to 120 s after errors
ARCHIVE_BACKOFF_MAX = 600.0  # disk full: try again every few minutes, not in a tight loop
HANDLER_ERROR_RETRY = 30.0   # an unexpected bug in one run's handling: look again later, keep the run
SUBMIT_RECORD_TRIES = 6      # ~15 s of retries before a task id that only the gateway knows is logged
NOT_FOUND_LIMIT = 3   # 404s in a row: the gateway no longer knows the task (a pasted id: a typo or another
                      # account's), so following it is over
_KEEP_SAMPLES = 12    # samples kept per run (plus the submit sample): the fit uses the last few
_ARCHIVE_NOW = -1.0   # a step's answer meaning "it just completed: archive it now, in the archive pool"

__all__ = ["Worker", "next_look"]  # next_look lives in lib/schedule.py; re-exported per docs


def _backoff(failures: int, base: float, cap: float) -> float:
    """base, 2·base, 4·base … capped: the n-th consecutive failure waits base·2^(n-1)."""
    return min(cap, base * 2 ** max(0, failures - 1))


def _secs(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def _span(seconds: float) -> str:
    """A duration in words for a card: "1.5 s", "30 minutes", "24 hours"."""
    if seconds < 90:
        return _secs(seconds)
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.0f} hours"


def timed_out_words(deadline: float, every: float, window: float, *, over: bool = False) -> str:
    """The card's words for a run past its deadline: what happened, what the app still does, what to do."""
    head = (f"Timed out: the gateway had not finished this run {_span(deadline)} after it was sent, so the "
            "app stopped waiting for it and sent nothing again. It may still have been billed.")
    if over:
        return (f"{head} It had still not finished {_span(window)} after it was sent, so the app stopped "
                "checking it. Re-run it if you still want the video.")
    return (f"{head} The app still checks it every {_span(every)} until {_span(window)} after sending, and "
            "keeps the video if it finishes late; or re-run it now.")


def task_gone_words(task_id: str | None, times: int) -> str:
    return (f"The gateway no longer knows this task ({task_id}): it answered HTTP 404 to {times} status "
            "checks in a row, so the video cannot be fetched. It may have been billed; re-run it if you "
            "still want the video.")


def _poll_note(err: GatewayError, wait: float) -> str:
    """What the card says while a status check is failing: what happened and what happens next."""
    when = _secs(wait)
    if isinstance(err, RateLimited):
        return f"The gateway asked us to slow down (HTTP 429); the next status check is in {when}."
    if isinstance(err, ServerError):
        return f"The gateway answered HTTP {err.status} (a server error); checking again in {when}."
    if isinstance(err, GatewayTimeout):
        return f"The gateway did not answer the status check in time; checking again in {when}."
    if isinstance(err, GatewayUnavailable):
        return f"Could not reach the gateway (connection refused or dropped); checking again in {when}."
    if isinstance(err, ProtocolError):
        return (f"The gateway sent a status we cannot read ({err.message}); the run is kept and "
                f"checked again in {when}.")
    if isinstance(err, NotFound):
        return f"The gateway does not know this task right now (HTTP 404); checking again in {when}."
    return f"The status check failed: {user_message(err)} Checking again in {when}."


class Worker:
    """Leases due runs from the ledger and moves each one step: submit, poll, or archive."""

    def __init__(
        self,
        ledger: L.Ledger,
        client: GatewayClient,
        archive: Archive,
        *,
        owner: str | None = None,
        heartbeat: Any | None = None,
        clock: Callable[[], float] = time.time,
        threads: int = 4,
        archive_threads: int = 2,
        first_look: float = FIRST_LOOK,
        lease: float = LEASE,
        idle: float = IDLE,
        archive_retry: float = 5.0,
        calibration: Calibration | None = None,
        deadline: float = DEADLINE,
        late_every: float = LATE_EVERY,
        late_window: float = LATE_WINDOW,
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.archive = archive
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.clock = clock
        self.threads = max(1, threads)
        self.first_look = first_look
        self.lease = lease
        self.idle = idle
        self.archive_retry = archive_retry
        self.calibration = calibration or self._experience(ledger)
        self.deadline = deadline          # seconds from submit until a run unfinished is timed out
        self.late_every = late_every      # a timed-out run's slow checks, this far apart…
        self.late_window = late_window    # …until this long after submit
        self.archive_threads = max(1, archive_threads)
        self.heartbeat = heartbeat        # lib.heartbeat.Heartbeat: "a worker is alive" for the pages
        self._gateway_pool = ThreadPoolExecutor(self.threads, thread_name_prefix="worker-gw")
        self._archive_pool = ThreadPoolExecutor(self.archive_threads, thread_name_prefix="worker-archive")
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[Any]] = {}
        self._in_archive: set[str] = set()  # the in-flight runs whose step runs in the archive pool
        self._renewed_at = float("-inf")
        self._samples: dict[str, list[tuple[float, int]]] = {}
        self._failures: dict[str, int] = {}
        self._noted: set[str] = set()
        self._due: list[float] = []  # min-heap of next looks this worker scheduled
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = {"submits": 0, "polls": 0, "archived": 0, "errors": 0}
        self.contract = "v1"  # TOAPIS_CONTRACT (set by lib.services): a latest draft is never sent under v1

    def __repr__(self) -> str:
        return f"Worker(owner={self.owner!r}, threads={self.threads})"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="playground-worker", daemon=True)
        self._thread.start()
        log.info("worker %s started (%d gateway and %d archive threads)", self.owner, self.threads,
                 self.archive_threads)

    def stop(self, timeout: float = 40.0) -> None:
        """Stop claiming, let running steps finish (each is bounded by HTTP timeouts), release leases."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._gateway_pool.shutdown(wait=True)
        self._archive_pool.shutdown(wait=True)
        if self.heartbeat is not None:
            try:
                self.heartbeat.gone(self.owner)
            except Exception:  # noqa: BLE001 - the row then simply ages out
                log.warning("could not remove worker %s's heartbeat", self.owner)
        log.info("worker %s stopped", self.owner)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """A page made a draft: look now instead of at the next scheduled time."""
        self._wake.set()

    def tick(self) -> int:
        """One synchronous pass (tests, benches): claim what is due, finish every step, return the count."""
        claimed = self._dispatch()
        self._drain()
        return claimed

    def _drain(self) -> None:
        while True:
            with self._lock:
                pending = list(self._inflight.values())
            if not pending:
                return
            for fut in pending:
                fut.result()

    # ------------------------------------------------------------------ loop
    def _loop(self) -> None:
        # The wake flag is cleared *before* each pass: a wake() from a page that lands anywhere after the
        # clear (during the claim query, or between it and the wait) leaves the flag set, so the wait
        # returns at once and the next pass sees the new draft. (Clearing after the wait, as before,
        # was safe only because a pass always followed; this order does not depend on that.)
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self._renew()
                self._dispatch()
                self._beat()
            except Exception:  # the ledger may be briefly unavailable: keep the thread alive
                log.exception("worker pass failed; trying again shortly")
                self._stopping.wait(self.idle)
            self._wake.wait(self._sleep_for())

    def _renew(self, *, force: bool = False) -> None:
        """Extend the leases of steps still running (a slow archive download can outlast one lease), so
        no other worker claims a run this one is still working on. Every third of a lease."""
        now = self.clock()
        if not force and now - self._renewed_at < self.lease / 3:
            return
        self._renewed_at = now
        with self._lock:
            ids = list(self._inflight)
        if ids:
            renew_leases(self.ledger, ids, self.owner, now + self.lease)

    def _beat(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.beat(self.owner, threads=self.threads + self.archive_threads)

    def _free(self) -> tuple[int, int]:
        """Idle threads in the gateway pool and the archive pool; must hold the lock."""
        in_archive = len(self._in_archive)
        return self.threads - (len(self._inflight) - in_archive), self.archive_threads - in_archive

    def _sleep_for(self) -> float:
        now = self.clock()
        with self._lock:
            while self._due and self._due[0] <= now - self.lease:
                heapq.heappop(self._due)  # stale entries
            soonest = self._due[0] if self._due else now + self.idle
        return max(0.01, min(self.idle, soonest - now))

    def _dispatch(self) -> int:
        """Lease due runs, per pool only as many as it has idle threads, and start each; returns how many
        were claimed. Nothing claimed ever waits in a queue: another worker may take what we cannot."""
        if self._stopping.is_set() and self._thread is not None:
            return 0
        now = self.clock()
        with self._lock:
            while self._due and self._due[0] <= now:
                heapq.heappop(self._due)
            free_gateway, free_archive = self._free()
        count = 0
        for archive, free in ((False, free_gateway), (True, free_archive)):
            if free <= 0 or (self._stopping.is_set() and self._thread is not None):
                continue
            runs = self.ledger.claim_due(now, self.owner, limit=free, lease=self.lease, archive=archive)
            for run in runs:
                if not self._start(run):
                    return count
                count += 1
        return count

    def _start(self, run: L.Run) -> bool:
        """Hand a claimed run to its pool; False when the pools are shut (the interpreter is exiting)."""
        with self._lock:
            if run.run_id in self._inflight:
                return True  # our own step outlived its lease; it will release when done
            archive = run.state == L.COMPLETED
            pool = self._archive_pool if archive else self._gateway_pool
            try:
                self._inflight[run.run_id] = pool.submit(self._step, run)
            except RuntimeError:
                # The server stopped: the lease lapses and the next process picks the run up.
                self._stopping.set()
                return False
            if archive:
                self._in_archive.add(run.run_id)
        return True

    def _step(self, run: L.Run) -> None:
        """One step of one run; always ends with the run released (or handed on to the archive pool)."""
        next_at: float | None = None
        handed_on = False
        try:
            if run.state == L.DRAFT:
                next_at = self._submit(run)
            elif run.state in (L.QUEUED, L.IN_PROGRESS, L.TIMED_OUT):
                next_at = self._poll(run)
            elif run.state == L.COMPLETED:
                next_at = self._archive(run)
            if next_at == _ARCHIVE_NOW:
                handed_on = self._hand_to_archive(run.run_id)
                # No idle archive thread: released as due now, for whichever worker has one first.
                next_at = None
        except Exception:
            self.stats["errors"] += 1
            log.exception("worker step for run %s failed; keeping the run", run.run_id)
            next_at = self.clock() + HANDLER_ERROR_RETRY
        finally:
            if not handed_on:
                self._release(run.run_id, next_at)

    def _hand_to_archive(self, run_id: str) -> bool:
        """A run that just completed goes straight on to an idle archive thread, keeping its lease."""
        fresh = self.ledger.get(run_id)
        if fresh is None:
            return False
        with self._lock:
            if self._free()[1] <= 0 or self._stopping.is_set():
                return False
            try:
                self._inflight[run_id] = self._archive_pool.submit(self._step, fresh)
            except RuntimeError:
                return False
            self._in_archive.add(run_id)
        return True

    def _release(self, run_id: str, next_at: float | None) -> None:
        try:
            # None: "whatever the run needs now"; never sooner than FLOOR, so a confused run cannot spin.
            self.ledger.release(run_id, self.owner, next_at if next_at is not None else self.clock() + FLOOR)
        finally:
            with self._lock:
                self._inflight.pop(run_id, None)
                self._in_archive.discard(run_id)
                if next_at is not None:
                    heapq.heappush(self._due, next_at)
            self._wake.set()

    def _forget(self, run_id: str) -> None:
        with self._lock:
            self._samples.pop(run_id, None)
            self._failures.pop(run_id, None)
            self._noted.discard(run_id)

    def _fail_count(self, run_id: str) -> int:
        with self._lock:
            self._failures[run_id] = self._failures.get(run_id, 0) + 1
            return self._failures[run_id]

    def _note(self, run_id: str, text: str | None) -> None:
        """A transient sentence for the run card ("retrying in 4 s"); cleared once things work again."""
        with self._lock:
            if text is None and run_id not in self._noted:
                return
            if text is None:
                self._noted.discard(run_id)
            else:
                self._noted.add(run_id)
        self.ledger.set_note(run_id, text)

    # ------------------------------------------------------------------ submit
    def _submit(self, run: L.Run) -> float | None:
        if not self.ledger.claim_for_submit(run.run_id, self.owner):
            return None  # someone else moved it on; the ledger knows what it needs now
        if self.contract != LATEST and (run.request.contract == LATEST or run.request.uses_latest_fields):
            # a draft made under TOAPIS_CONTRACT=latest, met after a restart under v1: never sent
            self._forget(run.run_id)
            self.ledger.mark_submit_failed(run.run_id, "contract", (
                f"This run was {LATEST_ONLY_WORDS} (TOAPIS_CONTRACT=v1), so it was not sent and nothing "
                "was billed — set TOAPIS_CONTRACT=latest and re-run it."))
            return None
        try:
            task = self.client.submit(run.request)
        except GatewayError as err:
            return self._submit_failed(run, err)
        self.stats["submits"] += 1
        now = self.clock()
        samples = [(now, 0)]
        with self._lock:
            self._samples[run.run_id] = samples
            self._failures.pop(run.run_id, None)
        nxt = self._plan(run, samples, now)
        self._record_submitted(run, task, nxt)
        self._note(run.run_id, None)
        if task.status == "completed":
            return self._completed(run.run_id, task)
        return None if task.terminal else nxt

    def _record_submitted(self, run: L.Run, task: Task, nxt: float) -> None:
        """The gateway took the run (and may bill it): its task id must reach the ledger, come what may.

        A ledger hiccup here (SQLite busy, PostgreSQL restarting) is retried; if it never clears, the
        task id is logged loudly so the run can still be recovered by it.
        """
        for attempt in range(SUBMIT_RECORD_TRIES):
            try:
                self.ledger.mark_submitted(run.run_id, task, nxt)
                return
            except Exception:  # noqa: BLE001 - any ledger failure: the task id must not be lost
                log.warning("could not record task %s for run %s (try %d)", task.id, run.run_id, attempt + 1)
                time.sleep(min(0.5 * 2 ** attempt, 5.0))
        log.error("run %s was accepted by the gateway as task %s but the ledger could not record it; "
                  "recover it by that task id", run.run_id, task.id)
        raise RuntimeError(f"ledger could not record task {task.id} for run {run.run_id}")

    def _submit_failed(self, run: L.Run, err: GatewayError) -> float | None:
        """Decide what a failed submit means for billing: refused, not sent, or unknown."""
        now = self.clock()
        if isinstance(err, RateLimited) or (isinstance(err, ServerError) and err.status == 503) or (
            isinstance(err, GatewayUnavailable)
        ):
            # The gateway did not take it (429 / limiter down) or the request never left: safe to send again.
            fails = self._fail_count(run.run_id)
            wait = _backoff(fails, 2.0, ERROR_BACKOFF_MAX)
            if isinstance(err, RateLimited) and err.retry_after is not None:
                wait = max(wait, err.retry_after)
            retry_at = now + wait
            self.ledger.unclaim_submit(run.run_id, retry_at)
            if isinstance(err, GatewayUnavailable):
                text = f"Could not reach the gateway, so nothing was sent; trying again in {_secs(wait)}."
            elif isinstance(err, RateLimited):
                text = f"The gateway asked us to slow down (HTTP 429); sending in {_secs(wait)}."
            else:
                text = f"The gateway is busy (HTTP 503) and did not take the run; sending in {_secs(wait)}."
            self._note(run.run_id, text)
            return retry_at
        self._forget(run.run_id)
        if err.outcome_unknown or isinstance(err, ProtocolError) or (
            isinstance(err, ServerError) and err.status in (502, 504)
        ):
            # It may have reached the gateway (and been billed): never send it again by ourselves.
            self.ledger.mark_unknown(run.run_id, user_message(err) if err.outcome_unknown else (
                f"The gateway's answer to the submit was unreadable or came from a failing proxy "
                f"({err}); a task may have been created (and billed). Recover it by its task id if "
                "you have one, or re-submit knowingly."
            ))
            return None
        code = err.code if isinstance(err.code, str) else (err.type or f"http_{err.status}")
        self.ledger.mark_submit_failed(run.run_id, code, user_message(err))
        return None

    @staticmethod
    def _experience(ledger: L.Ledger) -> Calibration:
        """A Calibration that starts from the ledger's finished runs of each mode and duration (bounded
        reads, once): the poll plan skips the looks that experience says cannot see a finish yet."""
        calibration = Calibration()
        for mode in MODES:
            for duration in DURATIONS:
                try:
                    times = ledger.finish_times(mode, int(duration), limit=EXPERIENCE)
                except Exception as exc:  # noqa: BLE001 - no experience is a slower plan, not a failure
                    log.info("worker: no finish times to learn from (%s)", exc.__class__.__name__)
                    return calibration
                calibration.learn(mode, int(duration), [done for _, done in reversed(times) if done > 0])
        return calibration

    # ------------------------------------------------------------------ poll
    def _seed(self, run: L.Run) -> list[tuple[float, int]]:
        """Samples for a run this process has not seen (after a restart): submit time and last progress."""
        with self._lock:
            samples = self._samples.get(run.run_id)
            if samples is not None:
                return samples
        start = run.submitted_at or run.created_at
        samples = [(start, 0)]
        if run.polls > 0 and run.updated_at > start:
            samples.append((min(run.updated_at, self.clock()), run.progress))
        with self._lock:
            self._samples[run.run_id] = samples
        return samples

    def _plan(self, run: L.Run, samples: list[tuple[float, int]], now: float) -> float:
        """The next look from the progress so far, but no later than the run's deadline."""
        mode = run.mode or "std"
        duration = run.duration or 5
        nxt = next_look(samples, now, mode=mode, duration=duration,
                        prior=self.calibration.prior(mode, duration), first_look=self.first_look)
        return min(nxt, max(now + FLOOR, samples[0][0] + self.deadline))

    @staticmethod
    def _sent_at(run: L.Run) -> float:
        return run.submitted_at or run.created_at

    def _time_out(self, run: L.Run, now: float) -> float | None:
        """Past the deadline: stop waiting (timed out, slow checks from now on), or, when a timed-out
        run's window is over, stop checking. Returns the next slow check."""
        nxt = late_look(self._sent_at(run), now, every=self.late_every, window=self.late_window)
        if run.state != L.TIMED_OUT or nxt is None:
            words = timed_out_words(self.deadline, self.late_every, self.late_window, over=nxt is None)
            if self.ledger.mark_timed_out(run.run_id, words, nxt):
                log.info("run %s timed out; slow checks %s", run.run_id, "over" if nxt is None else "go on")
        self._forget(run.run_id)
        return nxt

    def _poll(self, run: L.Run) -> float | None:
        if not run.task_id:
            log.error("run %s is %s without a task id; looking again later", run.run_id, run.state)
            return self.clock() + CAP
        samples = self._seed(run)
        try:
            task = self.client.get_task(run.task_id)
        except GatewayError as err:
            return self._poll_failed(run, err)
        self.stats["polls"] += 1
        now = self.clock()
        with self._lock:
            self._failures.pop(run.run_id, None)
        if task.status == "completed":
            if len(samples) > 1 and run.mode and run.duration and run.state != L.TIMED_OUT:
                total = (task.completed_at - task.created_at
                         if task.completed_at is not None and task.created_at is not None else None)
                self.calibration.add(observe(samples, now, run.mode, run.duration, gateway_total=total))
            self.ledger.apply_task(run.run_id, task, now)
            self._note(run.run_id, None)
            self._forget(run.run_id)
            return self._completed(run.run_id, task)
        if task.status == "failed":
            self.ledger.apply_task(run.run_id, task, None)
            self._note(run.run_id, None)
            self._forget(run.run_id)
            return None
        if run.state == L.TIMED_OUT or now >= self._sent_at(run) + self.deadline:
            self.ledger.apply_task(run.run_id, task, now)  # keep its progress (and reset its 404 count)
            return self._time_out(run, now)
        samples.append((now, task.progress))
        del samples[1:-_KEEP_SAMPLES]  # keep the submit sample and the recent ones
        nxt = self._plan(run, samples, now)
        self.ledger.apply_task(run.run_id, task, nxt)
        self._note(run.run_id, None)
        return nxt

    def _poll_failed(self, run: L.Run, err: GatewayError) -> float | None:
        now = self.clock()
        fails = self._fail_count(run.run_id)
        misses = self.ledger.note_not_found(run.run_id) if isinstance(err, NotFound) else 0
        if misses >= NOT_FOUND_LIMIT:
            if run.source == "recovered":
                self.ledger.mark_submit_failed(
                    run.run_id, "task_not_found",
                    f"The gateway has no task {run.task_id} (HTTP 404, {misses} times). Check the id was "
                    "copied whole and belongs to this API key's account; nothing was billed here.",
                )
            else:
                self.ledger.mark_unknown(run.run_id, task_gone_words(run.task_id, misses), L.TASK_GONE_CODE)
            self._forget(run.run_id)
            return None
        if run.state == L.TIMED_OUT or now >= self._sent_at(run) + self.deadline:
            return self._time_out(run, now)  # a failing check changes nothing about the deadline
        wait = _backoff(fails, 1.0, ERROR_BACKOFF_MAX)
        if isinstance(err, RateLimited):
            wait = max(FLOOR, err.retry_after if err.retry_after is not None else 1.0)
        elif isinstance(err, ProtocolError):
            wait = _backoff(fails, 4.0, ERROR_BACKOFF_MAX)
        elif not isinstance(err, (ServerError, GatewayUnavailable, GatewayTimeout, NotFound)):
            wait = _backoff(fails, CAP, ERROR_BACKOFF_MAX)  # 401 and the like: a person has to act
        log.info("status check for run %s failed (%s); next in %.1f s", run.run_id, err, wait)
        self._note(run.run_id, _poll_note(err, wait))
        return now + wait

    # ------------------------------------------------------------------ archive
    def _completed(self, run_id: str, task: Task) -> float | None:
        """Archive a finished task now or, when the gateway's video link was refused, say so in words."""
        reason = task.no_video_reason  # words whenever a completed task's link was refused
        if task.video_url_problem is None or reason is None:
            return _ARCHIVE_NOW  # a missing link is for _archive to explain (an older answer may have one)
        self.ledger.mark_archive_error(run_id, "bad_url", reason)
        return None

    def _archive(self, run: L.Run) -> float | None:
        if run.video_path is not None:
            return None  # archived videos are never touched again
        if not run.video_url:
            self.ledger.mark_archive_error(
                run.run_id, "bad_url",
                "The gateway said the run completed but gave no video link, so there is nothing to archive.",
            )
            return None
        try:
            video = self.archive.store_video(run.run_id, run.video_url)
            poster: str | None
            try:
                poster = self.archive.relative(
                    self.archive.store_poster(run.run_id, video, run.thumbnail_url)
                )
            except ArchiveError as exc:
                if exc.retryable:
                    raise
                log.warning("no poster for run %s: %s", run.run_id, exc.message)
                poster = None
            self.ledger.mark_archived(run.run_id, self.archive.relative(video), poster)
        except ArchiveError as exc:
            now = self.clock()
            expired = run.expires_at is not None and run.expires_at <= now
            if exc.retryable and not expired:
                wait = _backoff(self._fail_count(run.run_id), self.archive_retry, ARCHIVE_BACKOFF_MAX)
                self._note(run.run_id, f"{exc.message} Next try in {_secs(wait)}.")
                return now + wait
            code, message = (exc.code, exc.message) if not (exc.retryable and expired) else (
                "expired", EXPIRED_MESSAGE)
            self.ledger.mark_archive_error(run.run_id, code, message)
            self._note(run.run_id, None)
            self._forget(run.run_id)
            return None
        self.stats["archived"] += 1
        self._note(run.run_id, None)
        self._forget(run.run_id)
        return None



if __name__ == "__main__":  # `python -m lib.worker`: the standalone worker (lib/worker_main.py)
    from lib.worker_main import main

    raise SystemExit(main())

"""When to look at a task next: a pure plan from the progress samples seen so far.

Why a pure function: the polling plan decides both how fast a finished video shows up and how many GETs
we spend, so it must be tested as a table, tuned offline, and be the same after a restart (the worker
re-seeds the samples from the ledger). The docs' fixed schedule (first look at 5 s, then every 10 s)
notices a finish 5 s late on average; here we estimate the finish from the progress slope and look just
after it, back off while progress stalls, and never wait longer than `cap` or less than `floor`.

`samples` are (time, progress) pairs, oldest first; the first one is the submit itself, (submitted_at, 0).
Times are Unix seconds like the ledger's.
"""
from __future__ import annotations

import math
import statistics
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

FIRST_LOOK = 5.0   # docs/api-contract.md §7.2 "Initial wait: 5 seconds"
FLOOR = 0.5        # never look at one task more often than this
CAP = 30.0         # never leave a task unlooked-at longer than this
MARGIN = 0.25      # look this long after the estimated finish (integer progress and clock jitter)
STALL_POINTS = 3.0  # progress "stalls" when it should have risen this many points and did not
_FIT_SAMPLES = 6   # the slope is fitted over this many recent samples
_QUEUE_GROWTH = 1.0  # while unsure, the next gap may be as long as the time waited so far (doubling)
_RISE_GROWTH = 2.0   # once progress rises, a gap may be this many times the time waited so far
_TRUSTED_SPREAD = 0.5  # a prior this sure (from observed tasks) is trusted to skip the queued looks
_TIGHT_SPREAD = 0.1   # a prior this sure predicts the finish better than a wobbling progress slope
_AIM_WITHIN = 6.0     # when the finish is this close, look just after it
_APPROACH = 0.65      # otherwise look this far along the way and re-aim…
_AIM_LEAD = 2.0       # …but at least this long before the estimated finish
_TRUST_LOCAL_WITHIN = 15.0  # within this of the finish the recent slope alone aims the looks
_LOCAL_SAMPLES = 2    # the recent slope is fitted over this many looks (a segment of steady progress)
_HOLD_AT = 99         # a task at 99 % waits for its file: hold, not stall
_HOLD_GROWTH = 0.3    # while held, the next gap is this fraction of the hold so far…
_HOLD_CAP = 3.0       # …but at most this: a finished video should show within seconds
_TIGHT_CAP_FACTOR = 2.0  # with sharp experience of this kind of task, gaps may be this many caps long
# The ledger's experience of a kind of task (Calibration, seeded from its finished runs): a task of that
# kind is not looked at before exp(mean − Z·sd) of the log totals seen, less a lead (about the 1st
# percentile), and no gap passes the moment by which TYPICAL_SHARE of the tasks still running would have
# finished. Tuned in bench/sim_schedule.py on seeds 1-40, checked on 201-260, 301-360 and 401-460.
EARLIEST_MIN_SEEN = 8    # totals of this kind needed before the floor applies (fewer: no floor)
EARLIEST_Z = 2.33
EARLIEST_MIN_SD = 0.1    # a few similar totals must not make the floor bolder than this spread allows
EARLIEST_LEAD = 3.0      # the skip lands this long before that earliest finish
TYPICAL_SHARE = 0.4      # see `_not_after_typical`
_AIM_WITHIN_SURE = 4.0   # with that experience the slope's aim is trusted only this close to the end

# Every run ends: past DEADLINE after submit a run is "timed out" (the docs advise giving up after 10
# minutes; the default leaves room for a slow queue). A timed-out run is still looked at every LATE_EVERY
# until LATE_WINDOW after submit (the gateway keeps a finished video 24 h), so a late finish is archived.
DEADLINE = 1800.0
LATE_EVERY = 600.0
LATE_WINDOW = 86400.0


@dataclass(frozen=True)
class Prior:
    """Expected seconds in the queue and while rendering, and how far off that may be (0.6 = ±60 %)."""

    queue: float
    run: float
    spread: float = 0.6
    earliest: float | None = None  # seconds after submit before which this kind has never been seen to finish
    log_mean: float | None = None  # experience's totals as a log-normal (mean and sd of their logs)
    log_sd: float | None = None

    @property
    def total(self) -> float:
        return self.queue + self.run

    @property
    def tight(self) -> bool:
        return self.spread <= _TIGHT_SPREAD

    def typical_by(self, waited: float, share: float) -> float | None:
        """Seconds after submit by which `share` of the tasks of this kind that were still running after
        `waited` s have finished, by experience (None without it): the log-normal of the totals seen,
        cut at `waited`."""
        if self.log_mean is None or self.log_sd is None or self.log_sd <= 0:
            return None
        normal = statistics.NormalDist(self.log_mean, self.log_sd)
        done = normal.cdf(math.log(max(waited, 1e-3)))
        goal = done + share * (1 - done)
        if goal >= 1 - 1e-9:
            return None
        return math.exp(normal.inv_cdf(goal))


def default_prior(mode: str, duration: int) -> Prior:
    """What the real gateway is documented to take ("typical 1-5 minutes"), before we have seen anything.

    pro renders 1080p (about 2.25x the pixels of 720p) and longer clips render longer; the numbers are a
    starting point only: `Calibration` replaces them with what this process has observed.
    """
    run = 60.0 * (max(duration, 1) / 5.0) ** 0.8 * (1.6 if mode == "pro" else 1.0)
    return Prior(queue=10.0, run=run, spread=0.6)


def _rising(samples: Sequence[tuple[float, int]]) -> list[tuple[float, int]]:
    """The samples of the current rise: after the last drop in progress (a gateway-side retry restarts it)."""
    start = 0
    for i in range(1, len(samples)):
        if samples[i][1] < samples[i - 1][1]:
            start = i
    return [(t, p) for t, p in samples[start:] if p > 0]


def _fit(rising: Sequence[tuple[float, int]]) -> tuple[float, float] | None:
    """Least-squares line (rate, value at the mean time) through the recent rising samples.

    A reported integer p means the true progress lies in [p, p+1), so p + 0.5 is the unbiased value.
    Only the last few samples are used: a gateway may speed up or slow down along the way.
    """
    recent = list(rising[-_FIT_SAMPLES:])
    if len({p for _, p in recent}) < 2:
        return None
    n = len(recent)
    mean_t = sum(t for t, _ in recent) / n
    mean_p = sum(p + 0.5 for _, p in recent) / n
    var_t = sum((t - mean_t) ** 2 for t, _ in recent)
    if var_t <= 0:
        return None
    rate = sum((t - mean_t) * (p + 0.5 - mean_p) for t, p in recent) / var_t
    if rate <= 0:
        return None
    return rate, mean_p - rate * mean_t


def slope(samples: Sequence[tuple[float, int]]) -> float | None:
    """Progress points per second over the current rise, or None until two distinct values are seen."""
    fit = _fit(_rising(samples))
    return fit[0] if fit else None


def estimate_finish(samples: Sequence[tuple[float, int]], prior: Prior) -> float | None:
    """Best guess of when progress reaches 100, or None while nothing has risen yet."""
    rising = _rising(samples)
    if not rising:
        return None
    last_t = samples[-1][0]
    fit = _fit(rising)
    if fit is not None:
        rate, intercept = fit
        return max(last_t, (100 - intercept) / rate)
    # One value seen so far: the rise began after the last zero sample, so the finish lies between now
    # and the slowest slope consistent with that; the prior's render time picks a point inside.
    first_t, first_p = rising[0]
    zeros = [t for t, p in samples if p <= 0 and t < first_t]
    from_prior = first_t + prior.run * (100 - first_p) / 100
    if zeros:
        slowest = zeros[-1] + (first_t - zeros[-1]) * 100 / max(first_p, 1)
        return min(max(from_prior, last_t), max(slowest, last_t))
    return max(from_prior, last_t)


def _stalled_for(samples: Sequence[tuple[float, int]]) -> float:
    """Seconds since progress last changed."""
    last_t, last_p = samples[-1]
    changed_t = last_t
    for t, p in reversed(samples):
        if p != last_p:
            break
        changed_t = t
    return last_t - changed_t


def next_look(
    samples: Sequence[tuple[float, int]],
    now: float,
    *,
    mode: str,
    duration: int,
    prior: Prior | None = None,
    first_look: float = FIRST_LOOK,
    floor: float = FLOOR,
    cap: float = CAP,
) -> float:
    """Unix time of the next status look for a task, from its (time, progress) samples (oldest first)."""
    if not samples:
        return now + first_look
    prior = prior or default_prior(mode, duration)
    submitted = samples[0][0]
    last_t = samples[-1][0]
    if len(samples) == 1:
        if prior.earliest is not None:
            # Experience of this kind: a look before the earliest plausible finish could only say "queued"
            # or "n %", so the first look is there (never before the documented first look). What is
            # given up: a task that fails within the first seconds is told then, not 5 s after submit.
            return max(now, _not_before_plausible(submitted + first_look, samples, prior))
        # Nothing looked at yet: the documented first look (or at once, if that time has passed).
        return max(now, min(submitted + first_look, now + cap))
    earliest = max(now, last_t + floor)
    latest = max(now, last_t) + (cap * _TIGHT_CAP_FACTOR if prior and prior.tight else cap)

    finish = estimate_finish(samples, prior)
    if finish is None:
        return _not_before_plausible(_queued_target(samples, prior, floor, earliest, latest), samples, prior)

    stalled = len(samples) >= 3 and samples[-1][1] == samples[-2][1] < _HOLD_AT
    if stalled and finish <= last_t + floor:
        # The estimate has caught up with now while progress stands still: a stall, which says nothing
        # about when it ends. Back off (half the stall so far) instead of looking every `floor` seconds.
        target = last_t + max(floor, 0.5 * _stalled_for(samples))
        return _not_after_typical(min(max(target, earliest), latest), samples, prior, floor)
    if samples[-1][1] >= _HOLD_AT:
        # Rendering is done on the gateway's side but the file is not ready: nothing predicts the end of
        # this hold, so look often at first and then a little less often (latency stays a fraction of it).
        return min(max(last_t + min(_HOLD_CAP, _HOLD_GROWTH * _stalled_for(samples)), earliest), latest)
    if slope(samples) is None:
        # One value only: the finish guess is rough, so look part of the way there to measure the slope
        # (without experience, no further than the geometric queued-phase step).
        target = last_t + (finish - last_t) * (1 - prior.spread)
        if prior.spread >= _TRUSTED_SPREAD:
            target = min(target, last_t + max(floor, _RISE_GROWTH * (last_t - submitted)))
        return _not_after_typical(min(max(target, earliest), latest), samples, prior, floor)
    # Real progress is uneven (segments of different speeds, stalls, jumps): the recent slope and the
    # average since the rise began each misjudge the finish now and then, in opposite ways. The earlier
    # of the two is the safe guess (looking early costs a GET, looking late costs the person a wait).
    local = _local_finish(samples)
    finish = min(f for f in (local, _average_finish(samples), finish) if f is not None)
    if local is not None and local - last_t <= _TRUST_LOCAL_WITHIN:
        # Near the end the last stretch's own speed is what counts (a slow last stretch, a hold near 100).
        finish = local
    remaining = finish - last_t
    if remaining <= (_AIM_WITHIN_SURE if prior.earliest is not None else _AIM_WITHIN):
        target = finish + MARGIN
    else:
        # Far from the end the estimate may still move: go most of the way, keeping a lead that shrinks
        # with the distance, then aim with fresh samples.
        target = finish - max(_AIM_LEAD, (1 - _APPROACH) * remaining)
        # A young rise may be far off: never jump further than a multiple of the time waited so far.
        target = min(target, last_t + max(floor, _RISE_GROWTH * (last_t - submitted)))
        # Experience of this kind of task: progress may jump, so never pass the earliest finish that
        # experience finds plausible without a look.
        plausible = submitted + prior.total * (1 - prior.spread / 2)
        if prior.spread < _TRUSTED_SPREAD and plausible - _AIM_LEAD > last_t:
            target = min(target, plausible - _AIM_LEAD)
    # Gaps may exceed `cap` only while the finish is far: half the distance to it at most.
    latest = max(latest, last_t + min(remaining / 2, cap * _TIGHT_CAP_FACTOR))
    target = _not_before_plausible(min(max(target, earliest), latest), samples, prior)
    return _not_after_typical(target, samples, prior, floor)


def _not_after_typical(target: float, samples: Sequence[tuple[float, int]], prior: Prior,
                       floor: float) -> float:
    """With experience of this kind, no gap passes the moment by which TYPICAL_SHARE of the tasks still
    running now would have finished. Why: mid-way, progress predicts the finish worse than experience
    does (stalls, jumps and fast last stretches: the log error of the slope's guess has a spread of about
    0.5 against experience's 0.12 on the local gateway's REALISTIC clock), and one long gap past a finish
    is a lag of tens of seconds."""
    submitted, last_t = samples[0][0], samples[-1][0]
    typical = prior.typical_by(last_t - submitted, TYPICAL_SHARE)
    if typical is None:
        return target
    return min(target, max(submitted + typical, last_t + floor))


def _not_before_plausible(target: float, samples: Sequence[tuple[float, int]], prior: Prior) -> float:
    """With the ledger's experience of this kind of task (`prior.earliest`), a look before the earliest
    finish plausible for it can only say "not yet": skip to a little before that moment. The progress
    model's jumps and fast stretches are what make the middle looks necessary without it; with it, the
    middle of a task costs one look."""
    if prior.earliest is None:
        return target
    return max(target, samples[0][0] + prior.earliest - EARLIEST_LEAD)


def _queued_target(samples: Sequence[tuple[float, int]], prior: Prior, floor: float, earliest: float,
                   latest: float) -> float:
    """Still queued (progress 0). Without experience, widen the gaps geometrically (a 15 s task and a
    5 min task both cost few looks); with it, go straight to the earliest plausible finish."""
    submitted, last_t = samples[0][0], samples[-1][0]
    waited = last_t - submitted
    plausible = submitted + prior.total * (1 - prior.spread)
    if prior.spread >= _TRUSTED_SPREAD or plausible <= last_t:
        target = last_t + max(floor, _QUEUE_GROWTH * waited)
        if plausible > last_t:
            target = min(target, plausible)
    else:
        target = plausible
    return min(max(target, earliest), latest)


def _local_finish(samples: Sequence[tuple[float, int]]) -> float | None:
    """The finish at the slope of the last few looks, or None while progress stands still."""
    rising = _rising(samples)
    if len(rising) < 2 or rising[-1][1] == rising[-2][1]:
        return None
    fit = _fit(rising[-_LOCAL_SAMPLES:])
    if fit is None:
        return None
    rate, intercept = fit
    return max(samples[-1][0], (100 - intercept) / rate)


def _average_finish(samples: Sequence[tuple[float, int]]) -> float | None:
    """The finish at the average speed since progress started (half-way between the last look that saw
    0 and the first that saw more): stalls and fast stretches even out over a run."""
    rising = _rising(samples)
    if not rising:
        return None
    first_t = rising[0][0]
    zeros = [t for t, p in samples if p <= 0 and t < first_t]
    began = (zeros[-1] + first_t) / 2 if zeros else samples[0][0]
    last_t, last_p = rising[-1]
    if last_t <= began:
        return None
    rate = (last_p + 0.5) / (last_t - began)
    return last_t + (100 - last_p - 0.5) / rate


def late_look(sent_at: float, now: float, *, every: float = LATE_EVERY,
              window: float = LATE_WINDOW) -> float | None:
    """When to check a timed-out run again: every `every` seconds, the last check at the window's end;
    None once `window` seconds have passed since it was sent (the checks are over)."""
    end = sent_at + window
    if now >= end:
        return None
    return min(now + every, end)


@dataclass(frozen=True)
class Observation:
    """What one finished task took: seconds in total and rendering (run None when unmeasured).

    `exact` when the total came from the gateway's own created/completed times rather than our looks.
    """

    mode: str
    duration: int
    total: float
    run: float | None
    exact: bool = False


def observe(
    samples: Sequence[tuple[float, int]],
    finished_at: float,
    mode: str,
    duration: int,
    *,
    gateway_total: float | None = None,
) -> Observation:
    """Durations of a task that completed at `finished_at` (the look that saw it).

    `gateway_total` (completed_at - created_at as the gateway reports them) is preferred: our looks only
    bound the finish, the gateway knows it.
    """
    submitted = samples[0][0]
    fit = _fit(_rising(samples))
    end = finished_at
    run = None
    if fit is not None:
        rate, intercept = fit
        end = min(finished_at, max(samples[-1][0], (100 - intercept) / rate))
        run = 100 / rate
    looked = (samples[-1][0] - submitted, finished_at - submitted)  # the finish lies between these looks
    if gateway_total is not None and gateway_total > 0:
        # Whole-second timestamps (as ToAPIs sends them) put the true total within ±1 s of the difference.
        slack = 1.0 if float(gateway_total).is_integer() else 0.0
        lo, hi = max(looked[0], gateway_total - slack), min(looked[1], gateway_total + slack)
        # The midpoint. Aiming at the early end was tried: an early look hands the next one to the
        # progress slope, not the 0.5 s floor, and bench figure 1 got worse (median 1.38 s, p95 3.61 s,
        # against 1.09 s and 2.50 s with the midpoint).
        total = (lo + hi) / 2 if lo <= hi else gateway_total
        return Observation(mode, duration, total, min(run, total) if run else None, True)
    return Observation(mode, duration, max(end - submitted, 0.0), run)


class Calibration:
    """Learns how long tasks really take in this process, so the queued-phase guess gets sharp.

    Per (mode, duration) it keeps the last few observations; for a combination not seen yet it scales
    the default prior by the median ratio observed/default over every combination. Thread-safe.
    """

    def __init__(self, keep: int = 20) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, int], deque[Observation]] = {}
        self._ratios: deque[float] = deque(maxlen=4 * keep)

    def learn(self, mode: str, duration: int, totals: Sequence[float]) -> None:
        """Past tasks of one kind, oldest first (the ledger's finished runs: submit → noticed done), so a
        worker that starts knows what its predecessors saw. Our notice came a little after the gateway's
        finish, which only moves the `earliest` floor later by that much; EARLIEST_LEAD covers it."""
        for total in totals:
            self.add(Observation(mode, int(duration), float(total), None))

    def add(self, obs: Observation) -> None:
        if obs.total <= 0:
            return
        with self._lock:
            self._by_key.setdefault((obs.mode, obs.duration), deque(maxlen=self._keep)).append(obs)
            self._ratios.append(obs.total / default_prior(obs.mode, obs.duration).total)

    def prior(self, mode: str, duration: int) -> Prior:
        base = default_prior(mode, duration)
        with self._lock:
            seen = list(self._by_key.get((mode, duration), ()))
            ratios = list(self._ratios)
        if seen:
            totals = [o.total for o in seen]
            runs = [o.run for o in seen if o.run]
            total = statistics.median(totals)
            run = statistics.median(runs) if runs else total * base.run / base.total
            run = min(run, total)
            if len(seen) == 1:
                spread = 0.08 if seen[0].exact else 0.2
            else:
                spread = max(0.03, min(0.6, (max(totals) - min(totals)) / total))
            if len(totals) < EARLIEST_MIN_SEEN:
                return Prior(queue=total - run, run=run, spread=spread)
            logs = [math.log(x) for x in totals]
            mean, sd = statistics.fmean(logs), max(EARLIEST_MIN_SD, statistics.stdev(logs))
            return Prior(queue=total - run, run=run, spread=spread, earliest=math.exp(mean - EARLIEST_Z * sd),
                         log_mean=mean, log_sd=sd)
        if ratios:
            k = statistics.median(ratios)
            return Prior(queue=base.queue * k, run=base.run * k, spread=0.35)
        return base

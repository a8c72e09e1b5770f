"""The long-lived parts of one server process, built once (lib/ui/state.py wraps this in st.cache_resource).

Why a container: the ledger, the gateway client, the rate limiter and the worker must exist exactly once
per process (one limiter for all requests, one worker polling), and tests and benches need the same wiring
without Streamlit. Which gateway is used follows the settings:
- no API key and no base URL: the embedded local gateway, started here on a free port;
- a base URL and no key: a local gateway run separately (`python -m lib.local_gateway`);
- a key: the real gateway (TOAPIS_BASE_URL, default https://toapis.com).

The rate limiter is per process (lib/ratelimit.py) or shared by every process on the ledger
(lib/shared_limit.py), per PLAYGROUND_RATE_LIMIT: "auto" shares it when the ledger is PostgreSQL (a team:
several processes, one key) or when this process's worker is off (a standalone worker sends alongside the
web processes), and keeps the in-memory limiter for the single-process SQLite default, which needs no
database round trip per call. With PLAYGROUND_WORKER=off the worker is built but never started here.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import requests

from lib.archive import Archive
from lib.config import LOCAL_API_KEY, Settings
from lib.gateway import Balance, GatewayClient
from lib.heartbeat import Heartbeat, no_worker_notice
from lib.ledger import Ledger
from lib.ratelimit import RateLimiter
from lib.safe_fetch import FetchPolicy, SafeFetcher
from lib.shared_limit import SharedRateLimiter, limiter_kind
from lib.storage import open_storage
from lib.worker import Worker

if TYPE_CHECKING:
    from lib.local_gateway import LocalGateway

log = logging.getLogger(__name__)

PROBE_TIMEOUT = (2.0, 3.0)


@dataclass
class Services:
    """Everything a page or a bench needs; `stop()` ends the worker and the embedded gateway."""

    settings: Settings
    ledger: Ledger
    client: GatewayClient          # for pages: uploads, confirming a task id (one attempt each)
    archive: Archive
    worker: Worker                 # owns its own client (it schedules its retries itself)
    local_gateway: LocalGateway | None  # when embedded
    limiter: RateLimiter | SharedRateLimiter
    heartbeat: Heartbeat | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def base_url(self) -> str:
        return self.client.base_url

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.worker.stop()
        if self.local_gateway is not None:
            self.local_gateway.stop()
        self.ledger.close()

    def balance(self) -> Balance | None:
        """The balance for the sidebar: short timeouts and no retries, and not asked at all while the
        gateway has us rate-limited, so a slow or failing gateway never holds up drawing a page."""
        if self.limiter.paused_for("query") > 0:
            return None
        probe = GatewayClient(self.base_url, self.settings.bearer_key, timeout=PROBE_TIMEOUT,
                              limiter=self.limiter, session=requests.Session())
        try:
            return probe.balance()
        finally:
            probe.session.close()

    def no_worker_notice(self) -> str | None:
        """Words for the page when this process runs no worker, drafts wait, and no worker is alive."""
        if self.settings.worker != "off" or self.heartbeat is None:
            return None
        try:
            return no_worker_notice(self.ledger, self.heartbeat)
        except Exception:  # a notice must never break drawing a page
            log.warning("could not check for a running worker", exc_info=True)
            return None


def worker_client(base_url: str, api_key: str, limiter: RateLimiter | SharedRateLimiter) -> GatewayClient:
    """The worker's client. Like every GatewayClient it makes one attempt per call, so every 429/5xx/drop
    reaches the worker, which notes it on the run in words and schedules the next look itself (honouring
    Retry-After) instead of blocking a pool thread inside urllib3."""
    return GatewayClient(base_url, api_key, limiter=limiter)


def make_limiter(settings: Settings, ledger: Ledger, key: str) -> RateLimiter | SharedRateLimiter:
    """The shared limiter or the per-process one, per PLAYGROUND_RATE_LIMIT (see the module's words)."""
    if limiter_kind(ledger.dialect, settings.rate_limit, worker=settings.worker) == "shared":
        return SharedRateLimiter(ledger.engine, key)
    return RateLimiter()


def start_services(settings: Settings, *, start_worker: bool | None = None, worker_threads: int = 4,
                   archive_threads: int = 2) -> Services:
    """Build and start everything for one process; the embedded gateway when there is no key and no URL.
    `start_worker` None follows PLAYGROUND_WORKER."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.archive_s3 is None:
        settings.archive_dir.mkdir(parents=True, exist_ok=True)
    local = None
    if settings.api_key:
        base_url = settings.base_url or "https://toapis.com"
        key = settings.api_key
    elif settings.base_url:
        base_url, key = settings.base_url, LOCAL_API_KEY
    else:
        from lib.local_gateway import LocalGateway  # only needed (and importable cost paid) when embedded

        local = LocalGateway(settings.data_dir / "local_gateway", port=0, speed=settings.local_speed,
                             progress=settings.local_progress).start()
        if local.engine is not None:  # the embedded gateway speaks the contract the app sends
            local.engine.contract = settings.contract
        base_url, key = local.url, LOCAL_API_KEY
        log.info("embedded local gateway at %s (speed %s)", base_url, settings.local_speed)
    ledger: Ledger | None = None
    try:
        ledger = Ledger(settings.db_url)
        limiter = make_limiter(settings, ledger, key)
        client = GatewayClient(base_url, key, limiter=limiter)
        # Only the configured gateway's own origin may be a local or private address (the embedded and
        # test gateways serve files from 127.0.0.1); any other file host must be public (and listed).
        fetcher = SafeFetcher(FetchPolicy.for_gateway(base_url, settings.file_hosts))
        archive = Archive(settings.archive_dir, fetcher=fetcher,
                          storage=open_storage(settings.archive_location))
        heartbeat = Heartbeat(ledger)
        worker = Worker(ledger, worker_client(base_url, key, limiter), archive,
                        first_look=settings.first_look, threads=worker_threads,
                        archive_threads=archive_threads, deadline=settings.run_deadline,
                        heartbeat=heartbeat)
        worker.contract = settings.contract
    except Exception:
        if ledger is not None:
            ledger.close()
        if local is not None:
            local.stop()
        raise
    services = Services(settings, ledger, client, archive, worker, local, limiter, heartbeat)
    if start_worker if start_worker is not None else settings.worker == "on":
        worker.start()
    return services

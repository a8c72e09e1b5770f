"""`python -m lib.worker`: the worker on its own, with no page open (a team's deployment, or a server
whose web processes run with PLAYGROUND_WORKER=off).

Why a separate process: a worker that starts only when someone opens a page leaves runs unsent and
unarchived after a restart until a person looks. This one starts with the machine, follows every
unfinished run in the ledger, and stops cleanly on SIGTERM/SIGINT: it claims nothing more, lets the
steps in flight finish (each bounded by its HTTP timeouts), releases their leases and removes its
heartbeat. A second signal exits at once; the leases then lapse and the next worker takes the runs over.
Settings are the app's (lib/config.py); logs go to stderr and never contain the API key.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType

from lib.config import SettingError, load_settings, mask_db_url

log = logging.getLogger("lib.worker")

EMBEDDED_WORDS = (
    "The standalone worker needs a gateway every process can reach: set TOAPIS_API_KEY for ToAPIs, or "
    "run the local gateway (`python -m lib.local_gateway --port 8765`) and set "
    "TOAPIS_BASE_URL=http://127.0.0.1:8765. An embedded gateway inside this worker would be one the web "
    "pages cannot see."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=4, help="gateway threads (submits, status checks)")
    parser.add_argument("--archive-threads", type=int, default=2, help="archive download threads")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except (SettingError, ValueError) as exc:
        print(f"Cannot start the worker: {exc}", file=sys.stderr)
        return 2
    if settings.api_key is None and settings.base_url is None:
        print(f"Cannot start the worker: {EMBEDDED_WORDS}", file=sys.stderr)
        return 2
    if args.threads < 1 or args.archive_threads < 1:
        print("Cannot start the worker: --threads and --archive-threads must be at least 1.", file=sys.stderr)
        return 2
    from lib.services import start_services  # after the settings check: a bad one costs no import time

    stop = threading.Event()
    signals = {"count": 0}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        signals["count"] += 1
        if signals["count"] > 1:
            log.warning("second %s: exiting now; the leases lapse and another worker takes over",
                        signal.Signals(signum).name)
            os._exit(1)
        log.info("%s: finishing the steps in flight, then stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        services = start_services(settings, start_worker=True, worker_threads=args.threads,
                                  archive_threads=args.archive_threads)
    except Exception as exc:  # noqa: BLE001 - the ledger or gateway cannot be used: words, no traceback
        log.error("cannot start the worker: %s", exc)
        return 1
    log.info("worker %s on %s, gateway %s, rate limit %s", services.worker.owner,
             mask_db_url(settings.db_url), services.base_url,
             type(services.limiter).__name__)
    while not stop.wait(1.0):
        if not services.worker.running:
            log.error("the worker thread ended unexpectedly; stopping")
            break
    services.stop()
    log.info("stopped cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())

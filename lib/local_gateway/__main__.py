"""`python -m lib.local_gateway --port 8765 [--speed S] [--progress fast|realistic] [--seed N] [--data DIR]
[--host 127.0.0.1] [--renders N]`."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from .runner import LocalGateway

log = logging.getLogger("lib.local_gateway")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lib.local_gateway",
        description="ToAPIs-compatible local gateway that renders real MP4s.",
    )
    ap.add_argument("--port", type=int, default=8765, help="0 picks a free port (default 8765)")
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    ap.add_argument("--speed", type=float, default=1.0, help="clock speed; 1.0: a std 5 s clip takes ~15 s")
    ap.add_argument("--progress", choices=("fast", "realistic"), default="fast",
                    help="fast (default): short near-linear tasks; realistic: the real gateway's minutes, "
                         "a random queue, uneven progress with jumps and stalls (see README)")
    ap.add_argument("--seed", type=int, default=None,
                    help="realistic: the same seed gives the same sequence of task shapes")
    ap.add_argument("--renders", type=int, default=None,
                    help="videos rendered at once (default 2, or 1 on a one-core machine)")
    ap.add_argument(
        "--data",
        type=Path,
        default=Path("data") / "local_gateway",
        help="where tasks, uploads and videos are kept (default data/local_gateway)",
    )
    args = ap.parse_args(argv)
    if args.renders is not None and args.renders < 1:
        ap.error("--renders must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    gateway = LocalGateway(args.data, host=args.host, port=args.port, speed=args.speed,
                           progress=args.progress, seed=args.seed, render_workers=args.renders).start()
    log.info("serving %s (control: %s/__control/info); Ctrl+C stops", gateway.url, gateway.url)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        gateway.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

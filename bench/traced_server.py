"""`streamlit run` under tracemalloc, writing heap snapshots on a timer: figure 4's `--trace` mode.

    python bench/traced_server.py SNAPSHOT_DIR EVERY_S run app.py [streamlit options]

Why a launcher instead of a hook in the app: the snapshots must come from inside the server process,
and debug code does not belong in the shipped pages. A daemon thread writes `snap_<seconds>.pickle`
every EVERY_S seconds (tracemalloc keeps 8 frames per allocation); `bench.fig4_memory.trace_report`
compares the first one after the warm-up with the last one.
"""
from __future__ import annotations

import sys
import threading
import time
import tracemalloc
from pathlib import Path

FRAMES = 8


def _snapshots(out: Path, every: float) -> None:
    started = time.monotonic()
    while True:
        time.sleep(every)
        snap = tracemalloc.take_snapshot().filter_traces(
            (tracemalloc.Filter(False, tracemalloc.__file__),))
        snap.dump(str(out / f"snap_{time.monotonic() - started:07.1f}.pickle"))


def main() -> None:
    out, every = Path(sys.argv[1]), float(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(FRAMES)
    threading.Thread(target=_snapshots, args=(out, every), name="bench-tracemalloc", daemon=True).start()
    sys.argv = ["streamlit", *sys.argv[3:]]
    from streamlit.web.cli import main as streamlit_main

    streamlit_main()


if __name__ == "__main__":
    main()

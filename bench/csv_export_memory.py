"""CSV export: peak Python memory for a big History export, the capped byte writer vs the old way.

A fresh SQLite ledger gets N runs with long prompts (2,500 characters, the maximum; N = 100,000 by
default, as in the issue that found 486 MB). Both exports run in this process, one after the other, under
tracemalloc (it counts every Python object, which is where CSV text lives):
- old: `Ledger.to_csv()` builds the whole file as one str, which Streamlit then encodes to bytes (what
  the History page did before: the download button's callable returned that str);
- new: `history.export_csv()`, UTF-8 bytes written a row at a time and capped at CSV_MAX_MB.
Printed: both peaks, their ratio, the sizes and row counts of both files, and the times.

    python bench/csv_export_memory.py [--runs 100000] [--prompt-chars 2500]
"""
from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lib import history  # noqa: E402
from lib.contract import VideoRequest, estimate_cost  # noqa: E402
from lib.ledger import COMPLETED, Ledger, RunFilter, bulk_insert, run_row  # noqa: E402


def fill(ledger: Ledger, n: int, chars: int, batch: int = 5_000) -> None:
    base = "A slow aerial shot over a foggy pine forest at dawn, soft volumetric light, cinematic. "
    now = time.time() - n
    for start in range(0, n, batch):
        rows = []
        for i in range(start, min(n, start + batch)):
            prompt = (f"take {i}: " + base * (chars // len(base) + 1))[:chars]
            req = VideoRequest(prompt=prompt, mode="std", duration=5, aspect_ratio="16:9")
            row = run_row(f"csv{i:08d}xxxxxxxxxxx", req, estimate_cost(req), now=now + i, state=COMPLETED,
                          task_id=f"video_{i:08d}")
            row.update(submitted_at=now + i + 1, completed_at=now + i + 40, progress=100, next_poll_at=None)
            rows.append(row)
        bulk_insert(ledger, rows)


def measure(label: str, make: object) -> tuple[float, float, bytes]:
    """(peak MB, seconds, the file) for one export, traced from a clean start."""
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    data = make()  # type: ignore[operator]
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{label:>4}: peak {peak / 1e6:8.1f} MB, {seconds:6.1f} s, file {len(data) / 1e6:7.1f} MB")
    return peak / 1e6, seconds, data


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--prompt-chars", type=int, default=2500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(f"sqlite:///{Path(tmp) / 'ledger.db'}")
        t0 = time.perf_counter()
        fill(ledger, args.runs, args.prompt_chars)
        print(f"ledger: {args.runs:,} runs with {args.prompt_chars:,}-character prompts "
              f"({time.perf_counter() - t0:.0f} s to write)")
        flt = RunFilter()
        old_peak, _, old = measure("old", lambda: ledger.to_csv(flt).encode("utf-8"))
        old_rows = old.count(b"\ncsv")
        del old
        new_peak, _, new = measure("new", lambda: history.export_csv(ledger, flt))
        new_rows = new.count(b"\ncsv")
        last = new.rstrip(b"\r\n").rsplit(b"\n", 1)[-1].decode("utf-8")
        note = last if last.lstrip('"').startswith("Export stopped") else "(not capped)"
        ledger.close()
    print(f"rows: old {old_rows:,}, new {new_rows:,} (cap {history.CSV_MAX_MB} MB); last line: {note}")
    print(f"peak memory new/old: {new_peak / old_peak:.3f} ({new_peak:.1f} MB vs {old_peak:.1f} MB)")


if __name__ == "__main__":
    main()

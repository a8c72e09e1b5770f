"""`streamlit run` with a memory probe: figure 4's `--probe` mode.

    python bench/probe_server.py OUT.jsonl EVERY_S run app.py [streamlit options]

Why: tracemalloc sees only Python's own allocations and slows the server so much that a 20-session
soak cannot load its pages. This probe costs nothing measurable and splits RSS into the parts that can
grow: what glibc malloc has handed out (`in_use`) and holds free without returning it (`free_held`,
fragmentation), what SQLite holds (`sqlite`, its page caches and statements; libsqlite3 allocates
outside Python), Python's allocated blocks, threads and Streamlit sessions. Every EVERY_S seconds it
appends one JSON line to OUT.jsonl.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import sys
import threading
import time
from pathlib import Path


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallinfo2.restype = _MallInfo2
    return libc


def _sqlite() -> ctypes.CDLL | None:
    """The libsqlite3 that Python's _sqlite3 module is linked to (the same copy: one process image)."""
    name = ctypes.util.find_library("sqlite3")
    if not name:
        return None
    lib = ctypes.CDLL(name)
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    return lib


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def pymalloc() -> dict[str, float]:
    """Python's small-object allocator (pymalloc) maps its own 1 MiB arenas, so mallinfo2 misses them:
    arenas mapped, bytes in live blocks and in free blocks. `sys._debugmallocstats` prints to the C
    stderr only, so fd 2 is pointed at a temporary file for the call."""
    import os
    import tempfile

    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    wanted = {"# arenas allocated current": "py_arenas", "# bytes in allocated blocks": "py_used",
              "# bytes in available blocks": "py_free"}
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        if name.strip() in wanted:
            number = int(value.strip().replace(",", ""))
            out[wanted[name.strip()]] = number if name.strip().startswith("# arenas") else round(
                number / 2**20, 1)
    return out


def _sessions() -> int:
    try:
        from streamlit.runtime import Runtime

        return len(Runtime.instance()._session_mgr.list_sessions())  # private, but this is a probe
    except Exception:
        return -1


def sample(started: float, libc: ctypes.CDLL, sqlite: ctypes.CDLL | None) -> dict[str, float]:
    """One line of the probe: sizes in MB."""
    info = libc.mallinfo2()
    mb = 1 / 2**20
    return {
        "t": round(time.monotonic() - started, 1),
        "rss": round(_rss_kb("VmRSS") / 1024, 1),
        "anon": round(_rss_kb("RssAnon") / 1024, 1),
        "in_use": round((info.uordblks + info.hblkhd) * mb, 1),
        "free_held": round(info.fordblks * mb, 1),
        "mmapped": round(info.hblkhd * mb, 1),
        "sqlite": round(sqlite.sqlite3_memory_used() * mb, 2) if sqlite else -1,
        "py_blocks": sys.getallocatedblocks(),
        **pymalloc(),
        "threads": threading.active_count(),
        "sessions": _sessions(),
    }


def census(top: int = 60) -> dict[str, int]:
    """Live objects the garbage collector tracks, counted by type, plus the ledger engine's compiled
    statement cache: what grows between two censuses is what the server keeps. Walking every object
    holds the GIL for a few hundred ms, so this runs only every TYPES_EVERY samples."""
    import gc
    from collections import Counter

    counts = Counter(type(o).__qualname__ for o in gc.get_objects())
    out = dict(counts.most_common(top))
    state = sys.modules.get("lib.ui.state")
    started = getattr(state, "_STARTED", None)
    if started:
        cache = getattr(started[0].ledger.engine, "_compiled_cache", None)
        out["<sqlalchemy compiled cache>"] = len(cache) if cache is not None else -1
    return out


TYPES_EVERY = 12  # samples between two censuses


def _probe(out: Path, every: float) -> None:
    libc, sqlite, started = _libc(), _sqlite(), time.monotonic()
    n = 0
    while True:
        time.sleep(every)
        line = sample(started, libc, sqlite)
        n += 1
        if n % TYPES_EVERY == 0:
            line["census"] = census()
        with out.open("a") as f:
            f.write(json.dumps(line) + "\n")


def main() -> None:
    out, every = Path(sys.argv[1]), float(sys.argv[2])
    out.parent.mkdir(parents=True, exist_ok=True)
    # streamlit first: the probe's sampler imports streamlit.runtime, and on a busy machine an import that
    # is still under way in this thread then fails in the other as a circular import
    from streamlit.web.cli import main as streamlit_main

    threading.Thread(target=_probe, args=(out, every), name="bench-probe", daemon=True).start()
    sys.argv = ["streamlit", *sys.argv[3:]]
    streamlit_main()


if __name__ == "__main__":
    main()

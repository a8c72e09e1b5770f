"""The benchmarks run: every figure on a tiny size through the documented command (not a timing test).

Why a subprocess: `python bench/run.py --tiny` is what the README documents, and it starts its own
gateway processes, app servers and Chromium; running it as a user would checks the wiring end to end.
One figure per test (`--only`, also documented): each figure starts its own servers anyway, and as one
test the six took over three minutes in one xdist worker while the other sat idle; as six they spread.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run import FIGURES

ROOT = Path(__file__).resolve().parents[2]


def test_the_smoke_covers_every_figure() -> None:
    assert set(FIGURES) == {"1", "2", "3", "4", "5", "capacity"}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("figure", list(FIGURES))
def test_tiny_bench_suite_runs_and_prints_its_table(tmp_path: Path, figure: str) -> None:
    out_json = tmp_path / "bench.json"
    command = [sys.executable, "bench/run.py", "--tiny", "--only", figure, "--json", str(out_json)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=580)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:6] == ["figure", "value", "baseline", "ratio", "goal", "met?"]
    assert "FAILED" not in proc.stdout
    rows = json.loads(out_json.read_text())["rows"]
    assert rows and {r["figure"] for r in rows} == {figure}
    # every row measured something and printed it (capacity's p95 row is empty when even one session
    # missed 200 ms on the smoke's tiny plan: its count row then says 0)
    for r in rows:
        assert r["value"] is not None or r["name"].startswith("  … p95 click"), r
        assert any(line.startswith(f"{r['figure']} {r['name']}") for line in lines), r["name"]
    if figure == "1":
        gets = {r["name"]: r for r in rows}["status GETs per run"]
        assert gets["baseline"] > 0 and gets["ratio"] == pytest.approx(gets["value"] / gets["baseline"])

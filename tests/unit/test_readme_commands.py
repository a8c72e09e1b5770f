"""The README's two commands work on a stock Debian Python, and CI runs exactly the second one.

Why: Debian 12 / Ubuntu 23.04+ refuse `pip install` outside a virtual environment (PEP 668), so a first
command that installs into the system Python fails for a newcomer there. Both commands therefore go
through the project's `.venv/`, and `.ci/run` (the second command) installs and tests from it.
Creating a venv here would take a minute of pip installs, so this reads the commands instead of running
them; `.ci/run` itself runs the second one on every CI run.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ".venv/bin/"


def readme_commands() -> list[str]:
    """The lines of the README's first fenced bash block, which is the whole quick start."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)
    assert block, "README.md has no ```bash block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def ci_script_lines() -> list[str]:
    """.ci/run's shell lines, comments dropped."""
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def test_the_readme_has_exactly_two_commands() -> None:
    assert len(readme_commands()) == 2, readme_commands()


def test_the_first_command_makes_the_venv_and_installs_and_runs_only_from_it() -> None:
    steps = [shlex.split(step) for step in readme_commands()[0].split("&&")]
    assert steps[0] == ["python3", "-m", "venv", ".venv"], steps
    installs = [s for s in steps if "install" in s]
    assert installs == [[f"{VENV_BIN}pip", "install", "-r", "requirements.txt"]], steps
    assert steps[-1] == [f"{VENV_BIN}streamlit", "run", "app.py"], steps
    # nothing else in it may reach the system Python's pip (PEP 668 refuses that)
    for step in steps[1:]:
        assert step[0].startswith(VENV_BIN), step


def test_ci_runs_the_second_command_and_that_tests_from_the_venv() -> None:
    assert readme_commands()[1] == "bash .ci/run"
    lines = ci_script_lines()
    made = [i for i, line in enumerate(lines) if "python3 -m venv" in line and line.endswith(" .venv")]
    activated = [i for i, line in enumerate(lines) if line == ". .venv/bin/activate"]
    assert made and activated and made[0] < activated[0], lines
    after = lines[activated[0] + 1:]
    pip = [line for line in lines if re.search(r"\bpip\b.*\binstall\b", line)]
    assert pip == ["python -m pip install -q -r requirements-dev.txt"], pip
    assert pip[0] in after, "pip must install into the activated .venv"
    tests = [line for line in after if re.search(r"-m pytest\b", line)]
    assert tests and all(t.startswith("python -m pytest ") for t in tests), tests
    assert any('"$@"' in t for t in tests), "arguments to .ci/run reach pytest"
    whole = [t for t in tests if '"$@"' not in t]  # with no arguments: every layer of tests/ is run
    assert {layer for t in whole for layer in ("tests/unit", "tests/app", "tests/e2e") if layer in t} == {
        "tests/unit", "tests/app", "tests/e2e"}, whole
    assert {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and p.name.startswith(("unit", "app",
            "e2e"))} == {"unit", "app", "e2e"}, "a new test layer must be added to .ci/run"
    assert "python -m ruff check ." in after
    assert not any("python3 -m pytest" in line or "python3 -m pip" in line for line in lines), lines


def test_the_venv_is_not_committed() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".venv/" in ignored or ".venv" in ignored

"""Type-checking users get full types: samplers are Sampler[int], misuse is reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")

HERE = Path(__file__).resolve().parent / "typing"
ROOT = HERE.parent.parent


@pytest.fixture(scope="module")
def mypy_run() -> tuple[dict[str, set[int]], str]:
    """One mypy run over both files (analysing torch's stubs once): error lines per file.

    mypy runs in a process of its own: in this one its object graph (millions of objects) would
    stay alive until the end of the suite and make every later garbage collection slow, the one
    pytest runs after the summary included."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--show-error-codes",
            f"--cache-dir={ROOT / '.mypy_cache'}",
            str(HERE / "uses.py"),
            str(HERE / "misuse.py"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out, err = run.stdout, run.stderr
    assert "mypy.build" not in sys.modules, "mypy ran inside the test process"
    found: dict[str, set[int]] = {"uses.py": set(), "misuse.py": set()}
    for line in (out + err).splitlines():
        if ": error:" in line:
            path, lineno = line.split(":")[:2]
            found[Path(path).name].add(int(lineno))
    return found, out + err


@pytest.mark.timeout(600)
def test_typical_use_type_checks_cleanly(mypy_run: tuple[dict[str, set[int]], str]) -> None:
    errors, output = mypy_run
    assert errors["uses.py"] == set(), output


@pytest.mark.timeout(600)
def test_misuse_is_reported_on_every_marked_line(
    mypy_run: tuple[dict[str, set[int]], str],
) -> None:
    errors, output = mypy_run
    text = (HERE / "misuse.py").read_text().splitlines()
    marked = {i for i, line in enumerate(text, 1) if "# error" in line}
    assert marked and marked <= errors["misuse.py"], output

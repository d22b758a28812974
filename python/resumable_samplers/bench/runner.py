"""The parent's side of a run: one child process per measurement, run in order and collected.

A child that fails, is killed (for example by the kernel's out-of-memory killer) or runs past
``--timeout`` is reported, not fatal; a peer that cannot be imported is reported once and its
other rows are marked unavailable without starting a process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from resumable_samplers.bench.child import RESULT_PREFIX
from resumable_samplers.bench.plan import CHECKS, Options, plan, skip_reason
from resumable_samplers.bench.progress import Progress
from resumable_samplers.bench.spec import Outcome, Spec, format_n

BENCH_EXTRA = (
    'pip install -e ".[bench]" in a clone of the repository (Megatron: pip install megatron-core)'
)
"""How to install every peer, tqdm and matplotlib at once."""

PEERS: dict[str, tuple[str, str]] = {
    "helios": ("helios", "helios-ml"),
    "grain": ("grain", "grain"),
    "megatron": ("megatron", "megatron-core"),
    "torchdata": ("torchdata", "torchdata"),
    "transformers": ("transformers", "transformers"),
}
"""The optional peers: implementation name -> (module to find, distribution to install)."""


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    paths = [package_root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _drain(stream: IO[str], into: list[str]) -> None:
    for line in stream:
        into.append(line)


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
        hint = " (out of memory?)" if sig == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def run_child(spec: Spec, timeout: float) -> Outcome:
    """Run ``spec`` in a fresh interpreter and collect its report.

    The child is reaped with ``wait4`` so that its own peak RSS is known even when it is killed;
    past ``timeout`` seconds it is killed and reported as ``timeout``.
    """
    cmd = [sys.executable, "-m", "resumable_samplers.bench.child", spec.to_json()]
    out: list[str] = []
    err: list[str] = []
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_child_env()
    )
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err), daemon=True),
    ]
    for t in readers:
        t.start()
    timed_out = False
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                timed_out = True
                break
            time.sleep(0.02)
    except BaseException:  # Ctrl-C: do not leave the child behind
        proc.kill()
        os.wait4(proc.pid, 0)
        proc.returncode = -signal.SIGKILL
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in readers:
        t.join(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    wall = time.perf_counter() - start
    max_rss = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    process = {"wall_s": wall, "max_rss": max_rss, "returncode": proc.returncode}

    if timed_out:
        return Outcome(spec, "timeout", f"timed out after {timeout:g} s", process=process)
    reports = [line[len(RESULT_PREFIX) :] for line in out if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not reports:
        last = next((line.strip() for line in reversed(err) if line.strip()), "")
        reason = _describe_exit(status) + (f": {last}" if last else "")
        return Outcome(spec, "failed", reason, process=process)
    report = json.loads(reports[-1])
    return Outcome(
        spec,
        report["status"],
        report.get("reason"),
        metrics=report.get("metrics", {}),
        rss=report.get("rss", {}),
        process=process,
    )


def run_all(options: Options, into: list[Outcome] | None = None) -> list[Outcome]:
    """Run every planned measurement, one child process at a time.

    Args:
        options: what to run.
        into: a list to append the outcomes to as they finish (so that a caller interrupted
            with Ctrl-C still has the finished ones); a new list by default.
    """
    specs = plan(options)
    outcomes: list[Outcome] = [] if into is None else into
    unavailable: dict[str, str] = {}
    broken: dict[tuple[str, str, str], str] = {}
    for impl, (module, dist) in PEERS.items():
        if impl not in options.exclude and importlib.util.find_spec(module) is None:
            unavailable[impl] = f"{dist} is not installed"
    told: set[str] = set()  # the peers whose unavailability was printed once already
    progress = Progress(len(specs))
    try:
        for spec in specs:
            progress.start(spec.label())
            skip = skip_reason(spec, options, outcomes, unavailable, broken)
            if skip is not None:
                outcome = Outcome(spec, skip[0], skip[1])
            else:
                outcome = run_child(spec, options.timeout)
            outcomes.append(outcome)
            if outcome.status == "ok":
                note = f"ok ({outcome.process.get('wall_s', 0.0):.1f} s)"
                message = None
            else:
                note = f"{outcome.status}: {outcome.reason}"
                message = f"{spec.label()}: {note}"
                if outcome.status == "unavailable":
                    message = None if spec.impl in told else f"{spec.impl}: {outcome.reason}"
                    told.add(spec.impl)
            if outcome.status == "unavailable":
                unavailable[spec.impl] = outcome.reason or "unavailable"
            elif outcome.status in ("failed", "timeout") and spec.case not in CHECKS:
                broken[(spec.section, spec.case, spec.impl)] = (
                    f"{outcome.status} at n={format_n(spec.n)}: {outcome.reason}"
                )
            progress.finish(note, message)
    finally:
        progress.close()
    return outcomes

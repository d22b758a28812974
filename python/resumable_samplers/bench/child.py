"""One measurement in a fresh interpreter: run it, measure its memory, print one JSON line.

The parent (:mod:`~resumable_samplers.bench.runner`) starts
``python -m resumable_samplers.bench.child SPEC_JSON`` for every measurement, so that each one
starts from a clean heap and its peak resident memory is its own.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from collections.abc import Sequence
from typing import Any

from resumable_samplers.bench import (
    cases,
    length_cases,
    mixture_cases,
    scale_cases,
    shard_cases,
    trainer_cases,
)
from resumable_samplers.bench.cases import Setup, Unavailable
from resumable_samplers.bench.spec import Spec

RESULT_PREFIX = "@@resumable-samplers-bench "
"""Marks the child's report among whatever else it prints."""

SETUPS: dict[str, Setup] = {
    **cases.SETUPS,
    **scale_cases.SETUPS,
    **trainer_cases.SETUPS,
    **mixture_cases.SETUPS,
    **length_cases.SETUPS,
    **shard_cases.SETUPS,
}
"""Every case, by name."""


def _current_rss() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _peak_rss() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def _reset_peak_rss() -> bool:
    """Reset the RSS high-water mark to the current RSS (Linux >= 4.0); report success."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def measure(spec: Spec) -> dict[str, Any]:
    """Run one measurement in this process and return what the child reports.

    Setup (imports, the dataset, prebuilt lists) happens first; then the RSS high-water mark is
    reset so that ``peak - base`` is the memory the measured operation itself needed.
    """
    try:
        run = SETUPS[spec.case](spec)
    except Unavailable as e:
        return {"status": "unavailable", "reason": str(e)}
    reset = _reset_peak_rss()
    base = _current_rss() if reset else None
    if base is None:  # no reset: the peak so far is the best baseline there is
        base = _peak_rss()
    try:
        metrics = run()
    except MemoryError as e:
        return {"status": "failed", "reason": f"MemoryError: {e}"}
    peak = max(_peak_rss(), base)
    rss = {"base": base, "peak": peak, "extra": peak - base, "reset": reset}
    return {"status": "ok", "metrics": metrics, "rss": rss}


def main(args: Sequence[str]) -> int:
    """The child's entry point, ``python -m resumable_samplers.bench.child SPEC_JSON``.

    Prints one line on stdout: :data:`RESULT_PREFIX` and the report as JSON.
    """
    if len(args) != 1:
        print("usage: python -m resumable_samplers.bench.child SPEC_JSON", file=sys.stderr)
        return 2
    report = measure(Spec.from_json(args[0]))
    sys.stdout.write(RESULT_PREFIX + json.dumps(report) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

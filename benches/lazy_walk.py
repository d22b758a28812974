"""Where the time of the lazy order's iteration and of a streamed torch-order epoch goes.

Section (e) of ``resumable-samplers bench`` measures the lazy order as a user runs it (its speed
off a power of two, ``randperm(1e9, lazy)`` against ``torch.randperm(1e8)``, the iteration
overhead) and judges it on the library's targets. This script takes two of those figures apart,
and prints the load average with each (the numbers are wall times and the machine may be
shared):

    python benches/lazy_walk.py [--repeat 5] [--iterate 1e9] [--distributed 5e7]

``--iterate`` times one rank of 8 iterated at n against making as many Python ints, split into
the reader without its helper thread and the fill alone on one CPU. ``--distributed`` times one
rank of 8 of a torch-order epoch, built and iterated, each run in a process of its own: read
while the helper thread shuffles ("stream") or after the whole share is built ("build"), on one
CPU (the process pinned to it: one free core) and on all, against torch's
``DistributedSampler``, in turn, best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def _size(text: str) -> int:
    """``1e9``, ``2**24+1`` or ``16777217`` as an int."""
    total = 0
    for term in text.replace(" ", "").split("+"):
        if "**" in term:
            base, exp = term.split("**")
            total += int(base) ** int(exp)
        else:
            total += int(float(term))
    return total


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def best_of(repeat: int, make: Callable[[], Any]) -> float:
    """The shortest wall time of ``repeat`` calls (each result dropped before the next call)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        out = make()
        best = min(best, time.perf_counter() - t)
        del out
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--iterate", default="1e9", help="n of the iteration overhead; 0 to skip")
    parser.add_argument(
        "--distributed", default="5e7", help="n of the distributed torch-order epoch; 0 to skip"
    )
    parser.add_argument("--child", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(_distributed_child(args.child[0], _size(args.child[1])))
        return

    import resumable_samplers as rs

    print(f"CPU: {_cpu_model()}, {os.cpu_count()} CPUs; resumable_samplers from {rs.__file__}")
    n = _size(args.iterate)
    if n:
        iterate(n, args.repeat)
    n = _size(args.distributed)
    if n:
        distributed(n, args.repeat)


class _Sized:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def iterate(n: int, repeat: int) -> None:
    """Rank 3 of 8 iterated with ``for i in sampler: pass``, against a loop making as many
    Python ints of the same size (the benchmark's iteration-overhead target). To tell where the
    overhead lies, also: the core's reader without its helper thread (the chunks computed in the
    loop), and the fill of the same indices alone, with the process pinned to one CPU."""
    import resumable_samplers as rs
    from resumable_samplers import _core

    def make() -> Any:
        return rs.ResumableDistributedSampler(_Sized(n), 8, 3, permutation="lazy")

    def epoch() -> Any:
        return _core.Epoch(n, 8, 3, 0, False, "lazy", 0, 0)

    count = len(make())
    low = n - count
    best = dict.fromkeys(("sampler", "ints", "no helper", "fill"), float("inf"))
    affinity = getattr(os, "sched_getaffinity", None)
    for _ in range(repeat):
        t = time.perf_counter()
        for _i in make():
            pass
        best["sampler"] = min(best["sampler"], time.perf_counter() - t)
        t = time.perf_counter()
        for _i in range(low, n):
            pass
        best["ints"] = min(best["ints"], time.perf_counter() - t)
        t = time.perf_counter()
        for _i in epoch().reader(0, False):
            pass
        best["no helper"] = min(best["no helper"], time.perf_counter() - t)
        if affinity is not None:
            cpus = affinity(0)
            os.sched_setaffinity(0, {min(cpus)})
            try:
                best["fill"] = min(best["fill"], best_of(1, lambda: epoch().array()))
            finally:
                os.sched_setaffinity(0, cpus)
    fill = f"{best['fill']:.2f} s" if best["fill"] < float("inf") else "n/a"
    print(
        f"iterate rank 3/8 at n = {n:.3g} ({count} indices), best of {repeat}: sampler "
        f"{best['sampler']:.2f} s, as many ints {best['ints']:.2f} s, overhead "
        f"{best['sampler'] - best['ints']:.2f} s; reader without its helper thread "
        f"{best['no helper']:.2f} s; the fill alone on one CPU {fill}  [{_load()}]"
    )


def _distributed_child(mode: str, n: int) -> float:
    """Seconds to build and iterate rank 3 of 8 of a torch-order epoch of ``n`` items (epoch
    0, seed 0), in this fresh process. ``mode``: ``stream-1``/``build-1`` pinned to one CPU,
    ``stream-all``/``build-all`` on all of them, ``torch`` for torch's ``DistributedSampler``."""
    if mode.endswith("-1") and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    if mode == "torch":
        import torch.utils.data as tud

        sampler = tud.DistributedSampler(_Sized(n), 8, 3, seed=0)  # type: ignore[arg-type]
        t = time.perf_counter()
        for _i in sampler:
            pass
        return time.perf_counter() - t
    from resumable_samplers import _core

    t = time.perf_counter()
    epoch = _core.Epoch(n, 8, 3, 0, False, "torch", 0, 0)
    if mode.startswith("build"):
        epoch.array()  # waits for the whole share
    for _i in epoch.reader(0):
        pass
    return time.perf_counter() - t


def distributed(n: int, repeat: int) -> None:
    """One rank of 8 of a torch-order epoch built and iterated, each run in its own process;
    the best and the median of ``repeat`` runs of each, in turn (a shared machine's quiet
    moments fall to one or the other: the median shows which is faster more often)."""
    modes = ("stream-1", "build-1", "stream-all", "build-all", "torch")
    runs: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(repeat):
        for mode in modes:
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(n)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            runs[mode].append(float(out.split()[-1]))
    best = {mode: min(times) for mode, times in runs.items()}
    med = {mode: statistics.median(times) for mode, times in runs.items()}

    def both(mode: str) -> str:
        return f"{best[mode]:.3f} s (median {med[mode]:.3f} s)"

    print(
        f"distributed epoch, rank 3 of 8 at n = {n:.3g}, each run in its own process, best of "
        f"{repeat} in turn: one CPU: streamed {both('stream-1')}, built then iterated "
        f"{both('build-1')}, ratio {best['stream-1'] / best['build-1']:.2f} (median "
        f"{med['stream-1'] / med['build-1']:.2f}); all CPUs: streamed {both('stream-all')}, "
        f"built then iterated {both('build-all')}; torch's DistributedSampler {both('torch')}, "
        f"{best['torch'] / best['stream-all']:.1f}x ours streamed  [{_load()}]"
    )


if __name__ == "__main__":
    main()

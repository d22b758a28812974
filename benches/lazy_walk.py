"""Per-index time of the lazy order at and off powers of two, and randperm(1e9) against torch.

The lazy order encrypts positions with a Feistel network over the smallest power-of-two domain
``2**k >= n`` and cycle-walks the values that land in ``[n, 2**k)``; off a power of two about
``2**k / n - 1`` of the values walk once or more. This script times ``randperm(n, lazy)`` (all
cores) at sizes on both sides of a power of two and ``randperm(1e9, lazy)`` against
``torch.randperm(1e8)`` in the same process (best of ``--repeat``), and prints the load average
with each figure: the numbers are wall times and the machine may be shared.

    python benches/lazy_walk.py [--repeat 5] [--sizes 2**24,2**24+1,1e7,1e8,2**27+1] [--big 1e9]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
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
    parser.add_argument("--sizes", default="2**24,2**24+1,1e7,1e8,2**27+1")
    parser.add_argument("--big", default="1e9", help="n of randperm(n, lazy); 0 to skip")
    parser.add_argument("--torch-n", default="1e8", help="n of torch.randperm in the same run")
    parser.add_argument("--iterate", default="1e9", help="n of the iteration overhead; 0 to skip")
    args = parser.parse_args()

    import resumable_samplers as rs

    print(f"CPU: {_cpu_model()}, {os.cpu_count()} CPUs; resumable_samplers from {rs.__file__}")
    for text in args.sizes.split(","):
        n = _size(text)
        t = best_of(args.repeat, lambda n=n: rs.randperm(n, 1, permutation="lazy"))
        print(
            f"randperm({text}, lazy): {t * 1e9 / n:6.2f} ns per index, best of {args.repeat} "
            f"({t:.3f} s)  [{_load()}]"
        )
    big = _size(args.big)
    if big:
        import torch

        tn = _size(args.torch_n)
        g = torch.Generator()
        ours = theirs = float("inf")
        for _ in range(args.repeat):  # interleaved, so both see the same load
            ours = min(ours, best_of(1, lambda: rs.randperm(big, 1, permutation="lazy")))
            theirs = min(theirs, best_of(1, lambda: torch.randperm(tn, generator=g.manual_seed(1))))
        print(
            f"randperm({args.big}, lazy): {ours:.2f} s; torch.randperm({args.torch_n}): "
            f"{theirs:.2f} s; ratio {ours / theirs:.2f}, best of {args.repeat}  [{_load()}]"
        )
    n = _size(args.iterate)
    if n:
        iterate(n, args.repeat)


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


if __name__ == "__main__":
    main()

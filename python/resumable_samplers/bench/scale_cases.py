"""The measurements of section ``e``, the lazy order at scale, as run inside a child process.

``first`` times the first index at any ``n`` and resume point, ``randperm`` the whole lazy
permutation, ``iterate`` one rank of 8 against making as many Python ints, and ``grain`` the
core's throughput against Grain's ``index_shuffle``. The targets they are judged against are in
:mod:`~resumable_samplers.bench.targets`.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from resumable_samplers.bench.cases import (
    IndexDataset,
    Setup,
    Unavailable,
    distributed_factory,
)
from resumable_samplers.bench.spec import (
    GRAIN_CALLS,
    GRAIN_ROUNDS,
    LAZY_FIRST_NS,
    RANDPERM_TORCH_FRACTION,
    RANK,
    WORLD_SIZE,
    Spec,
    walk_sizes,
)

GRAIN_INSTALL = "pip install grain"


def _setup_first(spec: Spec) -> Callable[[], dict[str, Any]]:
    from resumable_samplers import ResumableDistributedSampler

    def first(n: int, where: str) -> tuple[float, int, int]:
        t0 = time.perf_counter()
        sampler = ResumableDistributedSampler(
            IndexDataset(n), WORLD_SIZE, RANK, seed=spec.seed, permutation="lazy"
        )
        length = len(sampler)
        start = {"start": 0, "half": length // 2, "last": length - 1}[where]
        sampler.start_iter = start
        index = next(iter(sampler))
        return time.perf_counter() - t0, start, index

    def run() -> dict[str, Any]:
        cases = []
        for n in LAZY_FIRST_NS:
            for where in ("start", "half", "last"):
                times = []
                for _ in range(spec.repeat):
                    elapsed, start_iter, index = first(n, where)
                    times.append(elapsed)
                cases.append(
                    {
                        "n": n,
                        "where": where,
                        "start_iter": start_iter,
                        "time_s": min(times),
                        "first_index": index,
                        "in_range": 0 <= index < n,
                    }
                )
        return {
            "cases": cases,
            "max_time_s": max(c["time_s"] for c in cases),
            "in_range": all(c["in_range"] for c in cases),
        }

    return run


def _setup_randperm(spec: Spec) -> Callable[[], dict[str, Any]]:
    import torch

    from resumable_samplers import randperm

    torch_n = spec.n // RANDPERM_TORCH_FRACTION
    generator = torch.Generator()

    def run() -> dict[str, Any]:
        times: list[float] = []
        torch_times: list[float] = []
        nbytes = 0
        # In turn, so that both see the same load; the lazy array is dropped before torch's
        # runs, so the peak is the larger of the two.
        for _ in range(spec.repeat):
            t0 = time.perf_counter()
            out = randperm(spec.n, spec.seed, permutation="lazy")
            times.append(time.perf_counter() - t0)
            nbytes = int(out.nbytes)
            del out
            t0 = time.perf_counter()
            theirs = torch.randperm(torch_n, generator=generator.manual_seed(spec.seed))
            torch_times.append(time.perf_counter() - t0)
            del theirs
        return {
            "time_s": min(times),
            "times_s": times,
            "array_bytes": nbytes,
            "torch_n": torch_n,
            "torch_s": min(torch_times),
            "torch_times_s": torch_times,
            "torch_ratio": min(times) / min(torch_times),
        }

    return run


def _setup_walk(spec: Spec) -> Callable[[], dict[str, Any]]:
    from resumable_samplers import randperm

    def timed(n: int) -> float:
        t0 = time.perf_counter()
        out = randperm(n, spec.seed, permutation="lazy")
        elapsed = time.perf_counter() - t0
        del out
        return elapsed

    def run() -> dict[str, Any]:
        cases = []
        for n in walk_sizes(spec.n):
            ref = 1 << (n.bit_length() - 1)  # the power of two below n: nothing walks there
            best = {n: math.inf, ref: math.inf}
            for _ in range(spec.repeat):  # in turn, so that both see the same load
                for m in (ref, n):
                    best[m] = min(best[m], timed(m))
            per, per_ref = best[n] / n * 1e9, best[ref] / ref * 1e9
            cases.append(
                {
                    "n": n,
                    "power_of_two": ref,
                    "ns_per_index": per,
                    "power_of_two_ns_per_index": per_ref,
                    "ratio": per / per_ref,
                }
            )
        return {"cases": cases, "max_ratio": max(c["ratio"] for c in cases)}

    return run


def _setup_iterate(spec: Spec) -> Callable[[], dict[str, Any]]:
    make = distributed_factory("lazy", spec.n, spec.seed)
    count = len(make())
    low = spec.n - count  # the baseline's ints: as many, and as large, as the sampler's

    def run() -> dict[str, Any]:
        ours: list[float] = []
        baseline: list[float] = []
        for _ in range(spec.repeat):
            t0 = time.perf_counter()
            for _i in make():
                pass
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for _i in range(low, spec.n):  # a fresh int object per step, as the sampler's
                pass
            baseline.append(time.perf_counter() - t0)
        return {
            "count": count,
            "time_s": min(ours),
            "baseline_s": min(baseline),
            "overhead_s": min(ours) - min(baseline),
            "times_s": ours,
            "baseline_times_s": baseline,
        }

    return run


def _usable_cpus() -> int | None:
    getaffinity = getattr(os, "sched_getaffinity", None)
    return len(getaffinity(0)) if getaffinity is not None else os.cpu_count()


@contextlib.contextmanager
def _one_cpu() -> Iterator[bool]:
    """Pin this thread, and the threads it starts, to one CPU; yield whether that worked.

    The Rust core starts as many threads as there are CPUs it may run on, so pinned it runs on
    one thread.
    """
    getaffinity = getattr(os, "sched_getaffinity", None)
    setaffinity = getattr(os, "sched_setaffinity", None)
    if getaffinity is None or setaffinity is None:
        yield False
        return
    old = getaffinity(0)
    try:
        setaffinity(0, {min(old)})
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        setaffinity(0, old)


def _setup_grain(spec: Spec) -> Callable[[], dict[str, Any]]:
    try:
        shuffle = importlib.import_module("grain.experimental").index_shuffle
    except Exception as e:  # grain itself, or something its import chain needs
        raise Unavailable(f"cannot import grain.experimental: {e} ({GRAIN_INSTALL})") from e
    from resumable_samplers import randperm

    n, seed = spec.n, spec.seed
    calls = min(GRAIN_CALLS, n)

    def ours() -> float:
        best = math.inf
        for _ in range(spec.repeat):
            t0 = time.perf_counter()
            out = randperm(n, seed, permutation="lazy")
            best = min(best, time.perf_counter() - t0)
            del out
        return best

    def run() -> dict[str, Any]:
        all_cores = ours()
        with _one_cpu() as pinned:
            single = ours() if pinned else None
        best = math.inf
        for _ in range(spec.repeat):
            t0 = time.perf_counter()
            for i in range(calls):
                shuffle(i, max_index=n - 1, seed=seed, rounds=GRAIN_ROUNDS)
            best = min(best, time.perf_counter() - t0)
        grain_ns = best / calls * 1e9
        ours_ns = all_cores / n * 1e9
        single_ns = single / n * 1e9 if single is not None else None
        return {
            "ours_s": all_cores,
            "ours_ns_per_index": ours_ns,
            "ours_cpus": _usable_cpus(),
            "ours_single_thread_s": single,
            "ours_single_thread_ns_per_index": single_ns,
            "grain_calls": calls,
            "grain_rounds": GRAIN_ROUNDS,
            "grain_s": best,
            "grain_ns_per_call": grain_ns,
            "ratio": grain_ns / ours_ns if ours_ns > 0 else None,
            "ratio_single_thread": grain_ns / single_ns if single_ns else None,
        }

    return run


SETUPS: dict[str, Setup] = {
    "first": _setup_first,
    "randperm": _setup_randperm,
    "walk": _setup_walk,
    "iterate": _setup_iterate,
    "grain": _setup_grain,
}
"""The cases of section ``e``, by name."""

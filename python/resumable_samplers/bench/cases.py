"""The measurements of sections ``a`` to ``d``, as run inside a child process.

Each ``setup_*`` function does the untimed work (imports, the dataset, prebuilt lists) and returns
a function that times the operation and returns its metrics. Section ``e`` is in
:mod:`~resumable_samplers.bench.scale_cases`.
"""

from __future__ import annotations

import importlib
import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.utils.data as tud

from resumable_samplers.bench.spec import LOADER_BATCH_SIZE, RANK, WORLD_SIZE, Spec

Setup = Callable[[Spec], Callable[[], dict[str, Any]]]
"""Turn a spec into the function that measures it (after the untimed setup)."""


class IndexDataset(tud.Dataset[int]):
    """A dataset of ``n`` items that holds no data: item ``i`` is ``i``."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class Unavailable(Exception):
    """A peer cannot be imported in this environment."""


def _helios_samplers() -> Any:
    try:
        return importlib.import_module("helios.data.samplers")
    except ImportError as e:  # helios itself or something its import chain needs
        raise Unavailable(f"cannot import helios.data.samplers: {e}") from e


def distributed_factory(impl: str, n: int, seed: int) -> Callable[[], Any]:
    """A function constructing ``impl``'s distributed sampler over ``n`` items (rank 3 of 8)."""
    ds = IndexDataset(n)
    kwargs: dict[str, Any] = {"num_replicas": WORLD_SIZE, "rank": RANK, "seed": seed}
    if impl in ("ours", "lazy"):
        from resumable_samplers import ResumableDistributedSampler

        order = "lazy" if impl == "lazy" else "torch"
        return lambda: ResumableDistributedSampler(ds, batch_size=1, permutation=order, **kwargs)
    if impl == "torch":
        return lambda: tud.DistributedSampler(ds, **kwargs)
    if impl == "helios":
        cls = _helios_samplers().ResumableDistributedSampler
        return lambda: cls(ds, batch_size=1, **kwargs)
    raise ValueError(f"unknown implementation {impl!r}")


def _setup_perm(spec: Spec) -> Callable[[], dict[str, Any]]:
    n, seed = spec.n, spec.seed
    make: Callable[[], Any]
    if spec.impl in ("ours", "lazy"):
        from resumable_samplers import randperm

        order = "lazy" if spec.impl == "lazy" else "torch"

        def make() -> Any:
            return randperm(n, seed, permutation=order)

    elif spec.impl == "torch":

        def make() -> object:
            return torch.randperm(n, generator=torch.Generator().manual_seed(seed))

    elif spec.impl == "numpy":

        def make() -> object:
            return np.random.default_rng(seed).permutation(n)

    else:
        raise ValueError(f"unknown implementation {spec.impl!r}")

    def run() -> dict[str, Any]:
        times = []
        for _ in range(spec.repeat):
            t0 = time.perf_counter()
            out = make()
            times.append(time.perf_counter() - t0)
            del out
        metrics: dict[str, Any] = {"time_s": min(times), "times_s": times}
        if spec.impl == "lazy":
            metrics["probes"] = _lazy_probes(n, seed, make())
        return metrics

    return run


def _lazy_probes(n: int, seed: int, perm: Any) -> dict[str, int]:
    """What the lazy distributed sampler (rank 3 of 8) must yield first in ``b`` and ``c``.

    Rank ``r`` of ``W`` reads position ``(r + j * W) % n`` of the epoch's permutation, and epoch
    0 of a lazy sampler is ``randperm(n, seed, permutation="lazy")``: its first index is
    ``perm[r % n]``, and after resuming at ``j = len(sampler) // 2`` it is
    ``perm[(r + j * W) % n]``.
    """
    skip = len(distributed_factory("lazy", n, seed)()) // 2
    return {
        "epoch_first_index": int(perm[RANK % n]),
        "resume_first_index": int(perm[(RANK + skip * WORLD_SIZE) % n]),
    }


def _setup_epoch(spec: Spec) -> Callable[[], dict[str, Any]]:
    make = distributed_factory(spec.impl, spec.n, spec.seed)

    def run() -> dict[str, Any]:
        best: dict[str, Any] = {}
        for _ in range(spec.repeat):
            t0 = time.perf_counter()
            sampler = make()
            t1 = time.perf_counter()
            it = iter(sampler)
            first = next(it, None)
            t2 = time.perf_counter()
            for _i in it:
                pass
            t3 = time.perf_counter()
            del it, sampler
            got = {
                "construct_s": t1 - t0,
                "first_index_s": t2 - t0,
                "epoch_s": t3 - t0,
                "first_index": first,
            }
            if not best or got["epoch_s"] < best["epoch_s"]:
                best = got
        return best

    return run


def _setup_resume(spec: Spec) -> Callable[[], dict[str, Any]]:
    make = distributed_factory(spec.impl, spec.n, spec.seed)

    def first_after_resume() -> tuple[int, Any]:
        sampler = make()
        skip = len(sampler) // 2
        if spec.impl == "torch":  # no resume: iterate and drop the first half
            return skip, next(itertools.islice(iter(sampler), skip, None), None)
        sampler.start_iter = skip
        return skip, next(iter(sampler), None)

    def run() -> dict[str, Any]:
        times = []
        for _ in range(spec.repeat):
            t0 = time.perf_counter()
            skip, first = first_after_resume()
            times.append(time.perf_counter() - t0)
        return {"first_index_s": min(times), "start_iter": skip, "first_index": first}

    return run


def _setup_loader(spec: Spec) -> Callable[[], dict[str, Any]]:
    from resumable_samplers import ResumableRandomSampler

    ds = IndexDataset(spec.n)
    ours = ResumableRandomSampler(ds, seed=spec.seed)
    ours.indices()  # build (and cache) the epoch: both sides start from prebuilt indices
    sampler: tud.Sampler[int] | list[int]
    if spec.impl == "ours":
        sampler = ours
    elif spec.impl == "list":
        sampler = ours.indices().tolist()
        del ours
    else:
        raise ValueError(f"unknown implementation {spec.impl!r}")
    loader = tud.DataLoader(ds, batch_size=LOADER_BATCH_SIZE, num_workers=0, sampler=sampler)

    def run() -> dict[str, Any]:
        times = []
        count = 0
        for _ in range(spec.repeat):
            count = 0
            t0 = time.perf_counter()
            for batch in loader:
                count += len(batch)
            times.append(time.perf_counter() - t0)
        if count != spec.n:
            raise RuntimeError(f"the loader yielded {count} indices, expected {spec.n}")
        best = min(times)
        return {"time_s": best, "indices_per_s": count / best if best > 0 else None}

    return run


def _setup_verify(spec: Spec) -> Callable[[], dict[str, Any]]:
    from resumable_samplers import randperm

    n, seed = spec.n, spec.seed

    def run() -> dict[str, Any]:
        ours = randperm(n, seed)
        theirs = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
        chunk = 1 << 22
        mismatch = None
        for start in range(0, n, chunk):
            a, b = ours[start : start + chunk], theirs[start : start + chunk]
            if not np.array_equal(a, b):
                mismatch = start + int(np.flatnonzero(a != b)[0])
                break
        return {"passed": mismatch is None, "first_mismatch": mismatch, "dtype": str(ours.dtype)}

    return run


def _setup_verify_sampler(spec: Spec) -> Callable[[], dict[str, Any]]:
    make_ours = distributed_factory("ours", spec.n, spec.seed)
    make_torch = distributed_factory("torch", spec.n, spec.seed)

    def run() -> dict[str, Any]:
        theirs = list(make_torch())
        ours = make_ours()
        # indices() is what is left of the epoch: take it before iterating.
        passed = np.array_equal(ours.indices(), theirs) and list(ours) == theirs
        return {"passed": bool(passed), "length": len(theirs)}

    return run


SETUPS: dict[str, Setup] = {
    "perm": _setup_perm,
    "epoch": _setup_epoch,
    "resume": _setup_resume,
    "loader": _setup_loader,
    "verify": _setup_verify,
    "verify_sampler": _setup_verify_sampler,
}
"""The cases of sections ``a`` to ``d``, by name."""

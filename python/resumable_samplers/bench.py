"""Benchmarks against torch, NumPy and helios-ml: ``python -m resumable_samplers.bench``.

Five measurements; ``a`` to ``c`` are repeated for every dataset size ``n``:

- ``a``: a permutation of ``[0, n)``: :func:`resumable_samplers.randperm` against
  ``torch.randperm`` and ``numpy.random.default_rng(seed).permutation``, plus a bit-identity
  check of ours against torch's at every size both ran.
- ``b``: a distributed epoch (8 replicas, rank 3): construction, time to the first index and the
  whole ``for i in sampler: pass``, against torch's ``DistributedSampler`` and helios-ml's
  ``ResumableDistributedSampler``.
- ``c``: resuming half-way through the epoch (``start_iter = len(sampler) // 2``, batch size 1):
  time from construction to the first index, against helios-ml, and against torch (which cannot
  resume) constructing and skipping with ``itertools.islice``.
- ``d``: ``DataLoader(batch_size=256, num_workers=0)`` index throughput with our sampler against
  the same loader over a prebuilt Python list of the same indices.
- ``e``: the lazy order at scale, against the issue's thresholds: time to the first index at
  ``n`` up to ``2**63 - 1`` at any resume offset, ``randperm(10**9, permutation="lazy")`` time and
  memory overhead, iterating one rank of 8 over ``10**9`` against producing as many Python ints,
  and core throughput against Grain's ``index_shuffle``.

``ours`` is the default (torch) order; ``lazy`` is ours with ``permutation="lazy"`` (a different
order, O(1) memory), measured in ``a`` to ``c`` next to it and alone in ``e``.

Every measurement runs in a fresh interpreter (``python -m resumable_samplers.bench _one SPEC``)
that reports its own wall times and resident memory: ``base`` is its RSS after imports and setup
(torch is always imported), ``peak`` the high-water mark while measuring, and ``extra`` the
difference, which is what the ratios compare. Peers that would not fit in memory are skipped,
and a child that dies or times out is reported, not fatal.

The results are printed as tables with ratios (row / ours), written to ``results.json`` and
``results.md`` in the output folder, and drawn to ``plot.png`` when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.metadata
import importlib.util
import itertools
import json
import math
import os
import platform
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import torch.utils.data as tud

SECTIONS: dict[str, str] = {
    "a": "permutation",
    "b": "distributed epoch (W=8, rank 3)",
    "c": "resume at 50% (W=8, rank 3, batch_size=1)",
    "d": "DataLoader index throughput (batch_size=256, num_workers=0)",
    "e": "lazy order at scale",
}
"""The measurements, by the letter ``--only`` selects them with."""

IMPLS: dict[str, tuple[str, ...]] = {
    "a": ("ours", "lazy", "torch", "numpy"),
    "b": ("ours", "lazy", "torch", "helios"),
    "c": ("ours", "lazy", "helios", "torch"),
    "d": ("ours", "list"),
    "e": ("lazy", "grain"),
}
"""The implementations compared in each measurement; ``ours`` (the torch order) comes first.

``lazy`` is ours with ``permutation="lazy"``; in ``e``, ``grain`` is the Grain comparison (which
times ours too) and ``lazy`` everything else.
"""

# 2.2e8 is past n = 214,748,364, where torch.randperm switches to 64-bit draws.
DEFAULT_SIZES: tuple[int, ...] = (10**6, 10**7, 5 * 10**7, 22 * 10**7, 10**9)
QUICK_SIZES: tuple[int, ...] = (10**5, 10**6)
DEFAULT_LOADER_N = 10**6
QUICK_LOADER_N = 10**5
DEFAULT_TIMEOUT_S = 1800.0
AUTO_REPEAT = 3
AUTO_REPEAT_MAX_N = 10**7
WORLD_SIZE = 8
RANK = 3
LOADER_BATCH_SIZE = 256

# Section e: the lazy order at scale. The first-index measurement is O(1) at any n, so it always
# runs at the issue's sizes; the others have their own options (smaller with --quick).
LAZY_FIRST_NS: tuple[int, ...] = (10**9, 2**40, 2**63 - 1)
LAZY_FIRST_REPEAT = 5
DEFAULT_LAZY_RANDPERM_N = 10**9
QUICK_LAZY_RANDPERM_N = 10**6
DEFAULT_LAZY_ITER_NS: tuple[int, ...] = (10**7, 10**9)
QUICK_LAZY_ITER_NS: tuple[int, ...] = (10**5, 10**6)
DEFAULT_GRAIN_N = 10**7
QUICK_GRAIN_N = 10**6
GRAIN_CALLS = 2 * 10**5
GRAIN_ROUNDS = 4
GRAIN_INSTALL = "pip install grain"
HELIOS_VERSION = "2.0.1"
HELIOS_INSTALL = (
    f"pip install --no-deps helios-ml=={HELIOS_VERSION} torchvision==0.29.2 "
    "&& pip install matplotlib tqdm"
)
RESULT_PREFIX = "@@resumable-samplers-bench "
DESCRIPTION = (
    "Time and peak memory of resumable-samplers (torch and lazy orders) against torch, NumPy, "
    "helios-ml and Grain, every measurement in a fresh process; prints tables with row/ours "
    "ratios and the lazy order's issue thresholds, and writes results.json, results.md and "
    "plot.png."
)
MIB = 2**20
GIB = 2**30

# The issue's thresholds for the lazy order (section e), and the sizes they are stated at.
FIRST_INDEX_MAX_S = 1e-3
RANDPERM_MAX_S = 5.0
RANDPERM_OVERHEAD_MAX_BYTES = 64 * MIB
ISSUE_RANDPERM_N = 10**9
ITER_OVERHEAD_MAX_S = 1.0
ISSUE_ITER_N = 10**9
GRAIN_MIN_RATIO = 10.0
# "Resident memory independent of n": the iterate measurements' extra RSS may differ by this much.
RSS_SAME_TOLERANCE_BYTES = 8 * MIB

# Bytes per index each implementation holds at its peak, for the "would it fit" estimate.
# torch/helios: the int64 tensor, then ``tolist()`` (an 8-byte pointer and a 32-byte int object
# per index) while the tensor is still alive, then the padded and subsampled copies.
_BYTES_PER_INDEX: dict[tuple[str, str], float] = {
    ("perm", "torch"): 8,
    ("perm", "numpy"): 8,
    ("epoch", "torch"): 49,
    ("epoch", "helios"): 49,
    ("resume", "torch"): 49,
    ("resume", "helios"): 49,
    ("verify", "torch"): 8,
    ("verify_sampler", "torch"): 49,
    ("loader", "list"): 44,
    # the lazy order keeps no epoch: a distributed sampler holds one chunk of Python ints
    ("epoch", "lazy"): 0,
    ("resume", "lazy"): 0,
    ("first", "lazy"): 0,
    ("iterate", "lazy"): 0,
}
_MARGIN_BYTES = 256 * MIB


# ---------------------------------------------------------------------------------------------
# Measurement specifications and outcomes


@dataclasses.dataclass(frozen=True)
class Spec:
    """One measurement: what a child process runs.

    Args:
        section: the measurement letter, ``a`` to ``e``.
        case: ``perm``, ``epoch``, ``resume``, ``loader``, ``verify`` or ``verify_sampler``;
            in ``e``: ``first``, ``randperm``, ``iterate`` or ``grain``.
        impl: the implementation measured, e.g. ``ours``, ``lazy`` or ``torch``.
        n: the dataset size (for ``first``, the largest of :data:`LAZY_FIRST_NS`, which it
            measures all of).
        seed: the seed of the permutation.
        repeat: how many times to time the operation (the best time is kept).
    """

    section: str
    case: str
    impl: str
    n: int
    seed: int = 0
    repeat: int = 1

    def label(self) -> str:
        """A short human-readable name, e.g. ``(a) perm torch n=1e7``."""
        if self.case == "first":
            return f"({self.section}) first index lazy n={','.join(map(format_n, LAZY_FIRST_NS))}"
        if self.case == "grain":
            return f"({self.section}) grain vs lazy n={format_n(self.n)}"
        return f"({self.section}) {self.case} {self.impl} n={format_n(self.n)}"

    def to_json(self) -> str:
        """The specification as the JSON the child reads."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Spec:
        """Parse what :meth:`to_json` wrote."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"a spec should be a JSON object, got {text!r}")
        return cls(**data)


@dataclasses.dataclass
class Outcome:
    """The result of one measurement, as recorded in ``results.json``.

    Args:
        spec: what was measured.
        status: ``ok``, ``skipped``, ``unavailable``, ``failed`` or ``timeout``.
        reason: why it is not ``ok``.
        metrics: the child's timings and values (``*_s`` are seconds).
        rss: the child's resident memory in bytes: ``base``, ``peak``, ``extra`` and whether the
            peak was reset after setup (``reset``).
        process: the child process as seen from outside: wall time including interpreter start,
            its peak RSS over its whole life, and its exit status.
    """

    spec: Spec
    status: str
    reason: str | None = None
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    rss: dict[str, Any] = dataclasses.field(default_factory=dict)
    process: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the spec's fields are flattened in)."""
        out: dict[str, Any] = dataclasses.asdict(self.spec)
        out.update(
            status=self.status,
            reason=self.reason,
            metrics=self.metrics,
            rss=self.rss,
            process=self.process,
        )
        return out


def format_n(n: int) -> str:
    """``n`` in short form where there is one.

    One or two significant digits times a power of ten (``50000000`` -> ``5e7``, ``220000000``
    -> ``2.2e8``), else a large power of two or one less (``2**40``, ``2**63-1``), else digits.
    """
    if n >= 1000:
        k = len(str(n)) - 1
        d, r = divmod(n, 10**k)
        if r == 0:
            return f"{d}e{k}"
        m, r = divmod(n, 10 ** (k - 1))
        if r == 0:
            return f"{m // 10}.{m % 10}e{k}"
    if n >= 2**20:
        if n & (n - 1) == 0:
            return f"2**{n.bit_length() - 1}"
        if (n + 1) & n == 0:
            return f"2**{n.bit_length()}-1"
    return str(n)


def parse_sizes(text: str) -> list[int]:
    """Parse ``--sizes``: comma-separated positive integers, ``1e6`` notation allowed."""
    sizes: list[int] = []
    for token in text.split(","):
        token = token.strip().replace("_", "")
        if not token:
            continue
        try:
            value = int(token)
        except ValueError:
            try:
                f = float(token)
            except ValueError:
                raise argparse.ArgumentTypeError(f"not a size: {token!r}") from None
            if not f.is_integer():
                raise argparse.ArgumentTypeError(
                    f"a size should be a whole number, got {token}"
                ) from None
            value = int(f)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"a size should be positive, got {token}")
        sizes.append(value)
    if not sizes:
        raise argparse.ArgumentTypeError("no sizes given")
    return sorted(set(sizes))


def _parse_size(text: str) -> int:
    sizes = parse_sizes(text)
    if len(sizes) != 1:
        raise argparse.ArgumentTypeError(f"expected one size, got {text!r}")
    return sizes[0]


def _parse_letters(text: str) -> list[str]:
    letters = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in letters if t not in SECTIONS]
    if unknown or not letters:
        raise argparse.ArgumentTypeError(
            f"--only takes letters from {','.join(SECTIONS)}, got {text!r}"
        )
    return [s for s in SECTIONS if s in letters]


def _excludable() -> set[str]:
    return {impl for impls in IMPLS.values() for impl in impls if impl != "ours"}


def _parse_peers(text: str) -> set[str]:
    peers = {t.strip() for t in text.split(",") if t.strip()}
    known = _excludable()
    unknown = peers - known
    if unknown:
        raise argparse.ArgumentTypeError(
            f"--exclude takes peers from {','.join(sorted(known))}, got {text!r}"
        )
    return peers


def estimate_bytes(case: str, impl: str, n: int) -> int:
    """Roughly how much memory (beyond the interpreter) ``impl`` needs for ``case`` at ``n``."""
    width = 4 if n <= 2**32 else 8
    if impl == "ours":
        per_index = {"epoch": width * 1.125, "resume": width * 1.125, "loader": width}.get(
            case, width
        )
    elif impl in ("lazy", "grain") and case in ("perm", "randperm", "grain"):
        per_index = width  # the lazy randperm's array (the Grain comparison times one too)
    else:
        per_index = _BYTES_PER_INDEX.get((case, impl), 8.0)
    if case in ("verify", "verify_sampler"):
        per_index += width  # ours is held alongside torch's
    return int(per_index * n) + _MARGIN_BYTES


def available_memory() -> int | None:
    """``MemAvailable`` from ``/proc/meminfo`` in bytes, or ``None`` where there is none."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# ---------------------------------------------------------------------------------------------
# The child process: one measurement, reported as one JSON line on stdout


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


def _helios_samplers() -> Any:
    try:
        return importlib.import_module("helios.data.samplers")
    except ImportError as e:  # helios itself or something its import chain needs
        raise Unavailable(f"cannot import helios.data.samplers: {e}") from e


def _distributed_factory(impl: str, n: int, seed: int) -> Callable[[], Any]:
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
    skip = len(_distributed_factory("lazy", n, seed)()) // 2
    return {
        "epoch_first_index": int(perm[RANK % n]),
        "resume_first_index": int(perm[(RANK + skip * WORLD_SIZE) % n]),
    }


def _setup_epoch(spec: Spec) -> Callable[[], dict[str, Any]]:
    make = _distributed_factory(spec.impl, spec.n, spec.seed)

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
    make = _distributed_factory(spec.impl, spec.n, spec.seed)

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
    make_ours = _distributed_factory("ours", spec.n, spec.seed)
    make_torch = _distributed_factory("torch", spec.n, spec.seed)

    def run() -> dict[str, Any]:
        theirs = list(make_torch())
        ours = make_ours()
        passed = list(ours) == theirs and np.array_equal(ours.indices(), theirs)
        return {"passed": bool(passed), "length": len(theirs)}

    return run


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
    from resumable_samplers import randperm

    def run() -> dict[str, Any]:
        times = []
        nbytes = 0
        for _ in range(spec.repeat):
            t0 = time.perf_counter()
            out = randperm(spec.n, spec.seed, permutation="lazy")
            times.append(time.perf_counter() - t0)
            nbytes = int(out.nbytes)
            del out
        return {"time_s": min(times), "times_s": times, "array_bytes": nbytes}

    return run


def _setup_iterate(spec: Spec) -> Callable[[], dict[str, Any]]:
    make = _distributed_factory("lazy", spec.n, spec.seed)
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


_SETUPS: dict[str, Callable[[Spec], Callable[[], dict[str, Any]]]] = {
    "perm": _setup_perm,
    "epoch": _setup_epoch,
    "resume": _setup_resume,
    "loader": _setup_loader,
    "verify": _setup_verify,
    "verify_sampler": _setup_verify_sampler,
    "first": _setup_first,
    "randperm": _setup_randperm,
    "iterate": _setup_iterate,
    "grain": _setup_grain,
}


def measure(spec: Spec) -> dict[str, Any]:
    """Run one measurement in this process and return what the child reports.

    Setup (imports, the dataset, prebuilt lists) happens first; then the RSS high-water mark is
    reset so that ``peak - base`` is the memory the measured operation itself needed.
    """
    try:
        run = _SETUPS[spec.case](spec)
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


def child_main(args: Sequence[str]) -> int:
    """The child's entry point: ``_one SPEC_JSON``; prints one result line on stdout."""
    if len(args) != 1:
        print("usage: python -m resumable_samplers.bench _one SPEC_JSON", file=sys.stderr)
        return 2
    report = measure(Spec.from_json(args[0]))
    sys.stdout.write(RESULT_PREFIX + json.dumps(report) + "\n")
    sys.stdout.flush()
    return 0


# ---------------------------------------------------------------------------------------------
# The parent: plan, run each child, collect


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parent.parent)
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
    cmd = [sys.executable, "-m", "resumable_samplers.bench", "_one", spec.to_json()]
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


@dataclasses.dataclass
class Options:
    """The parsed command line."""

    sizes: list[int]
    sections: list[str]
    exclude: set[str]
    loader_n: int
    timeout: float
    out: Path
    seed: int
    repeat: int | None
    mem_budget: int | None
    plot: bool
    lazy_randperm_n: int = DEFAULT_LAZY_RANDPERM_N
    lazy_iter_ns: list[int] = dataclasses.field(default_factory=lambda: [*DEFAULT_LAZY_ITER_NS])
    grain_n: int = DEFAULT_GRAIN_N


def repeats(options: Options, n: int) -> int:
    """How often each operation is timed at size ``n``: ``--repeat``, else 3 up to 1e7, else 1."""
    if options.repeat is not None:
        return options.repeat
    return AUTO_REPEAT if n <= AUTO_REPEAT_MAX_N else 1


def plan(options: Options) -> list[Spec]:
    """Every measurement to run, in order (verifications follow the sizes they check)."""
    specs: list[Spec] = []
    for section in options.sections:
        impls = [i for i in IMPLS[section] if i not in options.exclude]
        if section == "e":
            specs += _plan_scale(options, impls)
            continue
        case = _CASES[section]
        sizes = [options.loader_n] if section == "d" else options.sizes
        for n in sizes:
            for impl in impls:
                specs.append(Spec(section, case, impl, n, options.seed, repeats(options, n)))
            if section == "a" and "torch" in impls:
                specs.append(Spec(section, "verify", "torch", n, options.seed))
        if section == "b" and "torch" in impls:
            specs.append(Spec(section, "verify_sampler", "torch", options.sizes[0], options.seed))
    return specs


def _plan_scale(options: Options, impls: list[str]) -> list[Spec]:
    """Section e: first index, randperm, iterate (one process per size), grain."""
    seed = options.seed
    specs: list[Spec] = []
    if "lazy" in impls:
        first_repeat = options.repeat if options.repeat is not None else LAZY_FIRST_REPEAT
        specs.append(Spec("e", "first", "lazy", max(LAZY_FIRST_NS), seed, first_repeat))
        n = options.lazy_randperm_n
        specs.append(Spec("e", "randperm", "lazy", n, seed, repeats(options, n)))
        for n in options.lazy_iter_ns:
            specs.append(Spec("e", "iterate", "lazy", n, seed, repeats(options, n)))
    if "grain" in impls:
        n = options.grain_n
        specs.append(Spec("e", "grain", "grain", n, seed, repeats(options, n)))
    return specs


class Progress:
    """A progress bar on stderr: tqdm's when it is installed, else one line per measurement."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._done = 0
        self._bar: Any = None
        try:
            tqdm = importlib.import_module("tqdm").tqdm
        except ImportError:
            return
        self._bar = tqdm(total=total, unit="run", file=sys.stderr, dynamic_ncols=True)

    def start(self, label: str) -> None:
        """A measurement begins."""
        if self._bar is not None:
            self._bar.set_description(label)
        else:
            sys.stderr.write(f"[{self._done + 1}/{self._total}] {label} ...")
            sys.stderr.flush()

    def finish(self, note: str, message: str | None = None) -> None:
        """The measurement ended with ``note`` (e.g. ``ok (1.2 s)``).

        ``message`` (the label and the note) is printed above the bar, so that skips and failures
        stay visible; without a bar the note ends the measurement's own line.
        """
        self._done += 1
        if self._bar is not None:
            if message:
                self._bar.write(message, file=sys.stderr)
            self._bar.update(1)
        else:
            sys.stderr.write(f" {note}\n")
            sys.stderr.flush()

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()


_CHECKS = ("verify", "verify_sampler")


def _skip_reason(
    spec: Spec,
    options: Options,
    outcomes: list[Outcome],
    unavailable: dict[str, str],
    broken: dict[tuple[str, str, str], str],
) -> tuple[str, str] | None:
    """``(status, reason)`` when ``spec`` should not run, else ``None``.

    ``unavailable`` maps a peer that cannot be imported to why; ``broken`` maps
    ``(section, case, impl)`` to the failure at a smaller size that makes larger ones pointless.
    """
    if spec.impl in unavailable:
        return "unavailable", unavailable[spec.impl]
    key = (spec.section, spec.case, spec.impl)
    if key in broken and spec.case not in _CHECKS:
        return "skipped", broken[key]
    if spec.case == "verify":
        ran = {
            o.spec.impl
            for o in outcomes
            if o.spec.case == "perm" and o.spec.n == spec.n and o.status == "ok"
        }
        if not {"ours", "torch"} <= ran:
            return "skipped", "ours and torch did not both run at this size"
    need = estimate_bytes(spec.case, spec.impl, spec.n)
    if options.mem_budget is not None and need > options.mem_budget:
        return (
            "skipped",
            f"would need ~{need / GIB:.1f} GiB (budget {options.mem_budget / GIB:.1f} GiB)",
        )
    return None


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
    if "helios" not in options.exclude and importlib.util.find_spec("helios") is None:
        unavailable["helios"] = f"helios-ml is not installed ({HELIOS_INSTALL})"
    if "grain" not in options.exclude and importlib.util.find_spec("grain") is None:
        unavailable["grain"] = f"grain is not installed ({GRAIN_INSTALL})"
    progress = Progress(len(specs))
    try:
        for spec in specs:
            progress.start(spec.label())
            skip = _skip_reason(spec, options, outcomes, unavailable, broken)
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
                unavailable[spec.impl] = outcome.reason or "unavailable"
            elif outcome.status in ("failed", "timeout") and spec.case not in _CHECKS:
                broken[(spec.section, spec.case, spec.impl)] = (
                    f"{outcome.status} at n={format_n(spec.n)}: {outcome.reason}"
                )
            progress.finish(note, message)
    finally:
        progress.close()
    return outcomes


# ---------------------------------------------------------------------------------------------
# Reporting: checks, tables, JSON, plot


def checks(outcomes: list[Outcome]) -> dict[str, Any]:
    """Correctness checks gathered from the run.

    - ``bit_identity``: ours equals ``torch.randperm`` at every size both ran.
    - ``sampler_identity``: our distributed sampler yields exactly what torch's does.
    - ``same_first_index``: in ``b`` and ``c`` every implementation of the torch order yielded
      the same first index at each size.
    - ``lazy_agreement``: in ``b`` and ``c`` the lazy sampler yielded the indices that ``a``'s
      ``randperm(n, seed, permutation="lazy")`` has at its positions (see :func:`_lazy_probes`),
      and in ``e`` every first index was in range.

    ``passed`` is ``False`` on a mismatch, ``None`` when no check ran or one could not finish.
    """

    def summary(case: str) -> dict[str, Any]:
        runs = [o for o in outcomes if o.spec.case == case]
        done = [o for o in runs if o.status == "ok"]
        passed: bool | None = None
        if any(o.metrics.get("passed") is not True for o in done):
            passed = False  # a mismatch
        elif done and all(o.status in ("ok", "skipped") for o in runs):
            passed = True
        return {
            "passed": passed,
            "max_n": max((o.spec.n for o in done), default=None),
            "runs": [
                {"n": o.spec.n, "status": o.status, "reason": o.reason, **o.metrics} for o in runs
            ],
        }

    mismatches = []
    compared = 0
    for case in ("epoch", "resume"):
        firsts: dict[int, dict[str, Any]] = {}
        for o in outcomes:
            if o.spec.case == case and o.status == "ok" and o.spec.impl != "lazy":
                firsts.setdefault(o.spec.n, {})[o.spec.impl] = o.metrics.get("first_index")
        for n, values in sorted(firsts.items()):
            if len(values) > 1:
                compared += 1
                if len(set(values.values())) > 1:
                    mismatches.append({"case": case, "n": n, "first_index": values})
    return {
        "bit_identity": summary("verify"),
        "sampler_identity": summary("verify_sampler"),
        "same_first_index": {
            "passed": not mismatches if compared else None,
            "mismatches": mismatches,
        },
        "lazy_agreement": _lazy_agreement(outcomes),
    }


def _lazy_agreement(outcomes: list[Outcome]) -> dict[str, Any]:
    probes = {
        o.spec.n: o.metrics["probes"]
        for o in outcomes
        if o.spec.case == "perm" and o.spec.impl == "lazy" and o.status == "ok"
    }
    compared = 0
    mismatches: list[dict[str, Any]] = []
    for o in outcomes:
        if o.spec.impl != "lazy" or o.status != "ok":
            continue
        if o.spec.case in ("epoch", "resume") and o.spec.n in probes:
            compared += 1
            want = probes[o.spec.n][f"{o.spec.case}_first_index"]
            got = o.metrics.get("first_index")
            if got != want:
                mismatches.append({"case": o.spec.case, "n": o.spec.n, "got": got, "want": want})
        elif o.spec.case == "first":
            compared += 1
            if o.metrics.get("in_range") is not True:
                mismatches.append({"case": "first", "out_of_range": o.metrics.get("cases")})
    return {"passed": not mismatches if compared else None, "mismatches": mismatches}


def _ratio(peer: float | None, ours: float | None, floor: float = 0.0) -> str:
    if peer is None or ours is None or ours <= floor or peer <= 0:
        return "n/a"
    return f"{peer / ours:.2f}"


def _secs(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.1f}" if value >= 100 else f"{value:.3g}"


def _mib(value: Any) -> str:
    return f"{value / MIB:.1f}" if isinstance(value, int | float) else "-"


_COLUMNS: dict[str, list[tuple[str, str]]] = {
    # (header, metric); metric "rss.extra" etc. reads the rss dict
    "a": [("time (s)", "time_s")],
    "b": [
        ("construct (s)", "construct_s"),
        ("first index (s)", "first_index_s"),
        ("epoch (s)", "epoch_s"),
    ],
    "c": [("first index (s)", "first_index_s")],
    "d": [("time (s)", "time_s"), ("M indices/s", "indices_per_s")],
}
_RATIO_OF: dict[str, str] = {"a": "time_s", "b": "epoch_s", "c": "first_index_s", "d": "time_s"}
_CASES: dict[str, str] = {"a": "perm", "b": "epoch", "c": "resume", "d": "loader"}
# Memory ratios are shown only when ours needed at least this much (smaller is noise).
_RSS_FLOOR = 1 * MIB


def table(section: str, outcomes: list[Outcome]) -> str:
    """The Markdown table of one measurement, with peer / ours ratios."""
    rows = [o for o in outcomes if o.spec.section == section and o.spec.case == _CASES[section]]
    columns = _COLUMNS[section]
    key = _RATIO_OF[section]
    header = ["n", "impl", *(h for h, _ in columns)]
    header += ["time x ours", "extra RSS (MiB)", "RSS x ours", "base RSS (MiB)"]
    if section == "b":
        header.insert(header.index("time x ours") + 1, "first x ours")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    ours_by_n = {o.spec.n: o for o in rows if o.spec.impl == "ours" and o.status == "ok"}
    for o in rows:
        cells = [format_n(o.spec.n), o.spec.impl]
        if o.status != "ok":
            cells.append(f"{o.status}: {o.reason}")
            cells += [""] * (len(header) - len(cells))
            lines.append("| " + " | ".join(cells) + " |")
            continue
        ours = ours_by_n.get(o.spec.n)
        for _, metric in columns:
            value = o.metrics.get(metric)
            if metric == "indices_per_s":
                cells.append(f"{value / 1e6:.2f}" if isinstance(value, int | float) else "-")
            else:
                cells.append(_secs(value))
        om = ours.metrics if ours else {}
        cells.append(_ratio(o.metrics.get(key), om.get(key)))
        if section == "b":
            cells.append(_ratio(o.metrics.get("first_index_s"), om.get("first_index_s")))
        extra = o.rss.get("extra")
        cells.append(_mib(extra))
        cells.append(_ratio(extra, ours.rss.get("extra") if ours else None, _RSS_FLOOR))
        cells.append(_mib(o.rss.get("base")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_SCALE_REQUIRED = ("first_index", "randperm_time", "randperm_overhead", "iterate_overhead", "grain")


def _row(
    measurement: str,
    n: int | None,
    shown: str,
    *,
    value: float | None = None,
    unit: str | None = None,
    threshold: str | None = None,
    passed: bool | None = None,
    at_issue_size: bool = True,
    key: str | None = None,
) -> dict[str, Any]:
    return {
        "measurement": measurement,
        "n": n,
        "value": value,
        "unit": unit,
        "shown": shown,
        "threshold": threshold,
        "passed": passed,
        "at_issue_size": at_issue_size,
        "key": key,
    }


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def _ns(value: float) -> str:
    return f"{value:.0f} ns" if value >= 100 else f"{value:.3g} ns"


def _scale_rows(o: Outcome) -> list[dict[str, Any]]:
    """The rows of the section e table for one outcome."""
    m, n = o.metrics, o.spec.n
    if o.status != "ok":
        name = {"first": "first index", "randperm": "randperm lazy", "grain": "grain vs lazy"}
        what = name.get(o.spec.case, f"iterate rank {RANK}/{WORLD_SIZE}")
        return [_row(what, None if o.spec.case == "first" else n, f"{o.status}: {o.reason}")]
    if o.spec.case == "first":
        limit = f"< {_ms(FIRST_INDEX_MAX_S)}"
        rows = [
            _row(
                f"first index, rank {RANK}/{WORLD_SIZE}, start_iter={c['start_iter']} "
                f"({c['where']})",
                c["n"],
                _ms(c["time_s"]),
                value=c["time_s"],
                unit="s",
                threshold=limit,
                passed=c["time_s"] < FIRST_INDEX_MAX_S,
            )
            for c in m["cases"]
        ]
        worst = m["max_time_s"]
        rows.append(
            _row(
                f"first index, max over the {len(m['cases'])} cases",
                None,
                _ms(worst),
                value=worst,
                unit="s",
                threshold=limit,
                passed=worst < FIRST_INDEX_MAX_S,
                key="first_index",
            )
        )
        return rows
    if o.spec.case == "randperm":
        issue = n == ISSUE_RANDPERM_N
        rows = [
            _row(
                "randperm lazy: time",
                n,
                f"{_secs(m['time_s'])} s",
                value=m["time_s"],
                unit="s",
                threshold=f"<= {RANDPERM_MAX_S:g} s",
                passed=m["time_s"] <= RANDPERM_MAX_S,
                at_issue_size=issue,
                key="randperm_time",
            )
        ]
        extra = o.rss.get("extra")
        if isinstance(extra, int):
            over = extra - m["array_bytes"]
            rows.append(
                _row(
                    f"randperm lazy: overhead (extra RSS - {_mib(m['array_bytes'])} MiB array)",
                    n,
                    f"{_mib(over)} MiB",
                    value=over,
                    unit="B",
                    threshold=f"< {RANDPERM_OVERHEAD_MAX_BYTES // MIB} MiB",
                    passed=over < RANDPERM_OVERHEAD_MAX_BYTES,
                    at_issue_size=issue,
                    key="randperm_overhead",
                )
            )
        return rows
    if o.spec.case == "iterate":
        issue = n == ISSUE_ITER_N
        what = f"iterate rank {RANK}/{WORLD_SIZE} ({format_n(m['count'])} indices)"
        return [
            _row(f"{what}: sampler", n, f"{_secs(m['time_s'])} s", value=m["time_s"], unit="s"),
            _row(
                f"{what}: baseline, as many Python ints",
                n,
                f"{_secs(m['baseline_s'])} s",
                value=m["baseline_s"],
                unit="s",
            ),
            _row(
                f"{what}: overhead = sampler - baseline",
                n,
                f"{_secs(m['overhead_s'])} s",
                value=m["overhead_s"],
                unit="s",
                threshold=f"< {ITER_OVERHEAD_MAX_S:g} s",
                passed=m["overhead_s"] < ITER_OVERHEAD_MAX_S,
                at_issue_size=issue,
                key="iterate_overhead",
            ),
            _row(
                f"{what}: extra RSS",
                n,
                f"{_mib(o.rss.get('extra'))} MiB",
                value=o.rss.get("extra"),
                unit="B",
            ),
        ]
    # grain
    if not isinstance(m.get("ratio"), int | float):
        return [_row("grain vs lazy", n, "no ratio (ours took no measurable time)")]
    cpus = m.get("ours_cpus")
    rows = [
        _row(
            f"grain index_shuffle (rounds={m['grain_rounds']}), per call "
            f"({format_n(m['grain_calls'])} calls)",
            n,
            _ns(m["grain_ns_per_call"]),
            value=m["grain_ns_per_call"],
            unit="ns",
        ),
        _row(
            f"ours: randperm lazy, per index ({cpus} CPUs)",
            n,
            _ns(m["ours_ns_per_index"]),
            value=m["ours_ns_per_index"],
            unit="ns",
        ),
    ]
    if m.get("ours_single_thread_ns_per_index") is not None:
        rows.append(
            _row(
                "ours: randperm lazy, per index (1 thread)",
                n,
                _ns(m["ours_single_thread_ns_per_index"]),
                value=m["ours_single_thread_ns_per_index"],
                unit="ns",
            )
        )
    rows.append(
        _row(
            f"grain / ours ({cpus} CPUs)",
            n,
            f"{m['ratio']:.1f}x",
            value=m["ratio"],
            unit="x",
            threshold=f">= {GRAIN_MIN_RATIO:g}x",
            passed=m["ratio"] >= GRAIN_MIN_RATIO,
            key="grain",
        )
    )
    if m.get("ratio_single_thread") is not None:
        rows.append(
            _row(
                "grain / ours (1 thread)",
                n,
                f"{m['ratio_single_thread']:.1f}x",
                value=m["ratio_single_thread"],
                unit="x",
            )
        )
    return rows


def lazy_at_scale(outcomes: list[Outcome]) -> dict[str, Any]:
    """Section e against the issue's thresholds: table rows and an overall verdict.

    ``passed`` is ``False`` when a threshold measured at the issue's size was missed, ``True``
    when all of them were measured there and met, else ``None`` (``not_judged`` says which were
    not: skipped, failed, or run only at smaller sizes). Rows measured at other sizes keep their
    own ``passed`` with ``at_issue_size`` false; they do not count.
    """
    runs = [o for o in outcomes if o.spec.section == "e"]
    rows = [row for o in runs for row in _scale_rows(o)]
    iterated = [o for o in runs if o.spec.case == "iterate" and o.status == "ok"]
    extras: list[int] = [x for o in iterated if isinstance(x := o.rss.get("extra"), int)]
    if len(iterated) > 1 and len(extras) == len(iterated):
        spread = max(extras) - min(extras)
        sizes = ", ".join(format_n(o.spec.n) for o in iterated)
        rows.append(
            _row(
                f"iterate: extra RSS spread over n = {sizes}",
                None,
                f"{_mib(spread)} MiB",
                value=spread,
                unit="B",
                threshold=f"< {RSS_SAME_TOLERANCE_BYTES // MIB} MiB (independent of n)",
                passed=spread < RSS_SAME_TOLERANCE_BYTES,
                at_issue_size=any(o.spec.n == ISSUE_ITER_N for o in iterated),
                key="iterate_rss",
            )
        )
    judged = {r["key"]: r["passed"] for r in rows if r["key"] and r["at_issue_size"]}
    passed: bool | None = None
    if any(v is False for v in judged.values()):
        passed = False
    elif all(judged.get(k) is True for k in _SCALE_REQUIRED):
        passed = True
    return {
        "passed": passed if runs else None,
        "not_judged": [k for k in _SCALE_REQUIRED if judged.get(k) is None],
        "rows": rows,
    }


def scale_table(summary: dict[str, Any]) -> str:
    """The Markdown table of section e, thresholds next to the numbers."""
    lines = ["| measurement | n | value | threshold | verdict |", "|---|---|---|---|---|"]
    for r in summary["rows"]:
        verdict = {True: "pass", False: "FAIL", None: ""}[r["passed"]]
        if verdict and not r["at_issue_size"]:
            verdict = f"({verdict})"
        n = format_n(r["n"]) if r["n"] is not None else ""
        lines.append(
            f"| {r['measurement']} | {n} | {r['shown']} | {r['threshold'] or ''} | {verdict} |"
        )
    if summary["passed"] is True:
        overall = "all of the issue's thresholds met"
    elif summary["passed"] is False:
        missed = sorted(
            {
                r["measurement"]
                for r in summary["rows"]
                if r["passed"] is False and r["at_issue_size"]
            }
        )
        overall = "FAILED: " + "; ".join(missed)
    else:
        overall = "not judged"
    if summary["passed"] is not True and summary["not_judged"]:
        overall += " (not measured at the issue's size: " + ", ".join(summary["not_judged"]) + ")"
    notes = [
        f"Verdict: {overall}.",
        "A verdict in parentheses was measured at a smaller size than the issue's (randperm and "
        f"iterate at n = {format_n(ISSUE_RANDPERM_N)}) and is only indicative.",
    ]
    return "\n".join(lines) + "\n\n" + " ".join(notes)


def report_text(outcomes: list[Outcome], result: dict[str, Any]) -> str:
    """All tables and checks, as Markdown."""
    parts = []
    for section in SECTIONS:
        if any(o.spec.section == section for o in outcomes):
            body = (
                scale_table(result["lazy_at_scale"]) if section == "e" else table(section, outcomes)
            )
            parts.append(f"### ({section}) {SECTIONS[section]}\n\n{body}")
    c = result["checks"]
    check_lines = [
        f"- bit identity with torch.randperm: {_check_text(c['bit_identity'])}",
        f"- distributed sampler identical to torch's: {_check_text(c['sampler_identity'])}",
        f"- same first index across implementations: {_check_text(c['same_first_index'])}",
        f"- lazy sampler agrees with lazy randperm: {_check_text(c['lazy_agreement'])}",
    ]
    parts.append("### checks\n\n" + "\n".join(check_lines))
    meta = result["meta"]
    parts.append(
        f"Times are wall seconds inside the child (best of {meta['repeat']}). *extra RSS* is "
        "the child's peak resident memory while measuring minus its *base RSS* after imports "
        "and setup (torch imported; helios children also import helios-ml; the list loader "
        "holds its prebuilt list). Ratios are row / ours, where ours is the torch order; the "
        "lazy row is ours with permutation='lazy' (a different order); memory ratios are n/a "
        "when ours needed under 1 MiB."
    )
    if meta.get("load_average"):
        load = ", ".join(str(x) for x in meta["load_average"])
        parts.append(
            f"Machine: {meta['cpu_count']} cores, {(meta['memory_total'] or 0) / GIB:.0f} GiB; "
            f"load average (1, 5, 15 min) at the end of the run: {load}."
        )
    return "\n\n".join(parts) + "\n"


def _check_text(check: dict[str, Any]) -> str:
    if check["passed"] is True:
        return "passed" + (f" (n up to {format_n(check['max_n'])})" if check.get("max_n") else "")
    if check["passed"] is False:
        return "FAILED"
    unfinished = [r for r in check.get("runs", []) if r["status"] not in ("ok", "skipped")]
    if unfinished:
        return "incomplete: " + "; ".join(
            f"n={format_n(r['n'])} {r['status']}: {r['reason']}" for r in unfinished
        )
    return "not run"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def metadata(options: Options, started: float) -> dict[str, Any]:
    """Versions, machine and options of the run."""
    total = None
    with contextlib.suppress(ValueError, OSError):
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "resumable_samplers": _version("resumable-samplers"),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "helios_ml": _version("helios-ml"),
        "grain": _version("grain"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "memory_total": total,
        "memory_budget": options.mem_budget,
        "sizes": options.sizes,
        "sections": options.sections,
        "excluded": sorted(options.exclude),
        "loader_n": options.loader_n,
        "loader_batch_size": LOADER_BATCH_SIZE,
        "lazy_first_n": list(LAZY_FIRST_NS),
        "lazy_randperm_n": options.lazy_randperm_n,
        "lazy_iter_n": options.lazy_iter_ns,
        "grain_n": options.grain_n,
        "grain_calls": min(GRAIN_CALLS, options.grain_n),
        "world_size": WORLD_SIZE,
        "rank": RANK,
        "seed": options.seed,
        "repeat": (
            options.repeat
            if options.repeat is not None
            else f"{AUTO_REPEAT} up to n={format_n(AUTO_REPEAT_MAX_N)}, 1 above"
        ),
        "timeout_s": options.timeout,
        "load_average": _load_average(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": time.time() - started,
    }


_COLORS: dict[str, str] = {
    "ours": "C0",
    "torch": "C1",
    "numpy": "C2",
    "helios": "C3",
    "list": "C4",
    "lazy": "C5",
}


def plot(outcomes: list[Outcome], path: Path) -> str | None:
    """Draw time and extra memory against ``n`` (log-log) for ``a``-``c``; say why not if not."""
    try:
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return "matplotlib is not installed: no plot (pip install matplotlib)"
    sections = [s for s in ("a", "b", "c") if any(o.spec.section == s for o in outcomes)]
    if not sections:
        return "nothing to plot (only the DataLoader measurement ran)"
    fig, axes = plt.subplots(2, len(sections), figsize=(5 * len(sections), 8), squeeze=False)
    for col, section in enumerate(sections):
        series: dict[str, list[Outcome]] = {}
        for o in outcomes:
            if o.spec.section == section and o.spec.case == _CASES[section] and o.status == "ok":
                series.setdefault(o.spec.impl, []).append(o)
        for impl, runs in series.items():
            runs.sort(key=lambda o: o.spec.n)
            ns = [o.spec.n for o in runs]
            times = [o.metrics.get(_RATIO_OF[section]) for o in runs]
            mems = [o.rss.get("extra", 0) / MIB for o in runs]
            style = {"marker": "o", "label": impl, "color": _COLORS.get(impl)}
            axes[0][col].plot(ns, times, **style)
            axes[1][col].plot(ns, [max(m, 1e-2) for m in mems], **style)
        what = {"a": "time (s)", "b": "full epoch (s)", "c": "time to first index (s)"}[section]
        axes[0][col].set_title(f"({section}) {SECTIONS[section]}", fontsize=9)
        axes[0][col].set_ylabel(what)
        axes[1][col].set_ylabel("extra peak RSS (MiB)")
        for row in (0, 1):
            ax = axes[row][col]
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("n")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def write_results(
    outcomes: list[Outcome], options: Options, started: float, *, interrupted: bool = False
) -> dict[str, Any]:
    """Print the tables, write ``results.json``, ``results.md`` and ``plot.png``."""
    result = {
        "meta": {**metadata(options, started), "interrupted": interrupted},
        "checks": checks(outcomes),
        "lazy_at_scale": lazy_at_scale(outcomes),
        "results": [o.to_dict() for o in outcomes],
    }
    text = report_text(outcomes, result)
    print(text)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (options.out / "results.md").write_text(text)
    note = (
        plot(outcomes, options.out / "plot.png") if options.plot else "plot: not drawn (--no-plot)"
    )
    print(note if note else f"plot: {options.out / 'plot.png'}")
    print(f"results: {options.out / 'results.json'}, {options.out / 'results.md'}")
    return result


# ---------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options to ``parser``."""
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        help="comma-separated dataset sizes, e.g. 1e6,1e7 (default: "
        + ",".join(format_n(n) for n in DEFAULT_SIZES)
        + "; with --quick: "
        + ",".join(format_n(n) for n in QUICK_SIZES)
        + ")",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes only (smoke test / CI)")
    parser.add_argument(
        "--only",
        type=_parse_letters,
        default=list(SECTIONS),
        metavar="a,b,c,d,e",
        help="measurements to run: "
        + "; ".join(f"{k}: {v}" for k, v in SECTIONS.items()).replace("%", "%%")
        + " (default: all)",
    )
    parser.add_argument(
        "--exclude",
        type=_parse_peers,
        default=set(),
        metavar="PEERS",
        help="implementations to leave out, e.g. helios or numpy,list "
        "(any of: " + ",".join(sorted(_excludable())) + ")",
    )
    parser.add_argument(
        "--loader-n",
        type=_parse_size,
        help=f"dataset size for the DataLoader measurement (default: {format_n(DEFAULT_LOADER_N)};"
        f" with --quick: {format_n(QUICK_LOADER_N)})",
    )
    parser.add_argument(
        "--lazy-randperm-n",
        type=_parse_size,
        metavar="N",
        help="(e) size of randperm(N, permutation='lazy') (default: "
        f"{format_n(DEFAULT_LAZY_RANDPERM_N)}; with --quick: {format_n(QUICK_LAZY_RANDPERM_N)})",
    )
    parser.add_argument(
        "--lazy-iter-n",
        type=parse_sizes,
        metavar="SIZES",
        help="(e) dataset sizes for iterating one rank of 8, one process each (default: "
        + ",".join(map(format_n, DEFAULT_LAZY_ITER_NS))
        + "; with --quick: "
        + ",".join(map(format_n, QUICK_LAZY_ITER_NS))
        + ")",
    )
    parser.add_argument(
        "--grain-n",
        type=_parse_size,
        metavar="N",
        help=f"(e) permutation size of the Grain comparison (default: {format_n(DEFAULT_GRAIN_N)};"
        f" with --quick: {format_n(QUICK_GRAIN_N)}); Grain is called min(N, "
        f"{format_n(GRAIN_CALLS)}) times",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds allowed for each measurement, interpreter start included "
        f"(default: {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results"),
        help="folder for results.json, results.md and plot.png (default: bench-results)",
    )
    parser.add_argument("--seed", type=int, default=0, help="permutation seed (default: 0)")
    parser.add_argument(
        "--repeat",
        type=int,
        help="time each operation this many times in its process and keep the best (default: "
        f"{AUTO_REPEAT} up to n={format_n(AUTO_REPEAT_MAX_N)}, 1 above)",
    )
    parser.add_argument(
        "--mem-budget",
        type=float,
        metavar="GIB",
        help="skip a measurement estimated to need more (default: 90%% of available memory)",
    )
    parser.add_argument("--no-plot", action="store_true", help="do not draw plot.png")


def options_from(args: argparse.Namespace) -> Options:
    """Turn parsed arguments into :class:`Options`, filling in the defaults."""
    sizes = args.sizes or list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    loader_n = args.loader_n or (QUICK_LOADER_N if args.quick else DEFAULT_LOADER_N)
    if args.timeout <= 0:
        raise SystemExit(f"--timeout should be positive, got {args.timeout:g}")
    if args.repeat is not None and args.repeat < 1:
        raise SystemExit(f"--repeat should be at least 1, got {args.repeat}")
    if args.mem_budget is not None:
        budget: int | None = int(args.mem_budget * GIB)
    else:
        avail = available_memory()
        budget = int(avail * 0.9) if avail is not None else None
    return Options(
        sizes=sizes,
        sections=args.only,
        exclude=args.exclude,
        loader_n=loader_n,
        timeout=args.timeout,
        out=args.out,
        seed=args.seed,
        repeat=args.repeat,
        mem_budget=budget,
        plot=not args.no_plot,
        lazy_randperm_n=args.lazy_randperm_n
        or (QUICK_LAZY_RANDPERM_N if args.quick else DEFAULT_LAZY_RANDPERM_N),
        lazy_iter_ns=args.lazy_iter_n
        or list(QUICK_LAZY_ITER_NS if args.quick else DEFAULT_LAZY_ITER_NS),
        grain_n=args.grain_n or (QUICK_GRAIN_N if args.quick else DEFAULT_GRAIN_N),
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark described by ``args``; 1 if a correctness check failed, else 0."""
    options = options_from(args)
    started = time.time()
    outcomes: list[Outcome] = []
    try:
        run_all(options, outcomes)
    except KeyboardInterrupt:
        print("\ninterrupted: reporting the measurements that finished", file=sys.stderr)
        write_results(outcomes, options, started, interrupted=True)
        return 130
    result = write_results(outcomes, options, started)
    failed = [name for name, c in result["checks"].items() if c["passed"] is False]
    if failed:
        print(f"correctness checks FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``bench`` subcommand; its ``func`` default runs it and returns an exit code."""
    parser = subparsers.add_parser(
        "bench",
        help="compare against torch, NumPy and helios-ml (time and peak memory)",
        description=DESCRIPTION,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    """``python -m resumable_samplers.bench [options]`` (``_one SPEC`` runs one measurement)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["_one"]:
        return child_main(args[1:])
    parser = argparse.ArgumentParser(
        prog="python -m resumable_samplers.bench",
        description=DESCRIPTION,
    )
    add_arguments(parser)
    return run(parser.parse_args(args))


if __name__ == "__main__":
    raise SystemExit(main())

"""Section ``s``: sharded datasets, ``ResumableShardSampler`` against Mosaic Streaming's
``py1e`` and ``py1br`` shuffles on the same shard sizes.

Shards hold about :data:`SAMPLES_PER_SHARD` samples each (sizes drawn between half and 1.5
times that, seeded, summing to ``n``); the job has :data:`~resumable_samplers.bench.spec.WORLD_SIZE`
ranks, which for Mosaic are as many canonical nodes, each reading one contiguous eighth of the
epoch's sample order (its partitioning with one rank per node and one worker).

- ``shard_first`` (one process per ``n`` and implementation): the time from nothing to the first
  index of epoch 1 on rank 3, and after a resume halfway through that epoch (ours: a new sampler
  loading the state, with 8 ranks and elastically with 6; Mosaic computes the epoch's shuffle
  again, which its resume does); the child's extra resident memory covers all of them.
  Mosaic's times are its shuffle alone (the epoch's whole sample-id array), a lower bound of
  what its dataset does at an epoch start.
- ``shard_locality``: every rank's whole epoch, from which the shards read in the epoch (the
  shards each rank reads, summed over ranks: what ranks load when each keeps as many shards as
  it has open), the loads when each rank keeps an LRU cache of ``WINDOW`` shards, the most
  shards a rank has open at once (from a shard's first to its last sample) and how often two
  adjacent samples come from the same shard.

Mosaic is imported as ``streaming.base.shuffle`` if ``mosaicml-streaming`` is installed, else
from the folder :data:`STREAMING_SHUFFLE_ENV` names (the ``streaming/base/shuffle`` folder of
an unpacked wheel: those files need only NumPy); without either, its rows are reported as not
measured.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from resumable_samplers.bench.spec import (
    RANK,
    WORLD_SIZE,
    Outcome,
    Spec,
    format_mib,
    format_n,
    format_seconds,
)

if TYPE_CHECKING:
    from resumable_samplers.bench.cases import Setup

SAMPLES_PER_SHARD = 10_000
WINDOW = 8
ELASTIC_WORLD = 6
FIRST_NS: tuple[int, ...] = (10**7, 10**8, 10**9)
LOCALITY_N = 10**7
PEER_MAX_N = 10**8
"""Mosaic's shuffles build an int64 array of every sample id (about 12 bytes per sample at their
peak): they are not run above this ``n``."""
IMPLS: tuple[str, ...] = ("ours", "py1e", "py1br")
STREAMING_SHUFFLE_ENV = "RESUMABLE_SAMPLERS_STREAMING_SHUFFLE"
STREAMING_INSTALL = (
    "pip install mosaicml-streaming, or unpack its wheel (pip download mosaicml-streaming "
    f"--no-deps) and set {STREAMING_SHUFFLE_ENV} to its streaming/base/shuffle folder"
)


def shard_sizes(n: int, seed: int) -> np.ndarray:
    """About ``n / SAMPLES_PER_SHARD`` shard sizes between half and 1.5 times that, summing to
    ``n`` (the same for every implementation)."""
    k = max(1, n // SAMPLES_PER_SHARD)
    rng = np.random.default_rng(seed)
    sizes = rng.integers(SAMPLES_PER_SHARD // 2, SAMPLES_PER_SHARD * 3 // 2, k).astype(np.int64)
    sizes = sizes * n // int(sizes.sum())
    sizes[: n - int(sizes.sum())] += 1
    assert int(sizes.sum()) == n
    return sizes


def mosaic_shuffles() -> Any:
    """Mosaic Streaming's ``streaming.base.shuffle`` module (installed, or loaded from the folder
    that :data:`STREAMING_SHUFFLE_ENV` names)."""
    from resumable_samplers.bench.cases import Unavailable

    try:
        return importlib.import_module("streaming.base.shuffle")
    except ImportError:
        pass
    folder = os.environ.get(STREAMING_SHUFFLE_ENV)
    if not folder or not os.path.isfile(os.path.join(folder, "__init__.py")):
        raise Unavailable(f"Mosaic Streaming is not installed ({STREAMING_INSTALL})")
    # The shuffle files import each other as streaming.base.shuffle.*: give them that package.
    for name in ("streaming", "streaming.base"):
        package = types.ModuleType(name)
        package.__path__ = []
        sys.modules.setdefault(name, package)
    spec = importlib.util.spec_from_file_location(
        "streaming.base.shuffle",
        os.path.join(folder, "__init__.py"),
        submodule_search_locations=[folder],
    )
    if spec is None or spec.loader is None:
        raise Unavailable(f"cannot load {folder} ({STREAMING_INSTALL})")
    module = importlib.util.module_from_spec(spec)
    sys.modules["streaming.base.shuffle"] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise Unavailable(f"cannot load Mosaic's shuffles from {folder}: {e}") from e
    return module


def _mosaic(impl: str) -> Callable[[np.ndarray, int, int], np.ndarray]:
    """``impl``'s epoch order: every sample id, for ``(sizes, seed, epoch)``."""
    get = getattr(mosaic_shuffles(), f"get_shuffle_{impl}")
    block = max(4_000_000 // WORLD_SIZE, 1 << 18)  # StreamingDataset's default block size
    return lambda sizes, seed, epoch: get(sizes, WORLD_SIZE, seed, epoch, block)


def _best(repeat: int, f: Callable[[], Any]) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = f()
        best = min(best, time.perf_counter() - t0)
    return best, value


def _setup_first(spec: Spec) -> Callable[[], dict[str, Any]]:
    sizes = shard_sizes(spec.n, spec.seed)
    meta = {"shards": len(sizes), "window": WINDOW}
    if spec.impl == "ours":
        from resumable_samplers import ResumableShardSampler

        def make(world: int = WORLD_SIZE) -> ResumableShardSampler:
            return ResumableShardSampler(
                sizes, window=WINDOW, seed=spec.seed, num_replicas=world, rank=RANK
            )

        stopped = make()
        stopped.seek(1, len(stopped) // 2)
        state = stopped.state_dict()
        del stopped

        def first() -> int:
            s = make()
            s.set_epoch(1)
            return next(iter(s))

        def resumed(world: int) -> int:
            s = make(world)
            s.load_state_dict(state)
            return next(iter(s))

        def run() -> dict[str, Any]:
            t_first, index = _best(spec.repeat, first)
            t_resume, _ = _best(spec.repeat, lambda: resumed(WORLD_SIZE))
            t_elastic, _ = _best(spec.repeat, lambda: resumed(ELASTIC_WORLD))
            return {
                **meta,
                "first_index_s": t_first,
                "resume_s": t_resume,
                "elastic_s": t_elastic,
                "first_index": index,
            }

        return run
    if spec.impl not in IMPLS:
        raise ValueError(f"unknown implementation {spec.impl!r}")
    shuffle = _mosaic(spec.impl)
    per_rank = -(-spec.n // WORLD_SIZE)

    def run_peer() -> dict[str, Any]:
        t_first, index = _best(
            spec.repeat, lambda: int(shuffle(sizes, spec.seed, 1)[RANK * per_rank])
        )
        position = RANK * per_rank + per_rank // 2
        t_resume, _ = _best(spec.repeat, lambda: int(shuffle(sizes, spec.seed, 1)[position]))
        return {**meta, "first_index_s": t_first, "resume_s": t_resume, "first_index": index}

    return run_peer


def cached_loads(shards: np.ndarray, cache: int) -> int:
    """How many shards a reader of the shard sequence ``shards`` loads with an LRU cache of
    ``cache`` shards."""
    runs = shards[np.flatnonzero(np.diff(shards, prepend=-1))].tolist()
    held: dict[int, None] = {}  # insertion order is recency
    loads = 0
    for k in runs:
        if k in held:
            del held[k]
        else:
            loads += 1
            if len(held) == cache:
                del held[next(iter(held))]
        held[k] = None
    return loads


def locality(sizes: np.ndarray, ranks: list[np.ndarray]) -> dict[str, Any]:
    """Shard loads, open shards and same-shard neighbours of the ranks' epochs ``ranks``."""
    ends = np.cumsum(sizes)
    loads, cached, most_open, same, pairs = 0, 0, 0, 0, 0
    for indices in ranks:
        shard = np.searchsorted(ends, indices, side="right")
        m = len(shard)
        if m == 0:
            continue
        _, first = np.unique(shard, return_index=True)
        _, last_rev = np.unique(shard[::-1], return_index=True)
        last = m - 1 - last_rev
        delta = np.bincount(first, minlength=m + 1) - np.bincount(last + 1, minlength=m + 1)
        most_open = max(most_open, int(np.cumsum(delta).max()))
        loads += len(first)
        cached += cached_loads(shard, WINDOW)
        same += int(np.count_nonzero(shard[1:] == shard[:-1]))
        pairs += m - 1
    return {
        "shards": len(sizes),
        "loads": loads,
        "cached_loads": cached,
        "load_bound": int(np.count_nonzero(sizes)) + 2 * WORLD_SIZE,
        "max_open": most_open,
        "same_shard": same / pairs if pairs else 0.0,
    }


def _setup_locality(spec: Spec) -> Callable[[], dict[str, Any]]:
    sizes = shard_sizes(spec.n, spec.seed)
    if spec.impl == "ours":
        from resumable_samplers import ResumableShardSampler

        def epoch() -> list[np.ndarray]:
            out = []
            for r in range(WORLD_SIZE):
                s = ResumableShardSampler(
                    sizes, window=WINDOW, seed=spec.seed, num_replicas=WORLD_SIZE, rank=r
                )
                s.set_epoch(1)
                out.append(np.asarray(s.indices()))
            return out

    else:
        shuffle = _mosaic(spec.impl)

        def epoch() -> list[np.ndarray]:
            return np.array_split(shuffle(sizes, spec.seed, 1), WORLD_SIZE)

    return lambda: {**locality(sizes, epoch()), "window": WINDOW}


SETUPS: dict[str, Setup] = {"shard_first": _setup_first, "shard_locality": _setup_locality}
"""The cases of section ``s``, by name."""


def plan_shards(sizes: list[int], seed: int, repeat: int | None, impls: list[str]) -> list[Spec]:
    """Section s's measurements: first index at :data:`FIRST_NS` up to the largest of ``sizes``
    (Mosaic up to :data:`PEER_MAX_N`), locality at :data:`LOCALITY_N` (or that largest size)."""
    bound = max(sizes)
    specs = []
    for n in [n for n in FIRST_NS if n <= bound] or [bound]:
        for impl in impls:
            if impl == "ours" or n <= PEER_MAX_N:
                times = repeat if repeat is not None else (3 if n <= 10**8 else 1)
                specs.append(Spec("s", "shard_first", impl, n, seed, times))
    for impl in impls:
        specs.append(Spec("s", "shard_locality", impl, min(LOCALITY_N, bound), seed))
    return specs


def shard_table(outcomes: list[Outcome]) -> str:
    """Section s's two Markdown tables: time and memory to the first index, and locality."""
    lines = [
        "| impl | n | shards | first index (s) | resume at 50% (s) | elastic 8 -> 6 (s) "
        "| extra RSS (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    notes = set()
    for o in outcomes:
        if o.spec.section != "s" or o.spec.case != "shard_first":
            continue
        m = o.metrics
        if o.status != "ok":
            notes.add(f"{o.spec.impl}: {o.status} ({o.reason})")
            continue
        lines.append(
            f"| {o.spec.impl} | {format_n(o.spec.n)} | {m.get('shards', '-')} "
            f"| {format_seconds(m.get('first_index_s'))} | {format_seconds(m.get('resume_s'))} "
            f"| {format_seconds(m.get('elastic_s'))} | {format_mib(o.rss.get('extra'))} |"
        )
    lines += [
        "",
        "| impl | n | shards | shards read per epoch | K + 2W | loads with a cache of "
        f"{WINDOW} | most open shards per rank | adjacent samples from one shard |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        if o.spec.section != "s" or o.spec.case != "shard_locality" or o.status != "ok":
            continue
        m = o.metrics
        lines.append(
            f"| {o.spec.impl} | {format_n(o.spec.n)} | {m['shards']} | {m['loads']} "
            f"| {m['load_bound']} | {m['cached_loads']} | {m['max_open']} "
            f"| {m['same_shard']:.3f} |"
        )
    lines += [
        "",
        f"{WORLD_SIZE} ranks (Mosaic: as many canonical nodes), rank {RANK}, window {WINDOW}, "
        f"about {SAMPLES_PER_SHARD} samples per shard. Mosaic's times are its shuffle alone; "
        f"it is not run above n = {format_n(PEER_MAX_N)}.",
    ]
    for note in sorted(notes):
        lines += ["", f"Not measured: {note}."]
    return "\n".join(lines)

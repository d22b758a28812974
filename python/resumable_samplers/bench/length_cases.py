"""Section ``h``: length grouping, as run inside a child process.

Every measurement reads ``n`` log-normal lengths (``uint16``, median ~245 tokens, a long tail
clipped at 8192) memory-mapped from a ``.npy`` file, written once per ``n`` (untimed) into a
folder of the temporary directory and reused by later runs:

- ``length_epoch``: ``ours`` is ``ResumableLengthGroupedSampler(path, 32)``, ``budget``
  ``ResumableTokenBudgetBatchSampler(path, 16384)``: construction (one pass over the lengths:
  validation, maximum, fingerprint; timed, but before the memory baseline, as its memory is the
  mapped lengths), then the first epoch up to its first index (or batch); ``transformers`` is
  transformers' ``LengthGroupedSampler(32, lengths=list)`` with the Python list it requires
  (built before the baseline): its epoch up to the first index.
- ``length_resume``: the same in a fresh process resumed at 50%: ours constructs, then loads a
  state saved half-way through the epoch and takes the next index (or batch); transformers
  builds the epoch and skips its first half, as ``Trainer`` does.
- ``length_padding``: real tokens / padded tokens (every batch padded to its longest sample) of a
  random order, the length-grouped order and the token-budget batches.

``first_index`` of ``ours`` and ``transformers`` is compared by the run's checks: the orders are
the same.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from resumable_samplers.bench.cases import Setup, Unavailable
from resumable_samplers.bench.spec import LENGTH_BATCH_SIZE, LENGTH_MAX_TOKENS, Spec

TRANSFORMERS_INSTALL = "pip install transformers"
LENGTHS_DIR = Path(tempfile.gettempdir()) / "resumable-samplers-bench"
"""Where the lengths files are kept between runs."""


def lengths_file(n: int, directory: Path = LENGTHS_DIR) -> Path:
    """``n`` log-normal lengths as a ``uint16`` ``.npy`` file, written in chunks the first time."""
    path = directory / f"lengths-{n}.npy"
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f"lengths-{n}.{os.getpid()}.partial.npy"
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint16, shape=(n,))
    rng = np.random.default_rng(1234)
    step = 10_000_000
    for start in range(0, n, step):
        k = min(step, n - start)
        out[start : start + k] = np.clip(rng.lognormal(5.5, 0.8, k), 1, 8192).astype(np.uint16)
    out.flush()
    del out
    os.replace(partial, path)  # another child never reads a half-written file
    return path


def _ours(impl: str, path: Path, seed: int) -> Any:
    import resumable_samplers as rs

    if impl == "ours":
        return rs.ResumableLengthGroupedSampler(
            path, LENGTH_BATCH_SIZE, seed=seed, num_replicas=1, rank=0
        )
    if impl == "budget":
        return rs.ResumableTokenBudgetBatchSampler(
            path, LENGTH_MAX_TOKENS, seed=seed, oversized="alone", num_replicas=1, rank=0
        )
    raise ValueError(f"unknown implementation {impl!r}")


def _first(item: Any) -> Any:
    """The first index of an index or of a batch."""
    return item[0] if isinstance(item, list) else item


def _transformers_sampler(path: Path, seed: int) -> Callable[[], Any]:
    try:
        from transformers.trainer_pt_utils import LengthGroupedSampler
    except ImportError as e:
        raise Unavailable(
            f"cannot import transformers' LengthGroupedSampler: {e} ({TRANSFORMERS_INSTALL})"
        ) from e
    import torch

    lengths = np.load(path, mmap_mode="r").tolist()

    def make() -> Any:
        g = torch.Generator().manual_seed(seed)
        return LengthGroupedSampler(LENGTH_BATCH_SIZE, lengths=lengths, generator=g)

    return make


def half_position(n: int) -> int:
    """The resume point of ``length_resume``: half of the epoch's full batches of 32, in
    indices."""
    return n // LENGTH_BATCH_SIZE // 2 * LENGTH_BATCH_SIZE


def _setup_epoch(spec: Spec) -> Callable[[], dict[str, Any]]:
    path = lengths_file(spec.n)
    if spec.impl == "transformers":
        make = _transformers_sampler(path, spec.seed)

        def run_transformers() -> dict[str, Any]:
            t0 = time.perf_counter()
            first = next(iter(make()))
            return {"first_epoch_s": time.perf_counter() - t0, "first_index": int(first)}

        return run_transformers

    t0 = time.perf_counter()
    sampler = _ours(spec.impl, path, spec.seed)
    construct_s = time.perf_counter() - t0  # untimed by the peak: it maps and reads the lengths

    def run() -> dict[str, Any]:
        t0 = time.perf_counter()
        first = next(iter(sampler))
        metrics: dict[str, Any] = {
            "construct_s": construct_s,
            "first_epoch_s": time.perf_counter() - t0,
        }
        if spec.impl == "budget":
            metrics["batches"] = sampler.num_batches()
            metrics["first_batch_index"] = int(_first(first))
        else:
            metrics["first_index"] = int(first)
        return metrics

    return run


def _setup_resume(spec: Spec) -> Callable[[], dict[str, Any]]:
    path = lengths_file(spec.n)
    if spec.impl == "transformers":
        make = _transformers_sampler(path, spec.seed)
        skip = half_position(spec.n)

        def run_transformers() -> dict[str, Any]:
            t0 = time.perf_counter()
            it = iter(make())
            for _ in itertools.islice(it, skip):
                pass
            first = next(it)
            return {"resume_s": time.perf_counter() - t0, "first_index": int(first)}

        return run_transformers

    saver = _ours(spec.impl, path, spec.seed)
    if spec.impl == "budget":
        saver.start_iter = saver.num_batches() // 2
    else:
        saver.start_iter = half_position(spec.n) // LENGTH_BATCH_SIZE
    state = saver.state_dict()  # what a checkpoint taken half-way through holds
    del saver
    t0 = time.perf_counter()
    sampler = _ours(spec.impl, path, spec.seed)  # a fresh process constructs, then loads
    construct_s = time.perf_counter() - t0

    def run() -> dict[str, Any]:
        t0 = time.perf_counter()
        sampler.load_state_dict(state)
        first = next(iter(sampler))
        metrics: dict[str, Any] = {
            "construct_s": construct_s,
            "resume_s": time.perf_counter() - t0,
        }
        key = "first_batch_index" if spec.impl == "budget" else "first_index"
        metrics[key] = int(_first(first))
        return metrics

    return run


def _setup_padding(spec: Spec) -> Callable[[], dict[str, Any]]:
    import resumable_samplers as rs

    path = lengths_file(spec.n)
    lengths = np.load(path, mmap_mode="r")

    def efficiency(order: np.ndarray[Any, Any]) -> float:
        full = len(order) // LENGTH_BATCH_SIZE * LENGTH_BATCH_SIZE
        rows = np.asarray(lengths[order[:full]], dtype=np.int64).reshape(-1, LENGTH_BATCH_SIZE)
        return float(rows.sum() / (rows.max(axis=1).sum() * LENGTH_BATCH_SIZE))

    def run() -> dict[str, Any]:
        budget = _ours("budget", path, spec.seed)
        real = padded = count = 0
        for batch in budget:
            b = np.asarray(lengths[batch], dtype=np.int64)
            real += int(b.sum())
            padded += int(b.max()) * len(b)
            count += len(b)
        return {
            "random": efficiency(rs.randperm(spec.n, spec.seed)),
            "length_grouped": efficiency(_ours("ours", path, spec.seed).indices()),
            "token_budget": real / padded,
            "token_budget_mean_batch": count / budget.num_batches(),
        }

    return run


SETUPS: dict[str, Setup] = {
    "length_epoch": _setup_epoch,
    "length_resume": _setup_resume,
    "length_padding": _setup_padding,
}
"""The cases of section ``h``, by name."""

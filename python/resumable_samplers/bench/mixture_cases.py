"""Section ``g``: weighted mixtures, as run inside a child process.

``K`` sources of ``n // K`` items each, with weights spanning six orders of magnitude, a stream of
``n`` positions per epoch:

- ``mixture_first``: ``ours`` is building ``ResumableMixtureSampler`` and reaching the first index
  of epoch 3 half-way (``seek``); ``megatron`` is Megatron's blending index
  (``build_blending_indices`` from megatron-core's compiled helpers: what its ``BlendedDataset``
  builds before its first sample, O(n K) time and 10 bytes per position). From
  ``K = MEGATRON_SCALE_FROM_K`` on, Megatron's index is built at ``MEGATRON_SCALED_N`` and its
  time scaled linearly to ``n``.
- ``mixture_iterate``: a whole epoch iterated as Python ints, ``ours`` (a mixture of ``K``
  sources) against ``lazy`` (the plain lazy sampler over ``n`` items).
- ``mixture_restore``: torchdata's ``MultiNodeWeightedSampler`` (random draws by weight) over ``K``
  range sources: its iteration, and a fresh one restoring a state saved half-way and yielding.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import Any

from resumable_samplers.bench.cases import Setup, Unavailable
from resumable_samplers.bench.spec import MIXTURE_BATCH_SIZE, MIXTURE_EPOCH, Spec, megatron_n

MEGATRON_INSTALL = "pip install megatron-core"


def mixture_weights(k: int) -> list[float]:
    """``k`` weights spanning six orders of magnitude, from 1 down to 1e-6."""
    return [10.0 ** (-6 * i / max(k - 1, 1)) for i in range(k)]


def _setup_first(spec: Spec) -> Callable[[], dict[str, Any]]:
    n, k = spec.n, spec.k
    if spec.impl == "ours":
        from resumable_samplers import ResumableMixtureSampler

        lengths = [max(1, n // k)] * k
        weights = mixture_weights(k)

        def run() -> dict[str, Any]:
            best: dict[str, Any] = {}
            for _ in range(spec.repeat):
                t0 = time.perf_counter()
                sampler = ResumableMixtureSampler(
                    lengths, weights, num_samples=n, seed=spec.seed, batch_size=MIXTURE_BATCH_SIZE
                )
                t1 = time.perf_counter()
                sampler.seek(MIXTURE_EPOCH, len(sampler) // MIXTURE_BATCH_SIZE // 2)
                first = next(iter(sampler))
                t2 = time.perf_counter()
                got = {"time_s": t2 - t0, "build_s": t1 - t0, "first_s": t2 - t1, "first": first}
                if not best or got["time_s"] < best["time_s"]:
                    best = got
            return best

        return run
    if spec.impl == "megatron":
        try:
            helpers = importlib.import_module("megatron.core.datasets.helpers_cpp")
        except ImportError as e:
            raise Unavailable(
                f"cannot import megatron.core.datasets.helpers_cpp: {e} ({MEGATRON_INSTALL})"
            ) from e
        import numpy as np

        w = np.array(mixture_weights(k), dtype=np.float64)
        w /= w.sum()
        built_n = megatron_n(n, k)

        def run() -> dict[str, Any]:
            t0 = time.perf_counter()
            dataset_index = np.zeros(built_n, dtype=np.int16)
            dataset_sample_index = np.zeros(built_n, dtype=np.int64)
            helpers.build_blending_indices(
                dataset_index, dataset_sample_index, w, k, built_n, False
            )
            first = int(dataset_index[built_n // 2])
            elapsed = time.perf_counter() - t0
            return {
                "time_s": elapsed * n / built_n,
                "measured_n": built_n,
                "measured_s": elapsed,
                "first": first,
            }

        return run
    raise ValueError(f"unknown implementation {spec.impl!r}")


def _setup_iterate(spec: Spec) -> Callable[[], dict[str, Any]]:
    from resumable_samplers import ResumableMixtureSampler, ResumableRandomSampler

    n, k = spec.n, spec.k

    def make() -> Any:
        if spec.impl == "ours":
            return ResumableMixtureSampler(
                [max(1, n // k)] * k, mixture_weights(k), num_samples=n, seed=spec.seed
            )
        if spec.impl == "lazy":
            return ResumableRandomSampler(range(n), seed=spec.seed, permutation="lazy")
        raise ValueError(f"unknown implementation {spec.impl!r}")

    def run() -> dict[str, Any]:
        times = []
        count = 0
        for _ in range(spec.repeat):
            sampler = make()
            count = 0
            t0 = time.perf_counter()
            for _i in sampler:
                count += 1
            times.append(time.perf_counter() - t0)
        best = min(times)
        return {"time_s": best, "count": count, "ns_per_index": best / max(count, 1) * 1e9}

    return run


def _setup_restore(spec: Spec) -> Callable[[], dict[str, Any]]:
    try:
        nodes = importlib.import_module("torchdata.nodes")
        weighted = importlib.import_module("torchdata.nodes.samplers.multi_node_weighted_sampler")
    except ImportError as e:
        raise Unavailable(f"cannot import torchdata.nodes: {e} (pip install torchdata)") from e
    n, k = spec.n, spec.k
    per = max(1, n // k)

    def make() -> Any:
        sources = {f"s{j}": nodes.IterableWrapper(range(j * per, (j + 1) * per)) for j in range(k)}
        weights = dict(zip(sources, mixture_weights(k), strict=True))
        return weighted.MultiNodeWeightedSampler(
            sources, weights, seed=spec.seed, stop_criteria="CYCLE_FOREVER"
        )

    def run() -> dict[str, Any]:
        node = make()
        half = max(1, n // 2)
        t0 = time.perf_counter()
        for _ in range(half):
            next(node)
        per_item = (time.perf_counter() - t0) / half
        state = node.state_dict()
        fresh = make()
        t0 = time.perf_counter()
        fresh.reset(state)
        next(fresh)
        return {"time_s": time.perf_counter() - t0, "ns_per_index": per_item * 1e9}

    return run


SETUPS: dict[str, Setup] = {
    "mixture_first": _setup_first,
    "mixture_iterate": _setup_iterate,
    "mixture_restore": _setup_restore,
}
"""The cases of section ``g``, by name."""

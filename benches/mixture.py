"""Weighted mixtures: time and memory to the first index, and iteration throughput.

Compares ``ResumableMixtureSampler`` with Megatron's blending index (``build_blending_indices``
from megatron-core's compiled helpers, run from the installed package: the index Megatron's
``BlendedDataset`` builds before its first sample, O(N * K) time and 10 bytes per sample), and
its iteration with the plain lazy sampler's. Each measurement runs in its own process; memory is
the peak resident memory above the process's baseline after imports.

    python benches/mixture.py [--sizes 1e8,1e9] [--megatron-max 1e9] [--iterate 1e7]

Megatron's build is O(N * K): with K = 1000 it is measured at a smaller N and the time at N is
extrapolated linearly (said so in the output).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from typing import Any


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _weights(k: int) -> list[float]:
    # spanning 6 orders of magnitude
    return [10.0 ** (-6 * i / max(k - 1, 1)) for i in range(k)]


def case_ours_first_index(n: int, k: int) -> dict[str, Any]:
    from resumable_samplers import ResumableMixtureSampler

    lengths = [max(1, n // k)] * k
    base = _rss_mib()
    t = time.perf_counter()
    s = ResumableMixtureSampler(lengths, _weights(k), num_samples=n, seed=1, batch_size=256)
    built = time.perf_counter()
    s.seek(3, (n // 256) // 2)  # epoch 3, half-way: stream position 3.5 n
    first = next(iter(s))
    done = time.perf_counter()
    return {
        "time_s": done - t,
        "build_s": built - t,
        "first_s": done - built,
        "extra_mib": _rss_mib() - base,
        "first": first,
    }


def case_megatron(n: int, k: int) -> dict[str, Any]:
    import numpy as np
    from megatron.core.datasets import helpers_cpp  # type: ignore[import-not-found]

    w = np.array(_weights(k), dtype=np.float64)
    w /= w.sum()
    base = _rss_mib()
    t = time.perf_counter()
    dataset_index = np.zeros(n, dtype=np.int16)
    dataset_sample_index = np.zeros(n, dtype=np.int64)
    helpers_cpp.build_blending_indices(dataset_index, dataset_sample_index, w, k, n, False)
    first = int(dataset_index[n // 2])
    elapsed = time.perf_counter() - t
    return {"time_s": elapsed, "extra_mib": _rss_mib() - base, "first": first}


def case_iterate(n: int, k: int) -> dict[str, Any]:
    from resumable_samplers import ResumableMixtureSampler, ResumableRandomSampler

    if k:
        s: Any = ResumableMixtureSampler([max(1, n // k)] * k, _weights(k), num_samples=n)
    else:
        s = ResumableRandomSampler(range(n), permutation="lazy")
    t = time.perf_counter()
    count = 0
    for _ in s:
        count += 1
    elapsed = time.perf_counter() - t
    return {"time_s": elapsed, "ns_per_index": elapsed / count * 1e9}


def case_torchdata(n: int, k: int) -> dict[str, Any]:
    """torchdata's MultiNodeWeightedSampler (random draws by weight) over K range sources: its
    iteration, and the time a fresh one takes to restore a state saved half-way and yield."""
    from torchdata.nodes import IterableWrapper
    from torchdata.nodes.samplers.multi_node_weighted_sampler import MultiNodeWeightedSampler

    per = max(1, n // k)

    def make() -> Any:
        sources = {f"s{j}": IterableWrapper(range(j * per, (j + 1) * per)) for j in range(k)}
        weights = dict(zip(sources, _weights(k), strict=True))
        return MultiNodeWeightedSampler(sources, weights, seed=1, stop_criteria="CYCLE_FOREVER")

    node = make()
    t = time.perf_counter()
    for _ in range(n // 2):
        next(node)
    per_item = (time.perf_counter() - t) / (n // 2)
    state = node.state_dict()
    fresh = make()
    t = time.perf_counter()
    fresh.reset(state)
    next(fresh)
    return {"time_s": time.perf_counter() - t, "ns_per_index": per_item * 1e9}


CASES = {
    "ours": case_ours_first_index,
    "megatron": case_megatron,
    "iterate": case_iterate,
    "torchdata": case_torchdata,
}


def run(case: str, n: int, k: int) -> dict[str, Any] | None:
    """Run one case in a fresh process; None when it could not run (say why on stderr)."""
    code = f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); import mixture, json; "
    code += f"print(json.dumps(mixture.CASES[{case!r}]({n}, {k})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"  {case} n={n:.0e} K={k}: failed: {out.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0]
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, load {load:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e8,1e9", help="N values for the first-index cases")
    parser.add_argument(
        "--megatron-max", type=float, default=1e9, help="largest N Megatron's build runs at"
    )
    parser.add_argument("--iterate", type=float, default=1e7, help="N for the iteration cases")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print("\nfirst index at epoch 3, half-way (ours) vs Megatron's blending index build")
    print(
        "| N | K | ours: first index (sampler built + seek) | ours: extra memory "
        "| Megatron: time | Megatron: memory | ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in (int(float(x)) for x in args.sizes.split(",")):
        for k in (3, 1000):
            ours = run("ours", n, k)
            m_n = min(n, int(args.megatron_max)) if k < 100 else min(n, 10**7)
            meg = run("megatron", m_n, k)
            if meg is not None and m_n < n:
                meg = {**meg, "time_s": meg["time_s"] * n / m_n, "extrapolated": m_n}
            o = (
                f"{ours['time_s'] * 1e3:.2f} ms ({ours['build_s'] * 1e3:.2f} + "
                f"{ours['first_s'] * 1e3:.3f}) | {ours['extra_mib']:.1f} MiB"
                if ours
                else "- | -"
            )
            if meg:
                note = f" (from N={meg['extrapolated']:.0e})" if "extrapolated" in meg else ""
                mem = "" if "extrapolated" in meg else f"{meg['extra_mib']:.0f} MiB"
                ratio = f"{meg['time_s'] / ours['time_s']:.0f}x" if ours else ""
                mg = f"{meg['time_s']:.2f} s{note} | {mem} | {ratio}"
            else:
                mg = "- | - | -"
            print(f"| {n:.0e} | {k} | {o} | {mg} |")
    n = int(args.iterate)
    td = run("torchdata", min(n, 10**6), 3)
    if td:
        print(
            f"\ntorchdata MultiNodeWeightedSampler, K=3, N={min(n, 10**6):.0e}: restoring a state "
            f"saved half-way and yielding its next item: {td['time_s'] * 1e3:.1f} ms; "
            f"iteration {td['ns_per_index']:.0f} ns per item"
        )
    print(f"\niteration of a whole epoch of {n:.0e} indices (Python ints), ns per index")
    plain = run("iterate", n, 0)
    print(f"- plain lazy sampler: {plain['ns_per_index']:.1f}" if plain else "- plain: failed")
    for k in (3, 1000):
        r = run("iterate", n, k)
        if r and plain:
            ratio = r["ns_per_index"] / plain["ns_per_index"]
            print(f"- mixture, K={k}: {r['ns_per_index']:.1f} ({ratio:.2f}x the plain sampler)")


if __name__ == "__main__":
    main()

"""Length grouping at scale: building an epoch, resuming one, memory, and padding efficiency.

``python benches/length_grouping.py [--sizes 1e7,1e8] [--transformers-max 1e7] [--kinds
ours,budget,transformers] [--no-padding]``

For each size ``n`` it writes ``n`` log-normal lengths (``uint16``, median ~245 tokens, a long
tail clipped at 8192) to a ``.npy`` file and measures, each in a fresh process reading the file
memory-mapped:

- ``ours``: ``ResumableLengthGroupedSampler(path, 32)``: construction (one pass over the
  lengths: validation, maximum, fingerprint; its memory is the mapped lengths being read), the
  first epoch (time to its first index), and, in another fresh process, a resumed epoch
  (``load_state_dict`` of a state saved halfway through, then the time to the next index);
- ``budget``: ``ResumableTokenBudgetBatchSampler(path, 16384)``, the same three;
- ``transformers``: ``LengthGroupedSampler(32, lengths=list)`` with the lengths as the Python
  list it requires, for ``n`` up to ``--transformers-max``: time of one epoch's order, and of a
  resume at 50% the way ``Trainer`` does it (the epoch's order, then skipping half of it).

Peak memory is the process's peak resident memory during the measured step minus its resident
memory just before (``/proc/self/clear_refs`` resets the peak), so the lengths themselves
(mapped and read at construction, or the Python list) are not counted. Padding efficiency (real
tokens / padded tokens, batches padded to their longest sample) is computed on the smallest
size for a random sampler, the length-grouped order and the token-budget batches.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 32
MAX_TOKENS = 16384
SEED = 0


def _lengths_file(n: int, directory: Path) -> Path:
    """``n`` log-normal lengths as a ``uint16`` ``.npy`` file, written in chunks."""
    path = directory / f"lengths-{n}.npy"
    if path.exists():
        return path
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(n,))
    rng = np.random.default_rng(1234)
    step = 10_000_000
    for start in range(0, n, step):
        k = min(step, n - start)
        out[start : start + k] = np.clip(rng.lognormal(5.5, 0.8, k), 1, 8192).astype(np.uint16)
    out.flush()
    del out
    return path


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _Step:
    """Times a step and measures its peak resident memory above the memory before it."""

    def __init__(self, report: dict[str, Any], name: str) -> None:
        self.report, self.name = report, name

    def __enter__(self) -> None:
        self.exact = _reset_peak()
        self.before = _rss_kb("VmRSS")
        self.t = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self.t
        peak = _rss_kb("VmHWM") if self.exact else _rss_kb("VmRSS")
        self.report[self.name] = {"s": elapsed, "peak_extra_mb": max(0, peak - self.before) / 1e3}


def _child(kind: str, n: int, path: str, state_file: str) -> dict[str, Any]:
    import itertools

    report: dict[str, Any] = {}
    if kind.startswith(("ours", "budget")):
        import resumable_samplers as rs

        def make() -> Any:
            if kind.startswith("ours"):
                return rs.ResumableLengthGroupedSampler(path, BATCH, seed=SEED)
            return rs.ResumableTokenBudgetBatchSampler(
                path, MAX_TOKENS, seed=SEED, oversized="alone"
            )

        if kind.endswith("-resume"):
            # A fresh process, as after a restart: construct, load, first index.
            with open(state_file) as f:
                state = json.load(f)
            with _Step(report, "construct"):
                s = make()
            with _Step(report, "resume_50pct"):
                s.load_state_dict(state)
                next(iter(s))
            return report
        with _Step(report, "construct"):
            s = make()
        with _Step(report, "first_epoch"):
            it = iter(s)
            next(it)
        half = len(s) // 2
        list(itertools.islice(it, half - 1))
        with open(state_file, "w") as f:
            json.dump(s.state_dict(), f)
        if kind == "budget":
            report["batches"] = s.num_batches()
    else:
        import torch
        from transformers.trainer_pt_utils import LengthGroupedSampler

        lengths = np.load(path, mmap_mode="r").tolist()
        g = torch.Generator().manual_seed(SEED)
        sampler = LengthGroupedSampler(BATCH, lengths=lengths, generator=g)
        with _Step(report, "first_epoch"):
            it = iter(sampler)
            next(it)
        del it
        with _Step(report, "resume_50pct"):
            it = iter(sampler)
            for _ in itertools.islice(it, n // 2):
                pass
            next(it)
    return report


def _run_child(kind: str, n: int, path: Path, timeout: float) -> dict[str, Any] | str:
    state_file = path.with_suffix(f".{kind.split('-')[0]}.state.json")
    cmd = [sys.executable, __file__, "--child", kind, str(n), str(path), str(state_file)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    if proc.returncode != 0:
        return f"failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def _padding(path: Path) -> dict[str, float]:
    """Real tokens / padded tokens for a random sampler, length grouping and token budgets."""
    import resumable_samplers as rs

    lengths = np.load(path, mmap_mode="r")
    n = len(lengths)

    def efficiency(order: np.ndarray[Any, Any]) -> float:
        full = len(order) // BATCH * BATCH
        rows = np.asarray(lengths[order[:full]], dtype=np.int64).reshape(-1, BATCH)
        return float(rows.sum() / (rows.max(axis=1).sum() * BATCH))

    random = rs.randperm(n, SEED)
    grouped = rs.ResumableLengthGroupedSampler(path, BATCH, seed=SEED, num_replicas=1, rank=0)
    budget = rs.ResumableTokenBudgetBatchSampler(
        path, MAX_TOKENS, seed=SEED, oversized="alone", num_replicas=1, rank=0
    )
    real = padded = count = 0
    for batch in budget:
        b = np.asarray(lengths[batch], dtype=np.int64)
        real += int(b.sum())
        padded += int(b.max()) * len(b)
        count += len(b)
    return {
        "random": efficiency(random),
        "length_grouped": efficiency(grouped.indices()),
        "token_budget": real / padded,
        "token_budget_mean_batch": count / budget.num_batches(),
    }


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line
        )
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB"


def _fmt(r: dict[str, Any] | str, step: str, n: int) -> str:
    if isinstance(r, str):
        return r
    if r.get(step) is None:
        return "-"
    m = r[step]
    per = m["peak_extra_mb"] * 1e6 / n
    return f"{m['s']:8.3f} s  {m['peak_extra_mb']:8.1f} MB ({per:5.2f} B/sample)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1e7,1e8")
    p.add_argument("--transformers-max", default="1e7")
    p.add_argument("--kinds", default="ours,budget,transformers", help="what to measure")
    p.add_argument("--no-padding", action="store_true", help="skip the padding efficiency")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--dir", default=None, help="where the lengths files go (default: a temp dir)")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, n, path, state_file = args.child
        print(json.dumps(_child(kind, int(n), path, state_file)))
        return 0
    sizes = [int(float(x)) for x in args.sizes.split(",")]
    hf_max = int(float(args.transformers_max))
    directory = Path(args.dir or tempfile.mkdtemp(prefix="length-bench-"))
    print(f"machine: {_machine()}")
    results: dict[int, dict[str, Any]] = {}
    for n in sizes:
        path = _lengths_file(n, directory)
        results[n] = {}
        wanted = args.kinds.split(",")
        kinds = [k for k in ("ours", "budget") if k in wanted]
        if "transformers" in wanted and n <= hf_max:
            kinds.append("transformers")
        for kind in kinds:
            r = _run_child(kind, n, path, args.timeout)
            if kind != "transformers" and isinstance(r, dict):
                resumed = _run_child(kind + "-resume", n, path, args.timeout)
                r["resume_50pct"] = resumed["resume_50pct"] if isinstance(resumed, dict) else None
            results[n][kind] = r
            print(f"\nn={n:.0e} {kind}")
            for step in ("construct", "first_epoch", "resume_50pct"):
                print(f"  {step:13s} {_fmt(r, step, n)}")
            if isinstance(r, dict) and "batches" in r:
                print(f"  batches       {r['batches']}")
        hf = results[n].get("transformers")
        ours = results[n].get("ours")
        if isinstance(hf, dict) and isinstance(ours, dict):
            for step in ("first_epoch", "resume_50pct"):
                ratio = hf[step]["s"] / ours[step]["s"]
                print(f"  transformers / ours, {step}: {ratio:.1f}x")
    if args.no_padding:
        return 0
    eff = _padding(_lengths_file(sizes[0], directory))
    print(f"\npadding efficiency (real / padded tokens), n={sizes[0]:.0e}, batch {BATCH}:")
    print(f"  random sampler       {eff['random']:.3f}")
    print(f"  length grouped       {eff['length_grouped']:.3f}")
    print(
        f"  token budget {MAX_TOKENS}   {eff['token_budget']:.3f} "
        f"(mean batch {eff['token_budget_mean_batch']:.1f} samples)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

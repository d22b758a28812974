"""transformers' ``Trainer``: the first batch of an epoch and the first batch after a resume, stock
against ``ResumableTrainerMixin``.

``python benches/trainer.py [--sizes 1e7,1e8] [--lazy-sizes 1e9] [--kinds stock,ours,lazy]``

Each measurement runs in a fresh process that builds a ``Trainer`` (one process, batches of 8, a
map-style dataset of ``n`` items whose item ``i`` is ``{"idx": i}``, ``num_workers=0``, CPU) and
times, through the ``Trainer``'s own data path:

- ``first batch``: ``trainer.get_train_dataloader()``, ``set_epoch(0)`` and the first batch out
  of ``iter(loader)`` (what ``Trainer._run_epoch`` does at every epoch start);
- ``resume at 50%``: the same loader, then ``trainer.get_resumed_dataloader(loader, k)`` with
  ``k`` half the epoch's batches, ``set_epoch(0)`` and the first batch (what a run resumed from a
  checkpoint taken halfway through the epoch does).

``stock`` is ``transformers.Trainer`` (accelerate's ``SeedableRandomSampler``, and
``skip_first_batches`` to resume); ``ours`` is ``class Trainer(ResumableTrainerMixin,
transformers.Trainer)`` (the same order); ``lazy`` is ours with ``sampler_permutation = "lazy"``
(another order, no O(n) memory), also at ``--lazy-sizes``. Peak memory is the process's peak
resident memory during the measured step minus its resident memory just before
(``/proc/self/clear_refs`` resets the peak). Each process first runs the same step on 64 items, so
that the one-time imports of the first loader are not counted.
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
from typing import Any

BATCH = 8
KINDS = ("stock", "ours", "lazy")
STEPS = ("first_batch", "resume_50pct")


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


def _child(kind: str, step: str, n: int) -> dict[str, Any]:
    # The first loader of a process imports what accelerate loads lazily: take it on a tiny
    # dataset first, so that the timed step is the sampler's work alone.
    _measure(kind, step, 64, {})
    report: dict[str, Any] = {}
    _measure(kind, step, n, report)
    return report


def _measure(kind: str, step: str, n: int, report: dict[str, Any]) -> None:
    import torch
    import transformers

    from resumable_samplers.transformers import ResumableTrainerMixin

    class Items(torch.utils.data.Dataset[dict[str, int]]):
        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int) -> dict[str, int]:
            return {"idx": i}

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"loss": self.w.sum()}

    class Trainer(ResumableTrainerMixin, transformers.Trainer):
        pass

    if kind == "lazy":
        Trainer.sampler_permutation = "lazy"
    cls = transformers.Trainer if kind == "stock" else Trainer
    args = transformers.TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="trainer-bench-"),
        per_device_train_batch_size=BATCH,
        report_to=[],
        use_cpu=True,
        dataloader_pin_memory=False,
        seed=0,
    )
    trainer = cls(
        model=Model(),
        args=args,
        train_dataset=Items(),
        data_collator=lambda items: {"idx": torch.tensor([f["idx"] for f in items])},
    )
    with _Step(report, step):
        loader = trainer.get_train_dataloader()
        if step == "resume_50pct":
            loader = trainer.get_resumed_dataloader(loader, len(loader) // 2)
        loader.set_epoch(0)
        batch = next(iter(loader))
    report["first_index"] = int(batch["idx"][0])


def _run_child(kind: str, step: str, n: int, timeout: float) -> dict[str, Any] | str:
    cmd = [sys.executable, __file__, "--child", kind, step, str(n)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    if proc.returncode != 0:
        return f"failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


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


def _fmt(r: dict[str, Any] | str, step: str) -> str:
    if isinstance(r, str):
        return r
    m = r[step]
    return f"{m['s']:8.3f} s  {m['peak_extra_mb']:9.1f} MB"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1e7,1e8")
    p.add_argument("--lazy-sizes", default="1e9", help="sizes measured with the lazy order only")
    p.add_argument("--kinds", default=",".join(KINDS), help="what to measure")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, step, n = args.child
        print(json.dumps(_child(kind, step, int(float(n)))))
        return 0
    kinds = [k for k in args.kinds.split(",") if k]
    plan = [(int(float(n)), kinds) for n in args.sizes.split(",") if n]
    plan += [(int(float(n)), ["lazy"]) for n in args.lazy_sizes.split(",") if n]
    print(f"machine: {_machine()}; load average {os.getloadavg()[0]:.2f} at the start")
    for n, which in plan:
        results = {}
        for kind in which:
            results[kind] = {s: _run_child(kind, s, n, args.timeout) for s in STEPS}
            print(f"\nn={n:.0e} {kind}")
            for step in STEPS:
                print(f"  {step:13s} {_fmt(results[kind][step], step)}")
        stock, ours = results.get("stock"), results.get("ours")
        if stock and ours:
            for step in STEPS:
                a, b = stock[step], ours[step]
                if isinstance(a, dict) and isinstance(b, dict):
                    same = a["first_index"] == b["first_index"]
                    ratio = a[step]["s"] / b[step]["s"]
                    print(f"  stock / ours, {step}: {ratio:.1f}x (same first index: {same})")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

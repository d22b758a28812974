"""``resumable-samplers verify``: check bit parity with the installed torch, and report.

For each ``n`` and seed, ``randperm`` must equal ``torch.randperm`` element for element, and for
each ``n`` the distributed sampler must yield exactly what ``torch.utils.data.DistributedSampler``
yields on every rank (a few world sizes, with and without ``drop_last``). Exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.utils.data as tud

from resumable_samplers import ResumableDistributedSampler, randperm
from resumable_samplers.bench import Progress, parse_sizes

DEFAULT_SIZES = "0,1,2,3,17,1000,65537,1e6"
DEFAULT_SEEDS = "0,1,6691,-1,4294967301,18446744073709551615"
WORLD_SIZES = (1, 2, 3, 8)


class _Length:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def parse_seeds(text: str) -> list[int]:
    """Comma-separated integers in torch's seed range ``[-2**63, 2**64)``."""
    seeds = []
    for token in text.split(","):
        token = token.strip()
        if not token:
            continue
        try:
            seed = int(token)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer seed: {token!r}") from None
        if not -(2**63) <= seed < 2**64:
            raise argparse.ArgumentTypeError(f"seed should be in [-2**63, 2**64), got {seed}")
        seeds.append(seed)
    if not seeds:
        raise argparse.ArgumentTypeError("no seeds given")
    return seeds


def check_randperm(n: int, seed: int) -> bool:
    """``randperm(n, seed)`` equals ``torch.randperm`` with ``manual_seed(seed)``."""
    ours = randperm(n, seed)
    ref = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    return bool(np.array_equal(ours, ref))


def check_distributed(n: int, seed: int, world: int, drop_last: bool) -> bool:
    """Every rank of ``ResumableDistributedSampler`` equals torch's ``DistributedSampler``."""
    ds: Any = _Length(n)
    for rank in range(world):
        ref: tud.DistributedSampler[int] = tud.DistributedSampler(
            ds, world, rank, seed=seed, drop_last=drop_last
        )
        ours = ResumableDistributedSampler(ds, world, rank, seed=seed, drop_last=drop_last)
        ref.set_epoch(1)
        ours.set_epoch(1)
        if not np.array_equal(ours.indices(), np.fromiter(ref, dtype=np.int64)):
            return False
    return True


def run(args: argparse.Namespace) -> int:
    """Run every check and print a report; 0 when everything matches, 1 otherwise."""
    sizes: list[int] = args.sizes
    seeds: list[int] = args.seeds
    plan: list[tuple[str, Any]] = [("randperm", (n, s)) for n in sizes for s in seeds]
    if not args.no_sampler:
        plan += [
            ("distributed", (n, seeds[0], w, d))
            for n in sizes
            if n <= args.max_sampler_n
            for w in WORLD_SIZES
            for d in (False, True)
        ]
    print(f"resumable-samplers verify: torch {torch.__version__}, {len(plan)} checks")
    progress = Progress(len(plan))
    failures = []
    for kind, params in plan:
        label = f"{kind}{params}"
        progress.start(label)
        t0 = time.perf_counter()
        ok = check_randperm(*params) if kind == "randperm" else check_distributed(*params)
        note = f"{'ok' if ok else 'MISMATCH'} ({time.perf_counter() - t0:.2f} s)"
        progress.finish(note, None if ok else f"{label}: MISMATCH")
        if not ok:
            failures.append(label)
    progress.close()
    if failures:
        print(f"{len(failures)} of {len(plan)} checks differ from torch:")
        for f in failures:
            print(f"  {f}")
        return 1
    print(f"all {len(plan)} checks identical to torch {torch.__version__}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``verify`` options."""
    parser.add_argument(
        "--sizes",
        type=_sizes_with_zero,
        default=_sizes_with_zero(DEFAULT_SIZES),
        help=f"comma-separated dataset lengths, 1e6 notation allowed (default: {DEFAULT_SIZES})",
    )
    parser.add_argument(
        "--seeds",
        type=parse_seeds,
        default=parse_seeds(DEFAULT_SEEDS),
        help=f"comma-separated seeds in [-2**63, 2**64) (default: {DEFAULT_SEEDS})",
    )
    parser.add_argument(
        "--max-sampler-n",
        type=int,
        default=10**6,
        help="largest n for the distributed-sampler checks (torch builds Python lists)",
    )
    parser.add_argument(
        "--no-sampler", action="store_true", help="check randperm only, not the samplers"
    )


def _sizes_with_zero(text: str) -> list[int]:
    tokens = [t for t in text.split(",") if t.strip()]
    zero = any(t.strip() == "0" for t in tokens)
    rest = ",".join(t for t in tokens if t.strip() != "0")
    return ([0] if zero else []) + (parse_sizes(rest) if rest else [])


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``verify`` subcommand."""
    parser = subparsers.add_parser(
        "verify",
        help="check bit parity with the installed torch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m resumable_samplers.verify``."""
    parser = argparse.ArgumentParser(prog="resumable-samplers verify", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

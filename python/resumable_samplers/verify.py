"""``resumable-samplers verify``: check bit parity with the installed torch, and report.

For each ``n`` and seed, ``randperm`` must equal ``torch.randperm`` element for element, and for
each ``n`` the distributed sampler must yield exactly what ``torch.utils.data.DistributedSampler``
yields on every rank (a few world sizes, with and without ``drop_last``). One more ``randperm``
check at :data:`LARGE_N` items, past the length where torch 2.6 changed its loop, shows that
the order of the installed torch's generation is the one followed. Exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from resumable_samplers import _cli, _core
from resumable_samplers._torch_version import torch_order
from resumable_samplers.bench import Progress

DESCRIPTION = """\
Check bit parity with the installed torch, and report.

For each size n and seed, randperm must equal torch.randperm element for element, and for each n
the distributed sampler must yield exactly what torch.utils.data.DistributedSampler yields on
every rank (world sizes 1, 2, 3 and 8, with and without drop_last). One more randperm check at
n = 214,748,365, past the length where torch 2.6 changed its loop, shows that the order of the
installed torch's generation is followed (it takes about 2 GB and a minute; --no-large skips
it). Exits 1 on any mismatch.
"""

DEFAULT_SIZES = "0,1,2,3,17,1000,65537,1e6"
DEFAULT_SEEDS = "0,1,6691,-1,4294967301,18446744073709551615"
WORLD_SIZES = (1, 2, 3, 8)
LARGE_N = _core.SWAP_REGIME_LIMIT + 1
"""One length past the boundary where torch 2.6's ``randperm`` parts from torch 2.5's."""
LARGE_SEED = 0
# Above this length a check compares digests of chunks instead of holding both arrays at once.
DIGEST_FROM = 1 << 24
CHUNK = 1 << 22


@dataclass(frozen=True)
class Case:
    """One check: its kind (``randperm`` or ``distributed``) and its arguments."""

    kind: str
    args: tuple[tuple[str, int | bool], ...]

    @property
    def label(self) -> str:
        """The check as a call with named arguments, e.g. ``randperm(n=1000, seed=0)``."""
        return f"{self.kind}({', '.join(f'{k}={v}' for k, v in self.args)})"

    def run(self) -> bool:
        """Whether ours equals torch's."""
        kwargs: dict[str, Any] = dict(self.args)
        return check_randperm(**kwargs) if self.kind == "randperm" else check_distributed(**kwargs)


class _Length:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def parse_seeds(text: str) -> list[int]:
    """Comma-separated integers in torch's seed range ``[-2**63, 2**64)``."""
    seeds = [_cli.seed(token) for token in text.split(",") if token.strip()]
    if not seeds:
        raise argparse.ArgumentTypeError(f"no seeds given in {text!r}")
    return seeds


def _digest(a: Any) -> bytes:
    """SHA-256 of the values of ``a`` as int64, a chunk at a time (little extra memory)."""
    import numpy as np  # here, not at import: the command line's --help stays fast

    h = hashlib.sha256()
    for i in range(0, len(a), CHUNK):
        h.update(np.ascontiguousarray(a[i : i + CHUNK], dtype=np.int64).tobytes())
    return h.digest()


def randperm(n: int, seed: int) -> Any:
    """The library's ``randperm`` (imported on first use, not with the command line)."""
    from resumable_samplers.permutation import randperm as ours

    return ours(n, seed)


def check_randperm(n: int, seed: int) -> bool:
    """``randperm(n, seed)`` equals ``torch.randperm`` with ``manual_seed(seed)``.

    Long permutations are compared by digest, one array at a time, so that the check needs the
    memory of torch's array only.
    """
    import numpy as np
    import torch

    ours = randperm(n, seed)
    if n < DIGEST_FROM:
        ref = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
        return bool(np.array_equal(ours, ref))
    want = _digest(ours)
    del ours
    ref = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    return _digest(ref) == want


def check_distributed(n: int, seed: int, num_replicas: int, drop_last: bool) -> bool:
    """Every rank of ``ResumableDistributedSampler`` equals torch's ``DistributedSampler``."""
    import numpy as np
    import torch.utils.data as tud

    from resumable_samplers import ResumableDistributedSampler

    ds: Any = _Length(n)
    for rank in range(num_replicas):
        ref: tud.DistributedSampler[int] = tud.DistributedSampler(
            ds, num_replicas, rank, seed=seed, drop_last=drop_last
        )
        ours = ResumableDistributedSampler(ds, num_replicas, rank, seed=seed, drop_last=drop_last)
        ref.set_epoch(1)
        ours.set_epoch(1)
        if not np.array_equal(ours.indices(), np.fromiter(ref, dtype=np.int64)):
            return False
    return True


def plan(args: argparse.Namespace) -> list[Case]:
    """The checks the options ask for, in the order they run (the large one last)."""
    sizes: list[int] = args.sizes
    seeds: list[int] = args.seeds
    cases = [Case("randperm", (("n", n), ("seed", s))) for n in sizes for s in seeds]
    if not args.no_sampler:
        cases += [
            Case(
                "distributed",
                (("n", n), ("seed", seeds[0]), ("num_replicas", w), ("drop_last", d)),
            )
            for n in sizes
            if n <= args.max_sampler_n
            for w in WORLD_SIZES
            for d in (False, True)
        ]
    if not args.no_large:
        cases.append(Case("randperm", (("n", LARGE_N), ("seed", LARGE_SEED))))
    return cases


def run(args: argparse.Namespace) -> int:
    """Run every check and print a report; 0 when everything matches, 1 otherwise."""
    import torch

    cases = plan(args)
    order = torch_order()
    print(
        f"resumable-samplers verify: torch {torch.__version__} (randperm order {order!r}), "
        f"{len(cases)} checks"
    )
    progress = Progress(len(cases))
    failures = []
    for case in cases:
        label = case.label
        progress.start(label)
        t0 = time.perf_counter()
        ok = case.run()
        note = f"{'ok' if ok else 'MISMATCH'} ({time.perf_counter() - t0:.2f} s)"
        progress.finish(note, None if ok else f"{label}: MISMATCH")
        if not ok:
            failures.append(label)
    progress.close()
    if failures:
        print(f"{len(failures)} of {len(cases)} checks differ from torch:")
        for f in failures:
            print(f"  {f}")
        return 1
    print(f"all {len(cases)} checks identical to torch {torch.__version__}")
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
        help=f"comma-separated seeds in {_cli.SEED_RANGE} (default: {DEFAULT_SEEDS})",
    )
    parser.add_argument(
        "--max-sampler-n",
        type=_cli.int_in(0, _cli.MAX_LEN),
        default=10**6,
        help="largest n for the distributed-sampler checks (torch builds Python lists)",
    )
    parser.add_argument(
        "--no-sampler", action="store_true", help="check randperm only, not the samplers"
    )
    parser.add_argument(
        "--no-large",
        action="store_true",
        help=f"skip the randperm check at n={LARGE_N} (about 2 GB and a minute)",
    )


def _sizes_with_zero(text: str) -> list[int]:
    """``--sizes``: comma-separated sizes in ``[0, 2**63 - 1]``, at least one."""
    return _cli.sizes(text, minimum=0)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``verify`` subcommand."""
    parser = subparsers.add_parser(
        "verify",
        help="check bit parity with the installed torch",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m resumable_samplers.verify``."""
    parser = argparse.ArgumentParser(
        prog="resumable-samplers verify",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

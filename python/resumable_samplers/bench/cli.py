"""``resumable-samplers bench``: the command line of the benchmark.

This module imports neither torch nor NumPy: ``--help`` answers at once, and the parent process
of a run only plans, starts one child process per measurement
(:mod:`~resumable_samplers.bench.child`) and reports.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from resumable_samplers import _cli
from resumable_samplers.bench.plan import Options, available_memory
from resumable_samplers.bench.spec import (
    AUTO_REPEAT,
    AUTO_REPEAT_MAX_N,
    DEFAULT_GRAIN_N,
    DEFAULT_LAZY_ITER_NS,
    DEFAULT_LAZY_RANDPERM_N,
    DEFAULT_LENGTH_NS,
    DEFAULT_LOADER_N,
    DEFAULT_MIXTURE_ITER_N,
    DEFAULT_MIXTURE_NS,
    DEFAULT_SECTIONS,
    DEFAULT_SIZES,
    DEFAULT_TIMEOUT_S,
    GIB,
    GRAIN_CALLS,
    IMPLS,
    LAZY_FIRST_NS,
    QUICK_GRAIN_N,
    QUICK_LAZY_ITER_NS,
    QUICK_LAZY_RANDPERM_N,
    QUICK_LENGTH_NS,
    QUICK_LOADER_N,
    QUICK_MIXTURE_ITER_N,
    QUICK_MIXTURE_NS,
    QUICK_SIZES,
    SECTIONS,
    format_n,
)

DESCRIPTION = (
    "Time and peak memory of resumable-samplers (torch and lazy orders, mixtures, length "
    "grouping) against torch, NumPy, helios-ml, Grain, Megatron's blending, torchdata and "
    "transformers, every measurement in a fresh process. Prints the machine, tables with "
    "row/ours ratios, correctness checks and the performance targets, and writes "
    "results.json, results.md and plot.png. Exits 1 if a correctness check fails (and, with "
    "--check, if a performance target measured at its stated size is missed)."
)
EPILOG = (
    "Sizes: --sizes bounds every section. Sections a-c run at each of --sizes; d, e, g and h use "
    "their own defaults capped at the largest of --sizes, unless --loader-n, --lazy-randperm-n, "
    "--lazy-iter-n, --grain-n, --mixture-n, --mixture-iter-n or --length-n set them. The one "
    "exception is e's first-index probe, which "
    "needs O(1) time and memory and always runs at n = "
    + ", ".join(map(format_n, LAZY_FIRST_NS))
    + ". The performance targets are stated at particular sizes (1e9 for most): a run at smaller "
    "sizes reports them as indicative only."
)


def parse_sizes(text: str) -> list[int]:
    """Parse ``--sizes``: comma-separated integers in ``[1, 2**63 - 1]``, ``1e6`` notation
    allowed."""
    return _cli.sizes(text)


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options to ``parser``."""
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        help="comma-separated dataset sizes of sections a-c, e.g. 1e6,1e7; the largest also caps "
        "d and e (see below) (default: "
        + ",".join(format_n(n) for n in DEFAULT_SIZES)
        + "; with --quick: "
        + ",".join(format_n(n) for n in QUICK_SIZES)
        + ")",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes only (smoke test / CI)")
    parser.add_argument(
        "--only",
        type=_parse_letters,
        default=list(DEFAULT_SECTIONS),
        metavar="a,...,h",
        help="measurements to run: "
        + "; ".join(f"{k}: {v}" for k, v in SECTIONS.items()).replace("%", "%%")
        + f" (default: {','.join(DEFAULT_SECTIONS)}; f needs transformers)",
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
        type=_cli.one_size,
        help="(d) dataset size of the DataLoader measurement (default: "
        f"{format_n(DEFAULT_LOADER_N)} or the largest of --sizes if smaller; with --quick: "
        f"{format_n(QUICK_LOADER_N)})",
    )
    parser.add_argument(
        "--lazy-randperm-n",
        type=_cli.one_size,
        metavar="N",
        help="(e) size of randperm(N, permutation='lazy') (default: "
        f"{format_n(DEFAULT_LAZY_RANDPERM_N)} or the largest of --sizes if smaller; with --quick: "
        f"{format_n(QUICK_LAZY_RANDPERM_N)})",
    )
    parser.add_argument(
        "--lazy-iter-n",
        type=parse_sizes,
        metavar="SIZES",
        help="(e) dataset sizes for iterating one rank of 8, one process each (default: "
        + ",".join(map(format_n, DEFAULT_LAZY_ITER_NS))
        + ", those up to the largest of --sizes; with --quick: "
        + ",".join(map(format_n, QUICK_LAZY_ITER_NS))
        + ")",
    )
    parser.add_argument(
        "--grain-n",
        type=_cli.one_size,
        metavar="N",
        help=f"(e) permutation size of the Grain comparison (default: {format_n(DEFAULT_GRAIN_N)}"
        f" or the largest of --sizes if smaller; with --quick: {format_n(QUICK_GRAIN_N)}); Grain "
        "is called min(N, "
        f"{format_n(GRAIN_CALLS)}) times",
    )
    parser.add_argument(
        "--mixture-n",
        type=parse_sizes,
        metavar="SIZES",
        help="(g) stream lengths of the mixtures' first-index measurement (default: "
        + ",".join(map(format_n, DEFAULT_MIXTURE_NS))
        + ", those up to the largest of --sizes; with --quick: "
        + ",".join(map(format_n, QUICK_MIXTURE_NS))
        + ")",
    )
    parser.add_argument(
        "--mixture-iter-n",
        type=_cli.one_size,
        metavar="N",
        help=f"(g) epoch length of the mixtures' iteration (default: "
        f"{format_n(DEFAULT_MIXTURE_ITER_N)} or the largest of --sizes if smaller; with --quick: "
        f"{format_n(QUICK_MIXTURE_ITER_N)})",
    )
    parser.add_argument(
        "--length-n",
        type=parse_sizes,
        metavar="SIZES",
        help="(h) numbers of lengths of the length-grouping measurements (default: "
        + ",".join(map(format_n, DEFAULT_LENGTH_NS))
        + ", those up to the largest of --sizes; with --quick: "
        + ",".join(map(format_n, QUICK_LENGTH_NS))
        + ")",
    )
    parser.add_argument(
        "--timeout",
        type=_cli.positive_float(10**7),
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
    parser.add_argument("--seed", type=_cli.seed, default=0, help="permutation seed (default: 0)")
    parser.add_argument(
        "--repeat",
        type=_cli.int_in(1, 10**6),
        help="time each operation this many times in its process and keep the best (default: "
        f"{AUTO_REPEAT} up to n={format_n(AUTO_REPEAT_MAX_N)}, 1 above)",
    )
    parser.add_argument(
        "--mem-budget",
        type=_cli.positive_float(2**30),
        metavar="GIB",
        help="skip a measurement estimated to need more (default: 90%% of available memory)",
    )
    parser.add_argument("--no-plot", action="store_true", help="do not draw plot.png")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if a performance target measured at its stated size is missed (targets "
        "measured only at smaller sizes are reported, not judged)",
    )


def options_from(args: argparse.Namespace) -> Options:
    """Turn parsed arguments into :class:`Options`, filling in the defaults.

    Explicit ``--sizes`` bound every section: the defaults of d and e are capped at the largest
    size (``--loader-n``, ``--lazy-randperm-n``, ``--lazy-iter-n`` and ``--grain-n`` still set
    them explicitly).
    """
    if args.mem_budget is not None:
        budget: int | None = int(args.mem_budget * GIB)
    else:
        avail = available_memory()
        budget = int(avail * 0.9) if avail is not None else None
    sizes = args.sizes or list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    if args.quick:
        loader_n, randperm_n = QUICK_LOADER_N, QUICK_LAZY_RANDPERM_N
        iter_ns, grain_n = list(QUICK_LAZY_ITER_NS), QUICK_GRAIN_N
        mixture_ns, mixture_iter_n = list(QUICK_MIXTURE_NS), QUICK_MIXTURE_ITER_N
        length_ns = list(QUICK_LENGTH_NS)
    else:
        loader_n, randperm_n = DEFAULT_LOADER_N, DEFAULT_LAZY_RANDPERM_N
        iter_ns, grain_n = list(DEFAULT_LAZY_ITER_NS), DEFAULT_GRAIN_N
        mixture_ns, mixture_iter_n = list(DEFAULT_MIXTURE_NS), DEFAULT_MIXTURE_ITER_N
        length_ns = list(DEFAULT_LENGTH_NS)
    if args.sizes:
        bound = max(sizes)
        loader_n, randperm_n, grain_n, mixture_iter_n = (
            min(n, bound) for n in (loader_n, randperm_n, grain_n, mixture_iter_n)
        )
        iter_ns = [n for n in iter_ns if n <= bound] or [bound]
        mixture_ns = [n for n in mixture_ns if n <= bound] or [bound]
        length_ns = [n for n in length_ns if n <= bound] or [bound]
    return Options(
        sizes=sizes,
        sections=args.only,
        exclude=args.exclude,
        loader_n=args.loader_n or loader_n,
        timeout=args.timeout,
        out=args.out,
        seed=args.seed,
        repeat=args.repeat,
        mem_budget=budget,
        plot=not args.no_plot,
        lazy_randperm_n=args.lazy_randperm_n or randperm_n,
        lazy_iter_ns=args.lazy_iter_n or iter_ns,
        grain_n=args.grain_n or grain_n,
        mixture_ns=args.mixture_n or mixture_ns,
        mixture_iter_n=args.mixture_iter_n or mixture_iter_n,
        length_ns=args.length_n or length_ns,
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark described by ``args`` and return its exit code.

    1 if a correctness check failed, or with ``--check`` if a performance target measured at its
    stated size was missed; 130 if interrupted; else 0.
    """
    from resumable_samplers.bench.machine import load_average
    from resumable_samplers.bench.report import JUDGED, write_results
    from resumable_samplers.bench.runner import run_all
    from resumable_samplers.bench.spec import Outcome

    options = options_from(args)
    started = time.time()
    load_at_start = load_average()
    outcomes: list[Outcome] = []
    try:
        run_all(options, outcomes)
    except KeyboardInterrupt:
        print("\ninterrupted: reporting the measurements that finished", file=sys.stderr)
        write_results(outcomes, options, started, load_at_start, interrupted=True)
        return 130
    result = write_results(outcomes, options, started, load_at_start)
    code = 0
    failed = [name for name, c in result["checks"].items() if c["passed"] is False]
    if failed:
        print(f"correctness checks FAILED: {', '.join(failed)}", file=sys.stderr)
        code = 1
    missed = [k for key, _ in JUDGED.values() for k in result[key]["missed"]]
    if getattr(args, "check", False) and missed:
        print(f"--check: performance targets missed: {', '.join(missed)}", file=sys.stderr)
        code = 1
    return code


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``bench`` subcommand; its ``func`` default runs it and returns an exit code."""
    parser = subparsers.add_parser(
        "bench",
        help="compare against torch, NumPy, helios-ml, Grain, Megatron, torchdata and "
        "transformers (time and peak memory)",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    """``python -m resumable_samplers.bench [options]``: ``resumable-samplers bench``."""
    parser = argparse.ArgumentParser(
        prog="python -m resumable_samplers.bench", description=DESCRIPTION, epilog=EPILOG
    )
    add_arguments(parser)
    return run(parser.parse_args(sys.argv[1:] if argv is None else argv))

"""Command-line interface: ``python -m resumable_samplers <command>`` or ``resumable-samplers``.

Each subcommand lives in its own module of this package, which exposes
``add_parser(subparsers)``: it adds its parser and sets the ``func`` default to a function that
takes the parsed ``argparse.Namespace`` and returns the exit code. Registering a new command is
one more name in :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

SUBCOMMANDS: tuple[str, ...] = ("bench", "demo", "verify")
"""The modules of this package that each add one subcommand."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser, with one subparser per module in :data:`SUBCOMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="resumable-samplers",
        description="PyTorch samplers that stop mid-epoch and resume at exactly the next batch.",
    )
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"resumable_samplers.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command-line interface and return its exit code.

    Args:
        argv: the arguments after the program name; ``None`` reads ``sys.argv[1:]``.
    """
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())

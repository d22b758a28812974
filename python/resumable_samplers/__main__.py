"""Command-line interface: ``python -m resumable_samplers <command>`` or ``resumable-samplers``.

Each subcommand lives in its own module, which exposes ``add_parser(subparsers)``: it adds its
parser and sets the ``func`` default to a function that takes the parsed ``argparse.Namespace``
and returns the exit code. Only the module of the command being run is imported, so that
``--help`` and light commands start without importing torch. Registering a new command is one
more entry in :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "bench": (
        "resumable_samplers.bench.cli",
        "compare against torch, NumPy, helios-ml and Grain (time and peak memory)",
    ),
    "demo": (
        "resumable_samplers.demo",
        "stop a training run mid-epoch, resume it in a new process, compare",
    ),
    "verify": ("resumable_samplers.verify", "check bit parity with the installed torch"),
}
"""Each command: the module that adds its parser, and its one-line summary."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported to add its full parser.

    Args:
        command: the subcommand being run, if any; the others are listed by name and summary.
    """
    parser = argparse.ArgumentParser(
        prog="resumable-samplers",
        description="PyTorch samplers that stop mid-epoch and resume at exactly the next batch.",
    )
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, (module, summary) in SUBCOMMANDS.items():
        if name == command:
            importlib.import_module(module).add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command-line interface and return its exit code.

    Args:
        argv: the arguments after the program name; ``None`` reads ``sys.argv[1:]``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args if not a.startswith("-")), None)
    parsed = build_parser(command).parse_args(args)
    return int(parsed.func(parsed))


if __name__ == "__main__":
    raise SystemExit(main())

"""Usage errors of the command line: every numeric option of every subcommand, fed hostile text.

A value is either taken (the parsed value lies in the option's documented range) or refused as
argparse refuses its own errors: the usage line, the option's name, exit status 2, never a
traceback or the status 1 that ``verify`` keeps for a parity mismatch. Only the parser runs (and
the demo's checks that combine options, which run before any work), so no case trains, benchmarks
or verifies anything.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from resumable_samplers import demo
from resumable_samplers.__main__ import build_parser, main

MAX_LEN = 2**63 - 1

# Text a user can type where a number is expected (over 40 kinds).
VALUES = [
    "0",
    "1",
    "-1",
    "7",
    "-0",
    "+3",
    " 5 ",
    "1_000",
    "1e3",
    "2.2e8",
    "1e6",
    "1.5",
    "-2.5",
    "0.0",
    "1e-5",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e30",
    "1e400",
    "-1e400",
    str(2**31),
    str(2**32),
    str(2**53 + 1),
    str(2**63 - 1),
    str(2**63),
    str(2**64 - 1),
    str(2**64),
    str(2**100),
    str(-(2**63)),
    str(-(2**63) - 1),
    "2**64",
    "0x10",
    "1,2",
    ",",
    "",
    " ",
    "abc",
    "True",
    "None",
    "[1]",
    "١٢",  # Arabic-Indic digits: Python's int() reads them
    "1e19",
    "9.9e18",
]


def whole(text: str) -> int | None:
    """The integer the command line reads ``text`` as (``1e6`` notation for whole numbers)."""
    t = text.strip().replace("_", "")
    try:
        return int(t)
    except ValueError:
        pass
    try:
        f = float(t)
    except ValueError:
        return None
    return int(f) if math.isfinite(f) and f.is_integer() else None


def int_range(lo: int, hi: int) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        v = whole(text)
        return v if v is not None and lo <= v <= hi else None

    return parse


def float_range(hi: float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            v = float(text)
        except ValueError:
            return None
        return v if math.isfinite(v) and 0 < v <= hi else None

    return parse


def size_list(lo: int) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        tokens = [t for t in text.split(",") if t.strip()]
        values = [whole(t) for t in tokens]
        if not values or any(v is None or not lo <= v <= MAX_LEN for v in values):
            return None
        return sorted(set(values))  # type: ignore[type-var]

    return parse


def seed_list(text: str) -> Any:
    seeds = [whole(t) for t in text.split(",") if t.strip()]
    if not seeds or any(s is None or not -(2**63) <= s < 2**64 for s in seeds):
        return None
    return seeds


SEED = int_range(-(2**63), 2**64 - 1)
ONE_SIZE = int_range(1, MAX_LEN)

# (command, option, attribute, the value the option holds for a text, or None if refused)
OPTIONS: list[tuple[str, str, str, Callable[[str], Any]]] = [
    ("verify", "--sizes", "sizes", size_list(0)),
    ("verify", "--seeds", "seeds", seed_list),
    ("verify", "--max-sampler-n", "max_sampler_n", int_range(0, MAX_LEN)),
    ("demo", "--epochs", "epochs", int_range(1, 10**6)),
    ("demo", "--batch-size", "batch_size", int_range(1, 10**9)),
    ("demo", "--stop-after", "stop_after", int_range(1, 10**9)),
    ("demo", "--num-workers", "num_workers", int_range(0, 1024)),
    ("demo", "--seed", "seed", SEED),
    ("demo", "--dataset-size", "dataset_size", int_range(1, 10**7)),
    ("bench", "--sizes", "sizes", size_list(1)),
    ("bench", "--loader-n", "loader_n", ONE_SIZE),
    ("bench", "--lazy-randperm-n", "lazy_randperm_n", ONE_SIZE),
    ("bench", "--lazy-iter-n", "lazy_iter_n", size_list(1)),
    ("bench", "--grain-n", "grain_n", ONE_SIZE),
    ("bench", "--timeout", "timeout", float_range(10**7)),
    ("bench", "--seed", "seed", SEED),
    ("bench", "--repeat", "repeat", int_range(1, 10**6)),
    ("bench", "--mem-budget", "mem_budget", float_range(2**30)),
]


def refused(args: list[str], capsys: pytest.CaptureFixture[str], name: str) -> None:
    """``main(args)`` stops with argparse's usage error naming ``name``."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2, args
    err = capsys.readouterr().err
    assert err.startswith("usage: resumable-samplers"), err
    assert f"error: argument {name}" in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize(("command", "option", "attr", "model"), OPTIONS, ids=lambda x: str(x))
def test_every_numeric_option_takes_its_range_or_exits_2(
    command: str,
    option: str,
    attr: str,
    model: Callable[[str], Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser(command)
    assert len(VALUES) >= 40
    for text in VALUES:
        want = model(text)
        args = [command, f"{option}={text}"]
        if want is None:
            refused(args, capsys, option)
            continue
        got = getattr(parser.parse_args(args), attr)
        assert got == want, (option, text, got)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", str(2**64 - 1)], "--seed + --epochs - 1 should be below 2**64"),
        (["--seed", str(2**64 - 3), "--epochs", "4"], "--seed + --epochs - 1"),
        (["--stop-after", str(10**9)], "--stop-after should be in"),
        (["--dataset-size", "10", "--batch-size", "10", "--stop-after", "2"], "--stop-after"),
        (["--resume-from", "x"], "--resume-from and --result go together"),
    ],
)
def test_demo_options_that_do_not_fit_together_exit_2_before_any_work(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: resumable-samplers demo"), err
    assert message in err


def test_demo_seeds_at_the_edge_of_torchs_range_are_taken() -> None:
    args = build_parser("demo").parse_args(["demo", "--seed", str(2**64 - 2), "--epochs", "2"])
    assert args.seed + args.epochs - 1 == 2**64 - 1
    assert demo.DemoOptions  # the options run as usual (trained in tests/test_demo.py)


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "--sizes", "1e30"],
        ["verify", "--sizes", ","],
        ["demo", "--seed", str(2**64)],
        ["bench", "--timeout", "nan"],
    ],
)
def test_the_installed_command_prints_usage_and_exits_2(args: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "resumable_samplers", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert re.match(r"usage: resumable-samplers", out.stderr), out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""

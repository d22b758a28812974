"""The command line: every subcommand has --help, and verify reports and fails honestly."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import resumable_samplers as rs
from resumable_samplers import verify
from resumable_samplers.__main__ import SUBCOMMANDS, main


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: resumable-samplers " + command in capsys.readouterr().out


# The commands whose modules import torch only when they run (verify checks against torch).
COMMANDS_WITHOUT_TORCH_AT_IMPORT = (None, "bench", "demo")


@pytest.mark.parametrize("command", COMMANDS_WITHOUT_TORCH_AT_IMPORT)
def test_the_cli_parser_does_not_import_torch(command: str | None) -> None:
    # In a fresh interpreter: this one imported torch long ago.
    code = (
        "import sys\n"
        "from resumable_samplers.__main__ import build_parser\n"
        f"build_parser({command!r})\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'matplotlib') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "", f"building the parser of {command!r} imported {out.stdout}"


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command, (_, summary) in SUBCOMMANDS.items():
        assert command in out and summary.split()[0] in out


def test_console_entry_point_runs_verify() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "resumable_samplers", "verify", "--sizes", "0,7,300", "--seeds=3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all 27 checks identical to torch" in out.stdout


def test_verify_passes_against_the_installed_torch(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--sizes", "1,1000,65537", "--seeds", "0,-1,4294967301"]) == 0
    assert "identical to torch" in capsys.readouterr().out


def test_verify_exits_non_zero_on_a_mismatch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A wrong permutation of our own (seed off by one) must be reported, not waved through.
    monkeypatch.setattr(verify, "randperm", lambda n, seed: rs.randperm(n, seed + 1))
    assert main(["verify", "--sizes", "50", "--seeds", "0", "--no-sampler"]) == 1
    out = capsys.readouterr().out
    assert "1 of 1 checks differ from torch" in out and "randperm(50, 0)" in out
    assert np.array_equal(rs.randperm(50, 0), rs.randperm(50, 0))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["verify", "--seeds", "x"], "not an integer seed"),
        (["verify", "--seeds", str(2**64)], "seed should be in"),
        (["verify", "--sizes", "-5"], "size"),
    ],
)
def test_verify_rejects_bad_options(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err

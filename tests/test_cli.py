"""The command line: every subcommand has --help, and verify reports and fails honestly."""

from __future__ import annotations

import subprocess
import sys

import pytest

import resumable_samplers as rs
from resumable_samplers import verify
from resumable_samplers.__main__ import SUBCOMMANDS, build_parser, main
from resumable_samplers.permutation import core_order


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: resumable-samplers " + command in capsys.readouterr().out


# The commands whose modules import torch only when they run (verify checks against torch).
COMMANDS_WITHOUT_TORCH_AT_IMPORT = (None, "bench", "demo", "verify")


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
        [
            sys.executable,
            "-m",
            "resumable_samplers",
            "verify",
            "--sizes",
            "0,7,300",
            "--seeds=3",
            "--no-large",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all 27 checks identical to torch" in out.stdout


def test_verify_passes_against_the_installed_torch(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["verify", "--sizes", "1,1000,65537", "--seeds", "0,-1,4294967301", "--no-large"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "identical to torch" in out
    assert f"randperm order {core_order('torch')!r}" in out


def test_verify_exits_non_zero_on_a_mismatch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A wrong permutation of our own (seed off by one) must be reported, not waved through.
    monkeypatch.setattr(verify, "randperm", lambda n, seed: rs.randperm(n, seed + 1))
    assert main(["verify", "--sizes", "50", "--seeds", "0", "--no-sampler", "--no-large"]) == 1
    out = capsys.readouterr().out
    assert "1 of 1 checks differ from torch" in out and "randperm(n=50, seed=0)" in out


def test_verify_checks_one_length_past_torchs_limit_by_default() -> None:
    parser = build_parser("verify")
    default = verify.plan(parser.parse_args(["verify", "--sizes", "10", "--seeds", "1"]))
    labels = [c.label for c in default]
    assert labels[0] == "randperm(n=10, seed=1)"
    assert "distributed(n=10, seed=1, num_replicas=8, drop_last=True)" in labels
    assert labels[-1] == "randperm(n=214748365, seed=0)"
    assert verify.LARGE_N == (2**32 - 1) // 20 + 1
    quick = verify.plan(parser.parse_args(["verify", "--sizes", "10", "--no-large"]))
    assert all(c.args[0][1] == 10 for c in quick)


def test_verify_compares_long_permutations_by_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(verify, "DIGEST_FROM", 100)
    monkeypatch.setattr(verify, "CHUNK", 7)
    assert verify.check_randperm(1000, 3)
    monkeypatch.setattr(verify, "randperm", lambda n, seed: rs.randperm(n, seed + 1))
    assert not verify.check_randperm(1000, 3)


def test_verify_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    out = capsys.readouterr().out
    assert "214,748,365" in out and "--no-large" in out
    for markup in ("``", ":data:", ":func:", ":class:", ".. "):
        assert markup not in out, markup


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

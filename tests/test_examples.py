"""The examples under torchrun: a stopped and resumed run trains on what an uninterrupted run does.

Every run is a real ``torchrun`` job of gloo CPU processes. Each rank logs, per optimizer step,
the dataset indices it trained on. A step's global batch is the ranks' lists interleaved item by
item (position ``p`` is rank ``p % W``'s item ``p // W``), which is the sampler's global order
whatever the number of processes ``W``; the examples keep the global batch size, so the steps of
runs with different ``W`` compare directly.

A run stopped after step ``s`` resumes from its last checkpoint (step ``c <= s``) and redoes the
steps from ``c`` on, so the stopped run's steps before ``c`` followed by the resumed run's steps
must be the uninterrupted run's steps, and the final weights must match.

The commands ``docs/examples.md`` lists run as listed, in order, in one folder per script: the
page's sequences must work as a reader runs them (each resumed run trains from its checkpoint).

To keep the runs short on small machines, torchrun forks the workers from its own process, which
has imported torch already (``--run-path --start-method fork``), instead of starting a new
interpreter per worker; the script runs as ``__main__`` either way.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PAGE = ROOT / "docs" / "examples.md"
DDP_TRAIN = EXAMPLES / "ddp_train.py"
DDP_STATEFUL = EXAMPLES / "ddp_stateful_dataloader.py"
DATASET_SIZE, GLOBAL_BATCH, EPOCHS, SEED = 120, 12, 2, 0  # the examples' defaults
STEPS = EPOCHS * DATASET_SIZE // GLOBAL_BATCH
RUN_SECONDS = 150
# torchrun with a free port of its choosing, forking the workers (see the module docstring).
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
TORCHRUN += ["--run-path", "--start-method", "fork"]

Batches = dict[int, tuple[int, list[int]]]  # step -> (epoch, global batch in global order)


def torchrun(script: Path, nproc: int, *args: str | Path, cwd: Path | None = None) -> str:
    """Run ``script`` on ``nproc`` processes and return its output; fail with it on an error.

    The output must be free of third-party deprecation noise (the examples filter torchdata's
    use of torch's deprecated ``set_vital``).
    """
    cmd = [*TORCHRUN, "--nproc_per_node", str(nproc), str(script), *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # A session of its own, so that a hung job is killed with all its workers.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=RUN_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{script.name} on {nproc} processes timed out:\n{out}")
    assert proc.returncode == 0, f"{script.name} on {nproc} processes failed:\n{out}"
    assert "set_vital" not in out, out
    return out


def documented_runs(script: str) -> list[list[str]]:
    """The ``torchrun`` commands of ``docs/examples.md`` that run ``examples/<script>``, in the
    page's order, as argument lists after ``torchrun --standalone``."""
    runs = []
    for block in re.findall(r"^```bash\n(.*?)^```", PAGE.read_text(), re.DOTALL | re.MULTILINE):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv[:2] == ["torchrun", "--standalone"] and f"examples/{script}" in argv:
                runs.append(argv[2:])
    return runs


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def run_documented(argv: list[str], cwd: Path) -> str:
    """One documented command, in ``cwd``, with its script from this tree."""
    nproc = int(option(argv, "--nproc_per_node") or 1)
    script = next(a for a in argv if a.startswith("examples/"))
    args = argv[argv.index(script) + 1 :]
    return torchrun(ROOT / script, nproc, *args, cwd=cwd)


def global_batches(log_dir: Path) -> Batches:
    """Each step's global batch, from the per-rank logs of one run."""
    per_step: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
    for path in sorted(log_dir.glob("rank*.jsonl")):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            assert entry["rank"] not in per_step[entry["step"]], ("logged twice", entry)
            per_step[entry["step"]][entry["rank"]] = entry
    batches: Batches = {}
    for step, ranks in per_step.items():
        world_size = next(iter(ranks.values()))["world_size"]
        assert sorted(ranks) == list(range(world_size)), (step, sorted(ranks))
        assert {e["world_size"] for e in ranks.values()} == {world_size}
        assert len({e["epoch"] for e in ranks.values()}) == 1
        shards = [ranks[r]["indices"] for r in range(world_size)]
        assert len({len(s) for s in shards}) == 1, (step, shards)
        batch = [shards[p % world_size][p // world_size] for p in range(sum(map(len, shards)))]
        batches[step] = (ranks[0]["epoch"], batch)
    return batches


def combined(stopped: Batches, resumed: Batches, checkpoint_step: int) -> Batches:
    """The steps a stopped and resumed training ran, as the final model saw them."""
    assert min(resumed) == checkpoint_step  # resumed at the last checkpoint
    assert max(stopped) >= checkpoint_step  # ... which came before the interruption
    return {**{s: b for s, b in stopped.items() if s < checkpoint_step}, **resumed}


def model_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    return checkpoint["model"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def documented(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    """The ``ddp_train.py`` sequence of ``docs/examples.md``, run as listed, in one folder.

    Returns the folder and, per run (``full``, ``stopped``, ``resumed-<nproc>``), its command.
    """
    work = tmp_path_factory.mktemp("documented")
    runs: dict[str, list[str]] = {}
    outputs: dict[str, str] = {}
    for argv in documented_runs("ddp_train.py"):
        if option(argv, "--resume-from") or "--resume" in argv:
            name = f"resumed-{option(argv, '--nproc_per_node')}"
        else:
            name = "stopped" if option(argv, "--stop-after") else "full"
        assert name not in runs, ("listed twice", name)
        runs[name] = argv
        outputs[name] = run_documented(argv, work)
    assert set(runs) == {"full", "stopped", "resumed-2", "resumed-3"}
    assert "stopped after step 7" in outputs["stopped"]
    for nproc in (2, 3):
        assert f"resumed at epoch 0, step 4, world size {nproc}" in outputs[f"resumed-{nproc}"]
    return work, runs


def logs(work: Path, argv: list[str]) -> Batches:
    return global_batches(work / (option(argv, "--log-dir") or "logs"))


def final_checkpoint(work: Path, argv: list[str]) -> dict[str, Any]:
    path = work / (option(argv, "--checkpoint") or "checkpoint.pt")
    return torch.load(path, weights_only=True)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def uninterrupted(
    documented: tuple[Path, dict[str, list[str]]],
) -> tuple[Batches, dict[str, Any]]:
    """The reference: ``ddp_train.py`` on 2 processes, never stopped."""
    work, runs = documented
    batches = logs(work, runs["full"])
    assert sorted(batches) == list(range(STEPS))
    for epoch in range(EPOCHS):  # the global order of an epoch is torch.randperm's
        order = [i for s in sorted(batches) if batches[s][0] == epoch for i in batches[s][1]]
        generator = torch.Generator().manual_seed(SEED + epoch)
        assert order == torch.randperm(DATASET_SIZE, generator=generator).tolist()
    final = final_checkpoint(work, runs["full"])
    assert (final["epoch"], final["step"]) == (EPOCHS, STEPS)
    return batches, final


@pytest.mark.timeout(600)
@pytest.mark.parametrize("nproc", [2, 3])
def test_the_documented_ddp_runs_resume_exactly(
    nproc: int,
    documented: tuple[Path, dict[str, list[str]]],
    uninterrupted: tuple[Batches, dict[str, Any]],
) -> None:
    work, runs = documented
    reference, final = uninterrupted
    stopped = logs(work, runs["stopped"])
    assert sorted(stopped) == list(range(7))
    # The checkpoint both resumes start from is still the stopped run's, of step 4.
    checkpoint = torch.load(work / option(runs["stopped"], "--checkpoint"), weights_only=True)
    assert (checkpoint["epoch"], checkpoint["step"]) == (0, 4)
    assert checkpoint["sampler"]["offset"] == 4 * GLOBAL_BATCH

    resumed = logs(work, runs[f"resumed-{nproc}"])
    # The resumed run trained: from step 4 to the end, on the same samples per step.
    assert sorted(resumed) == list(range(4, STEPS))
    assert {len(b) for _, b in resumed.values()} == {GLOBAL_BATCH}
    # Every step trained on the uninterrupted run's samples, in the same global order: on 3
    # processes, the union of what the two jobs trained on is the uninterrupted sequence.
    assert combined(stopped, resumed, checkpoint_step=4) == reference

    got = model_weights(final_checkpoint(work, runs[f"resumed-{nproc}"]))
    want = model_weights(final)
    assert got.keys() == want.keys()
    for name in want:
        if nproc == 2:  # the same computation, bit for bit
            assert torch.equal(got[name], want[name]), name
        else:  # the same samples per step, averaged in another order
            torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-5)


@pytest.mark.timeout(180)
def test_ddp_stateful_dataloader_resumes_exactly(
    uninterrupted: tuple[Batches, dict[str, Any]], tmp_path: Path
) -> None:
    pytest.importorskip("torchdata")
    reference, final = uninterrupted  # the same sampler, dataset and model as ddp_train.py
    ckpt = tmp_path / "ckpt"
    common = ("--checkpoint-dir", ckpt, "--checkpoint-every", "3", "--num-workers", "2")
    out = torchrun(DDP_STATEFUL, 2, *common, "--log-dir", tmp_path / "logs-1", "--stop-after", "11")
    assert "stopped after step 11" in out
    assert (ckpt / "latest").read_text() == "step-00000009"
    assert sorted(p.name for p in ckpt.iterdir()) == ["latest", "step-00000009"]
    out = torchrun(DDP_STATEFUL, 2, *common, "--log-dir", tmp_path / "logs-2", "--resume")
    assert "resumed at epoch 0, step 9" in out
    stopped = global_batches(tmp_path / "logs-1")
    resumed = global_batches(tmp_path / "logs-2")
    assert combined(stopped, resumed, checkpoint_step=9) == reference

    directory = ckpt / (ckpt / "latest").read_text()
    got = model_weights(torch.load(directory / "trainer.pt", weights_only=True))
    want = model_weights(final)
    for name in want:
        assert torch.equal(got[name], want[name]), name


@pytest.mark.timeout(300)
def test_the_documented_stateful_dataloader_runs_resume_exactly(
    uninterrupted: tuple[Batches, dict[str, Any]], tmp_path: Path
) -> None:
    pytest.importorskip("torchdata")
    reference, _ = uninterrupted
    runs = documented_runs("ddp_stateful_dataloader.py")
    assert [("--resume" in argv, option(argv, "--stop-after")) for argv in runs] == [
        (False, "7"),
        (True, None),
    ]
    stopped_out, resumed_out = (run_documented(argv, tmp_path) for argv in runs)
    assert "stopped after step 7" in stopped_out
    assert "resumed at epoch 0, step 4" in resumed_out  # its last checkpoint, every 4 steps
    stopped, resumed = (logs(tmp_path, argv) for argv in runs)
    assert sorted(resumed) == list(range(4, STEPS))
    assert combined(stopped, resumed, checkpoint_step=4) == reference

"""The ``demo`` command: end to end in subprocesses, and its comparison on its own."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from resumable_samplers import demo
from resumable_samplers.__main__ import main

SMALL = ["--dataset-size=200", "--batch-size=16", "--epochs=2", "--seed=3"]
RUNS = {
    "default": SMALL,
    "workers": [*SMALL, "--num-workers=2", "--sampler=distributed", "--stop-after=17"],
}


@pytest.fixture(scope="module")
def demo_runs() -> Iterator[dict[str, subprocess.CompletedProcess[str]]]:
    """Both end-to-end demo runs, started together so their start-up times overlap."""
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "resumable_samplers", "demo", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in RUNS.items()
    }
    done = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    yield done


@pytest.fixture
def torch_state() -> Iterator[None]:
    """Restore the global torch settings that the demo's training changes."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    rng = torch.get_rng_state()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    torch.set_rng_state(rng)


def test_demo_resumes_identically(demo_runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    run = demo_runs["default"]
    assert run.returncode == 0, run.stdout + run.stderr
    assert "200 samples" in run.stdout
    assert "batch size 16; 13 batches per epoch x 2 epochs = 26 batches" in run.stdout
    assert "stopped after 6 batches (epoch 0, batch 6 of 13)" in run.stdout
    assert "ran 20 batches from epoch 0, batch 6" in run.stdout
    assert "resumed batches identical: yes (20 batches" in run.stdout
    assert "final weights identical: yes" in run.stdout
    # 6 batches of 16 were done: restarting the epoch trains all 96 of them again.
    assert "restarting epoch 0 from its first batch: 96 samples trained twice" in run.stdout
    assert "RandomSampler with a new generator, skipping 6 batches" in run.stdout


def test_demo_with_workers_and_distributed_sampler(
    demo_runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    run = demo_runs["workers"]
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ResumableDistributedSampler(seed=3) in a DataLoader with num_workers=2" in run.stdout
    assert "stopped after 17 batches (epoch 1, batch 4 of 13)" in run.stdout
    assert "resumed batches identical: yes (9 batches" in run.stdout
    assert "final weights identical: yes" in run.stdout


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "demo" in capsys.readouterr().out

    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ["--epochs", "--batch-size", "--stop-after", "--num-workers", "--seed"]:
        assert option in out
    assert "--dataset-size" in out
    assert "--resume-from" not in out


def test_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_stop_after_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--dataset-size=10", "--batch-size=5", "--stop-after=4"]) == 2
    assert "--stop-after should be in [1, 3]" in capsys.readouterr().err


def _record(batches: demo.Batches, value: float = 1.0) -> demo.RunRecord:
    return demo.RunRecord(batches, {"w": torch.full((2, 2), value), "b": torch.zeros(2)})


def test_check_resume_reports_a_batch_mismatch(capsys: pytest.CaptureFixture[str]) -> None:
    reference = _record([[0, 1], [2, 3], [4, 5], [6, 7]])
    assert demo.check_resume(reference, _record([[4, 5], [6, 7]]), stop_after=2) == 0
    assert "resumed batches identical: yes" in capsys.readouterr().out

    swapped = _record([[6, 7], [4, 5]])
    assert demo.check_resume(reference, swapped, stop_after=2) == 1
    out = capsys.readouterr().out
    assert "resumed batches identical: no (first difference at batch 2" in out
    assert "final weights identical: yes" in out

    missing = _record([[4, 5]])
    assert demo.check_resume(reference, missing, stop_after=2) == 1
    assert "first difference at batch 3: expected [6, 7], got no batch" in capsys.readouterr().out


def test_check_resume_reports_a_weight_mismatch(capsys: pytest.CaptureFixture[str]) -> None:
    reference = _record([[0, 1], [2, 3]])
    nudged = float(torch.nextafter(torch.tensor(1.0), torch.tensor(2.0)))
    assert demo.check_resume(reference, _record([[2, 3]], nudged), stop_after=1) == 1
    out = capsys.readouterr().out
    assert "resumed batches identical: yes" in out
    assert "final weights identical: no" in out


def test_check_resume_catches_a_naive_resume(
    torch_state: None, capsys: pytest.CaptureFixture[str]
) -> None:
    options = demo.DemoOptions(
        dataset_size=64, batch_size=8, epochs=2, seed=1, sampler="random", num_workers=0
    )
    job = demo.build_job(options)
    reference = demo.train(job, options, demo.Progress([], 0, 0))
    reference_record = demo.RunRecord(reference.batches, demo.weights_of(job.model))

    def resumed(restart_epoch: bool) -> demo.RunRecord:
        job = demo.build_job(options)
        stopped = demo.train(job, options, demo.Progress([], 0, 0), max_batches=3)
        start = demo.Progress([], stopped.epoch, 0 if restart_epoch else stopped.batches_done)
        finished = demo.train(job, options, start)
        return demo.RunRecord(finished.batches, demo.weights_of(job.model))

    assert demo.check_resume(reference_record, resumed(restart_epoch=False), 3) == 0
    assert demo.check_resume(reference_record, resumed(restart_epoch=True), 3) == 1
    out = capsys.readouterr().out
    assert "resumed batches identical: no" in out
    assert "final weights identical: no" in out


def test_resume_rejects_a_checkpoint_of_another_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "checkpoint.pt"
    config = {"dataset_size": 10, "batch_size": 2, "epochs": 1, "seed": 0, "sampler": "random"}
    demo.save_atomically({"format": demo.CHECKPOINT_FORMAT, "config": config}, checkpoint)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left
    args = [f"--resume-from={checkpoint}", f"--result={tmp_path / 'result.pt'}"]
    assert main(["demo", "--dataset-size=12", *args]) == 2
    assert "the checkpoint was written with" in capsys.readouterr().err
    assert not (tmp_path / "result.pt").exists()

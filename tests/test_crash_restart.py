"""Crash and restart: a real training job is SIGKILLed mid-epoch and restarted from its last
checkpoint, several times; the batches it trains on are exactly the uninterrupted run's.

``tests/scripts/train.py`` logs every trained batch's sample indices and checkpoints atomically
(model, optimizer, ``sampler.state_dict()``, number of logged batches) every few steps; a
restarted run cuts its log back to the checkpoint and trains the rest again. The job runs in
fresh processes started by a forkserver (one process, or two ranks of a real gloo group that are
killed together), so a restart costs no torch import. Kill points are drawn from a seeded RNG,
relative to where each run resumed, plus a random fraction of a step.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.utils.data as tud

from conftest import Sized, torch_perm

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
import train

RUN_SECONDS = 60  # a run (including restoring and a gloo rendezvous) must end within this
STEP_SLEEP = 0.01  # seconds per step, so that a kill point is reached before the run ends
KILLS = 4


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ctx() -> Any:
    ctx = mp.get_context("forkserver")
    # Ignored if the server already runs (started by another test); the children then import
    # what they miss themselves.
    ctx.set_forkserver_preload(["torch", "torch.distributed", "resumable_samplers", "train"])
    return ctx


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


class Job:
    """Runs ``train.py`` in ``workdir`` as 1 or ``train.WORLD`` processes, run after run."""

    def __init__(self, workdir: Path, kind: str) -> None:
        self.workdir, self.kind = workdir, kind
        self.world = train.WORLD if kind == "distributed" else 1
        self.runs = 0

    def start(self) -> tuple[list[Any], int]:
        port = _free_port()
        run = self.runs
        self.runs += 1
        argv = [
            f"--workdir={self.workdir}",
            f"--kind={self.kind}",
            f"--port={port}",
            f"--run={run}",
            f"--step-sleep={STEP_SLEEP}",
        ]
        ctx = _ctx()
        procs = [
            ctx.Process(target=train.main, args=([*argv, f"--rank={r}"],), daemon=True)
            for r in range(self.world)
        ]
        for p in procs:
            p.start()
        return procs, run

    def wait_started(self, procs: list[Any], run: int, deadline: float) -> int:
        """The step run ``run`` resumed from (every rank's)."""
        files = [self.workdir / f"started{r}-{run}.txt" for r in range(self.world)]
        while not all(f.exists() for f in files):
            self._check_alive(procs, deadline, "restore")
            time.sleep(0.005)
        starts = {int(f.read_text()) for f in files}
        assert len(starts) == 1, f"ranks resumed from different steps {starts}"
        return starts.pop()

    def _check_alive(self, procs: list[Any], deadline: float, what: str) -> None:
        dead = [p.exitcode for p in procs if not p.is_alive()]
        if dead:
            self.kill(procs)
            pytest.fail(f"the job exited ({dead}) during {what}")
        if time.monotonic() > deadline:
            self.kill(procs)
            pytest.fail(f"the job hung during {what}")

    @staticmethod
    def kill(procs: list[Any]) -> None:
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGKILL)
        for p in procs:
            p.join(10)

    def run_killed_at(self, target: int, jitter: float) -> tuple[int, int]:
        """Start a run, SIGKILL every rank once rank 0 logged ``target`` batches (plus ``jitter``
        seconds); return (the step it resumed from, the batches rank 0 had logged)."""
        procs, run = self.start()
        deadline = time.monotonic() + RUN_SECONDS
        start = self.wait_started(procs, run, deadline)
        log0 = self.workdir / "log0.txt"
        while _lines(log0) < target:
            self._check_alive(procs, deadline, f"training towards step {target}")
            time.sleep(0.002)
        time.sleep(jitter)
        self.kill(procs)
        codes = [p.exitcode for p in procs]
        assert codes == [-signal.SIGKILL] * self.world, f"not killed mid-run: {codes}"
        return start, _lines(log0)

    def run_to_end(self) -> int:
        procs, run = self.start()
        deadline = time.monotonic() + RUN_SECONDS
        start = self.wait_started(procs, run, deadline)
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
        hung = [p for p in procs if p.is_alive()]
        self.kill(procs)
        assert not hung, "the job hung"
        assert [p.exitcode for p in procs] == [0] * self.world
        return start


def _reference_order(kind: str, rank: int, epoch: int) -> list[int]:
    if kind == "random":
        return torch_perm(train.N, train.SEED + epoch)
    ref = tud.DistributedSampler(
        Sized(train.N), num_replicas=train.WORLD, rank=rank, seed=train.SEED
    )
    ref.set_epoch(epoch)
    return list(ref)


def _batches(order: list[int]) -> list[list[int]]:
    return [order[i : i + train.B] for i in range(0, len(order), train.B)]


def _log(path: Path) -> list[list[int]]:
    return [[int(i) for i in line.split()] for line in path.read_text().splitlines()]


def _final_weights(workdir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(workdir / "ckpt.pt", weights_only=True)
    return ckpt["model"]  # type: ignore[no-any-return]


def _crash_and_restart(tmp_path: Path, kind: str, seed: int) -> None:
    world = train.WORLD if kind == "distributed" else 1
    per_epoch = -(-train.N // (world * train.B))  # batches per rank and epoch
    total = per_epoch * train.EPOCHS

    # The uninterrupted run: torch's own order, batch by batch, on every rank.
    ref_dir = tmp_path / "uninterrupted"
    ref_dir.mkdir()
    assert Job(ref_dir, kind).run_to_end() == 0
    reference = {r: _log(ref_dir / f"log{r}.txt") for r in range(world)}
    for r in range(world):
        want = [b for e in range(train.EPOCHS) for b in _batches(_reference_order(kind, r, e))]
        assert reference[r] == want, f"rank {r}: the uninterrupted run is not torch's order"
        assert (ref_dir / f"done{r}.txt").read_text().strip() == str(total)

    # The same job, killed KILLS times at random points (two per epoch) and restarted.
    work = tmp_path / "killed"
    work.mkdir()
    job = Job(work, kind)
    rng = random.Random(seed)
    resumed, killed_at = [], []
    start = 0
    for k in range(KILLS):
        epoch, half = divmod(k, 2)
        lo = epoch * per_epoch + half * per_epoch // 2 + 2
        hi = epoch * per_epoch + (half + 1) * per_epoch // 2 - 2
        target = min(max(rng.randint(lo, hi), start + 2), total - 8)
        start, logged = job.run_killed_at(target, rng.uniform(0, 2 * STEP_SLEEP))
        resumed.append(start)
        killed_at.append(logged)
        assert logged < total
    resumed.append(job.run_to_end())

    # Every restart resumed from a checkpoint at or after the previous one, none after the kill.
    assert resumed == sorted(resumed)
    assert all(r <= k for r, k in zip(resumed[1:], killed_at, strict=True))
    # ... and the kills hit both epochs, mid-epoch, and cost re-trained batches.
    assert {k // per_epoch for k in killed_at} == set(range(train.EPOCHS)), killed_at
    assert any(r % per_epoch for r in resumed[1:]), resumed
    assert sum(k - r for r, k in zip(resumed[1:], killed_at, strict=True)) > 0

    for r in range(world):
        got = _log(work / f"log{r}.txt")
        assert len(got) == total, f"rank {r}: {len(got)} batches, want {total}"
        assert got == reference[r], f"rank {r}: the restarted job trained on other batches"
        assert (work / f"done{r}.txt").read_text().strip() == str(total)
    # Model and optimizer were restored too: the final weights are bit for bit the same.
    want_w, got_w = _final_weights(ref_dir), _final_weights(work)
    assert want_w.keys() == got_w.keys()
    assert all(torch.equal(want_w[k], got_w[k]) for k in want_w)
    print(
        f"{kind}: {len(killed_at)} restarts survived; killed after {killed_at} batches, "
        f"resumed from {resumed[1:]}; {total} batches per rank, all equal to the uninterrupted run"
    )


@pytest.mark.timeout(240)
def test_random_sampler_survives_kills(tmp_path: Path) -> None:
    _crash_and_restart(tmp_path, "random", seed=2024)


@pytest.mark.timeout(300)
def test_distributed_sampler_survives_kills_of_both_ranks(tmp_path: Path) -> None:
    _crash_and_restart(tmp_path, "distributed", seed=7)

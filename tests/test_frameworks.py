"""Lightning and accelerate: real training jobs SIGKILLed mid-run resume exactly from the
framework's own checkpoint with the documented recipes; the frameworks' native paths, for
contrast, repeat or lose batches.

Each job is ``tests/scripts/lightning_train.py`` or ``tests/scripts/accelerate_train.py``: 200
items, batches of 8, 2 epochs, a linear model, CPU. With ``KILL_AFTER=k`` a run saves the
framework's checkpoint after its ``k``-th batch and SIGKILLs itself on every rank; the next run
resumes from that checkpoint in fresh processes. A job is killed three times (mid-epoch, after the
last batch of the first epoch, mid second epoch) and then runs to the end; per rank, the batches
its runs trained on, one after the other, must be the uninterrupted run's, index for index, and
the final weights bit for bit the same.

Beyond the recipes' basic set-ups: Lightning with several train loaders in each
``CombinedLoader`` mode, with a resumable batch sampler, and under DDP with samplers that shard
themselves; accelerate with every ``DataLoaderConfiguration`` (``accelerate_grid.py``: one job
per number of processes runs the whole grid, each configuration killed at its own points).

Lightning jobs are forked, with torchrun's environment, from a server that has imported Lightning
once (``_zygote.py``); accelerate jobs run under ``torchrun``.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.utils.data as tud

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
import framework_job as job
from _workers import free_port
from _zygote import Zygote, torchrun_env

from conftest import Sized, torch_perm

SCRIPTS = Path(__file__).parent / "scripts"
LIGHTNING = SCRIPTS / "lightning_train.py"
ACCELERATE = SCRIPTS / "accelerate_train.py"
RUN_SECONDS = 120
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
TORCHRUN += ["--run-path", "--start-method", "fork"]

Log = list[list[int]]  # one rank's trained batches, in order


def per_epoch(world: int) -> int:
    """Batches per rank and epoch (both frameworks pad the last one)."""
    return -(-job.N // (job.B * world))


def kill_points(world: int) -> list[int]:
    """Mid first epoch, right after its last batch, mid second epoch (batches per rank)."""
    length = per_epoch(world)
    return [length // 2, length, length + length // 2]


def read_log(path: Path) -> Log:
    if not path.exists():
        return []
    return [[int(i) for i in line.split()] for line in path.read_text().splitlines()]


def weights(workdir: Path, rank: int) -> dict[str, torch.Tensor]:
    return torch.load(workdir / f"final{rank}.pt", weights_only=True)  # type: ignore[no-any-return]


def output(workdir: Path) -> str:
    return "\n".join(p.read_text()[-3000:] for p in sorted(workdir.glob("out*.txt")))


# --- launching -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    pytest.importorskip("torchdata")
    preload = ["torch", "torchdata.stateful_dataloader", "resumable_samplers"]
    preload += ["lightning.pytorch", "resumable_samplers.lightning", "accelerate"]
    server = Zygote(preload)
    yield server
    server.close()


def run_forked(
    script: Path,
    zygote: Zygote,
    workdir: Path,
    world: int,
    *args: str,
    attempt: int = 0,
    kill: int | None = None,
    timeout: float = RUN_SECONDS,
) -> list[int]:
    """Run ``script`` on ``world`` ranks forked by the zygote; every rank's exit code."""
    port = free_port()
    envs = [torchrun_env(r, world, port) if world > 1 else {} for r in range(world)]
    for env in envs:
        env["KILL_AFTER"] = str(kill or "")
    argv = ["--workdir", str(workdir), "--attempt", str(attempt), *args]
    if attempt:
        argv.append("--resume")
    logs = [workdir / f"out{attempt}-{r}.txt" for r in range(world)]
    return zygote.run(script, argv, envs, logs, timeout)


def run_torchrun(script: Path, workdir: Path, world: int, *args: str) -> list[int]:
    """Run ``script`` under torchrun on ``world`` processes, uninterrupted; torchrun's exit code."""
    argv = ["--workdir", str(workdir), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [*TORCHRUN, "--nproc_per_node", str(world), str(script), *argv]
    with open(workdir / "out-torchrun.txt", "w") as out:
        # A session of its own, so that a hung job is killed with its workers.
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            proc.wait(RUN_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            pytest.fail(f"{script.name} {argv} hung:\n{output(workdir)}")
    return [proc.returncode]


SCRIPT = {"lightning": LIGHTNING, "accelerate": ACCELERATE}


def killed(codes: list[int]) -> bool:
    return set(codes) == {-9}


# --- the uninterrupted runs --------------------------------------------------------------------


def torch_order(framework: str, world: int, rank: int, epoch: int) -> Log:
    """What the uninterrupted run must train on: torch's order, sharded as the framework does."""
    b = job.B
    if world == 1:
        order = torch_perm(job.N, job.SEED + epoch)
        return [order[i : i + b] for i in range(0, job.N, b)]
    if framework == "lightning":  # a ResumableDistributedSampler: torch's DistributedSampler
        ref = tud.DistributedSampler(Sized(job.N), num_replicas=world, rank=rank, seed=job.SEED)
        ref.set_epoch(epoch)
        mine = list(ref)
        return [mine[i : i + b] for i in range(0, len(mine), b)]
    # accelerate: the sampler's batches dealt out in turn, the last step padded from the start
    order = torch_perm(job.N, job.SEED + epoch)
    batches = [order[i : i + b] for i in range(0, job.N, b)]
    batches += batches[: -len(batches) % world]
    return batches[rank::world]


class References:
    """The uninterrupted run of each framework's recipe on 1 and 2 processes, each made once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: dict[tuple[str, int], Path] = {}

    def get(self, framework: str, world: int, zygote: Zygote) -> Path:
        key = (framework, world)
        if key not in self.done:
            workdir = self.root / f"{framework}-{world}"
            workdir.mkdir()
            recipe = "callback" if framework == "lightning" else "progress"
            args = ("--recipe", recipe, "--workers", "0")
            if framework == "accelerate" and world > 1:  # under torchrun itself, once
                codes = run_torchrun(ACCELERATE, workdir, world, *args)
            else:
                codes = run_forked(SCRIPT[framework], zygote, workdir, world, *args)
            assert set(codes) == {0}, output(workdir)
            for rank in range(world):
                want = [
                    b for e in range(job.EPOCHS) for b in torch_order(framework, world, rank, e)
                ]
                got = read_log(workdir / f"log{rank}-0.txt")
                assert got == want, f"{framework} rank {rank}: not torch's order"
            self.done[key] = workdir
        return self.done[key]


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> References:
    return References(tmp_path_factory.mktemp("uninterrupted"))


# --- the recipes resume exactly ----------------------------------------------------------------


def kill_and_resume(
    framework: str,
    zygote: Zygote,
    workdir: Path,
    world: int,
    args: list[str],
    points: list[int],
    strict: bool = True,
) -> list[int]:
    """Kill the job after each of ``points`` (batches per rank since the start), resuming each
    time from the checkpoint, then let it finish. The attempts made. Unless ``strict``, a job
    that finishes before a kill point (it lost batches) ends the series."""
    script = SCRIPT[framework]
    done = 0
    for attempt, point in enumerate(points):
        codes = run_forked(
            script, zygote, workdir, world, *args, attempt=attempt, kill=point - done
        )
        if not strict and set(codes) == {0}:
            return list(range(attempt + 1))
        assert killed(codes), f"attempt {attempt} was not killed ({codes}):\n{output(workdir)}"
        trained = len(read_log(workdir / f"log0-{attempt}.txt"))
        assert trained == point - done, f"attempt {attempt} trained {trained} batches"
        done = point
    codes = run_forked(script, zygote, workdir, world, *args, attempt=len(points))
    assert set(codes) == {0}, output(workdir)
    return list(range(len(points) + 1))


def trained(workdir: Path, rank: int, attempts: list[int]) -> Log:
    """What the rank trained on, attempt after attempt (each resumed at the previous kill)."""
    return [b for a in attempts for b in read_log(workdir / f"log{rank}-{a}.txt")]


def assert_exact(framework: str, world: int, workdir: Path, attempts: list[int], ref: Path) -> None:
    for rank in range(world):
        want = read_log(ref / f"log{rank}-0.txt")
        got = trained(workdir, rank, attempts)
        assert got == want, f"rank {rank}: {damage(want, got)}"
        want_w, got_w = weights(ref, rank), weights(workdir, rank)
        assert all(torch.equal(want_w[k], got_w[k]) for k in want_w), f"rank {rank}: weights"


LIGHTNING_CASES = {
    # name: (processes, arguments)
    "callback-1proc-0workers": (1, ["--recipe", "callback", "--workers", "0"]),
    "callback-1proc-2workers": (1, ["--recipe", "callback", "--workers", "2"]),
    "callback-ddp-2workers": (2, ["--recipe", "callback", "--workers", "2"]),
    "stateful-1proc-2workers": (1, ["--recipe", "stateful", "--workers", "2"]),
    "stateful-ddp-2workers": (2, ["--recipe", "stateful", "--workers", "2"]),
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", LIGHTNING_CASES)
def test_lightning_resumes_exactly(
    case: str, zygote: Zygote, references: References, tmp_path: Path
) -> None:
    world, args = LIGHTNING_CASES[case]
    ref = references.get("lightning", world, zygote)
    attempts = kill_and_resume("lightning", zygote, tmp_path, world, args, kill_points(world))
    assert_exact("lightning", world, tmp_path, attempts, ref)


def split_line(line: list[int]) -> tuple[list[int], list[int] | None]:
    """A combined recipe's log line: the batch of loader "a", and of loader "b" (or None)."""
    cut = line.index(-1)
    return line[:cut], (line[cut + 1 :] or None)


def combined_order(mode: str, epoch: int) -> Log:
    """The uninterrupted run of a combined recipe, from torch's order: loader "a" (200 items,
    seed 0) and "b" (40 items, seed 1, 5 batches), combined as Lightning's mode does."""
    b = job.B
    perm_a, perm_b = torch_perm(job.N, job.SEED + epoch), torch_perm(job.SHORT, 1 + epoch)
    a = [perm_a[i : i + b] for i in range(0, job.N, b)]
    short = [perm_b[i : i + b] for i in range(0, job.SHORT, b)]
    steps = len(short) if mode == "min_size" else len(a)
    lines = []
    for k in range(steps):
        if mode == "max_size_cycle":
            other: list[int] = short[k % len(short)]
        else:
            other = short[k] if k < len(short) else []
        lines.append([*a[k], -1, *other])
    return lines


COMBINED_MODES = ["max_size_cycle", "max_size", "min_size"]


@pytest.mark.timeout(600)
def test_lightning_combined_loaders_resume_each_at_its_own_position(
    zygote: Zygote, tmp_path: Path
) -> None:
    """Two train loaders (25 and 5 batches per epoch) in a CombinedLoader of each mode Lightning
    trains with: killed three times, every step trains both loaders' batches of the
    uninterrupted run (in "max_size_cycle" the short loader is in a later pass of its epoch)."""
    for mode in COMBINED_MODES:
        args = ["--recipe", f"combined-{mode}", "--workers", "2"]
        ref = tmp_path / f"{mode}-uninterrupted"
        ref.mkdir()
        assert set(run_forked(LIGHTNING, zygote, ref, 1, *args)) == {0}, output(ref)
        want = [line for e in range(job.EPOCHS) for line in combined_order(mode, e)]
        assert read_log(ref / "log0-0.txt") == want, f"{mode}: not torch's order"
        per = len(want) // job.EPOCHS
        workdir = tmp_path / mode
        workdir.mkdir()
        attempts = kill_and_resume(
            "lightning", zygote, workdir, 1, args, [per // 2, per, per + per // 2]
        )
        assert_exact("lightning", 1, workdir, attempts, ref)


def test_loader_positions_follow_lightnings_combined_loader() -> None:
    """Each loader's position after k batches of a CombinedLoader, by iterating a real one."""
    pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.utilities import CombinedLoader

    from resumable_samplers.lightning import loader_positions

    lengths = [7, 3, 5]
    for mode in ["max_size_cycle", "max_size", "min_size", "sequential"]:
        combined = CombinedLoader([CountedPasses(n) for n in lengths], mode)  # type: ignore[arg-type]
        iter(combined)
        total = len(combined)
        for k in range(total + 1):
            want = [(it.taken, it.passes > 1) for it in combined.flattened]
            assert loader_positions(mode, [float(n) for n in lengths], k) == want, (mode, k)
            if k < total:
                next(combined)
    limits: list[float] = [2, 3, 4]
    combined = CombinedLoader([CountedPasses(n) for n in lengths], "sequential")  # type: ignore[arg-type]
    combined.limits = limits  # type: ignore[assignment]
    iter(combined)
    for k in range(len(combined) + 1):
        want = [(it.taken, False) for it in combined.flattened]
        assert loader_positions("sequential", [float(n) for n in lengths], k, limits) == want
        if k < len(combined):
            next(combined)


class CountedPasses:
    """An iterable of ``n`` items that counts its passes and the items taken from the last."""

    def __init__(self, n: int) -> None:
        self.n, self.passes, self.taken = n, 0, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        self.passes += 1
        self.taken = 0
        for i in range(self.n):
            self.taken += 1
            yield i


@pytest.mark.timeout(300)
def test_lightning_token_budget_batch_sampler_resumes_exactly(
    zygote: Zygote, tmp_path: Path
) -> None:
    """A ResumableTokenBudgetBatchSampler given as the loader's batch_sampler: its epoch is set
    every epoch, and killed three times the job trains the uninterrupted run's batches."""
    from resumable_samplers import ResumableTokenBudgetBatchSampler

    sampler = ResumableTokenBudgetBatchSampler(job.LENGTHS, job.MAX_TOKENS, seed=0)
    per_epoch = []
    for epoch in range(job.EPOCHS):
        sampler.set_epoch(epoch)
        per_epoch.append([sorted(b) for b in sampler])
    assert per_epoch[0] != per_epoch[1]
    args = ["--recipe", "token-budget", "--workers", "2"]
    ref = tmp_path / "uninterrupted"
    ref.mkdir()
    assert set(run_forked(LIGHTNING, zygote, ref, 1, *args)) == {0}, output(ref)
    want = read_log(ref / "log0-0.txt")
    assert [sorted(b) for b in want] == per_epoch[0] + per_epoch[1]
    first, second = len(per_epoch[0]), len(per_epoch[1])
    points = [first // 2, first, first + second // 2]
    workdir = tmp_path / "resumed"
    workdir.mkdir()
    attempts = kill_and_resume("lightning", zygote, workdir, 1, args, points)
    assert_exact("lightning", 1, workdir, attempts, ref)


class Pairs(tud.Sampler[list[int]]):
    """A batch sampler of its own kind (no ``batch_size``) over a sampler."""

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == 2:
                yield batch
                batch = []

    def __len__(self) -> int:
        return len(self.sampler) // 2


def test_the_callback_refuses_a_resumable_sampler_it_cannot_count_batches_in() -> None:
    """A resumable sampler or batch sampler that the callback cannot seek by batches stops the
    run at its start, rather than resuming at a wrong position or not at all."""
    pytest.importorskip("lightning.pytorch")
    import types

    from resumable_samplers import ResumableRandomSampler, ResumableTokenBudgetBatchSampler
    from resumable_samplers.lightning import SamplerResume

    data = job.Synthetic()

    def start(loader: Any) -> None:
        fit_loop = types.SimpleNamespace(_combined_loader=None)
        trainer = types.SimpleNamespace(fit_loop=fit_loop, train_dataloader=loader)
        SamplerResume().on_train_start(trainer, None)

    sampler = ResumableRandomSampler(data, batch_size=2)
    with pytest.raises(ValueError, match="Pairs draws its batches from a ResumableRandomSampler"):
        start(tud.DataLoader(data, batch_sampler=Pairs(sampler)))
    budget = ResumableTokenBudgetBatchSampler(job.LENGTHS, job.MAX_TOKENS)
    with pytest.raises(ValueError, match="batch_sampler="):
        start(tud.DataLoader(data, batch_size=job.B, sampler=budget))
    with pytest.raises(ValueError, match="batch_size=2"):
        start(tud.DataLoader(data, batch_size=job.B, sampler=sampler))
    start({"a": tud.DataLoader(data, batch_sampler=budget), "b": tud.DataLoader(data, job.B)})


@pytest.mark.timeout(300)
@pytest.mark.parametrize("recipe", ["length", "token-budget"])
def test_lightning_ddp_samplers_that_shard_themselves_resume_exactly(
    recipe: str, zygote: Zygote, tmp_path: Path
) -> None:
    """Under DDP on 2 processes with use_distributed_sampler=False, a length-grouped sampler and
    a token-budget batch sampler (each sharded over the group by itself), killed three times."""
    from resumable_samplers import ResumableLengthGroupedSampler, ResumableTokenBudgetBatchSampler

    sampler: Any
    if recipe == "length":
        sampler = ResumableLengthGroupedSampler(job.LENGTHS, job.B, num_replicas=2, rank=0)
    else:
        sampler = ResumableTokenBudgetBatchSampler(
            job.LENGTHS, job.MAX_TOKENS, num_replicas=2, rank=0
        )
    lengths = []  # rank 0's batches per epoch
    for epoch in range(job.EPOCHS):
        sampler.set_epoch(epoch)
        lengths.append(len(sampler) if recipe == "token-budget" else -(-len(sampler) // job.B))
    args = ["--recipe", recipe, "--workers", "2"]
    ref = tmp_path / "uninterrupted"
    ref.mkdir()
    assert set(run_forked(LIGHTNING, zygote, ref, 2, *args)) == {0}, output(ref)
    logs = [read_log(ref / f"log{r}-0.txt") for r in range(2)]
    for epoch in range(job.EPOCHS):  # the ranks share out the epoch's samples
        start, end = sum(lengths[:epoch]), sum(lengths[: epoch + 1])
        seen = {i for log in logs for b in log[start:end] for i in b}
        assert seen == set(range(job.N)), f"epoch {epoch}"
    points = [lengths[0] // 2, lengths[0], lengths[0] + lengths[1] // 2]
    workdir = tmp_path / "resumed"
    workdir.mkdir()
    attempts = kill_and_resume("lightning", zygote, workdir, 2, args, points)
    assert_exact("lightning", 2, workdir, attempts, ref)


ACCELERATE_CASES = {
    "progress-1proc-2workers": (1, ["--recipe", "progress", "--workers", "2"]),
    "progress-2proc-2workers": (2, ["--recipe", "progress", "--workers", "2"]),
    "stateful-1proc-2workers": (1, ["--recipe", "stateful", "--workers", "2"]),
    "stateful-2proc-2workers": (2, ["--recipe", "stateful", "--workers", "2"]),
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", ACCELERATE_CASES)
def test_accelerate_resumes_exactly(
    case: str, zygote: Zygote, references: References, tmp_path: Path
) -> None:
    pytest.importorskip("accelerate")
    world, args = ACCELERATE_CASES[case]
    ref = references.get("accelerate", world, zygote)
    attempts = kill_and_resume("accelerate", zygote, tmp_path, world, args, kill_points(world))
    assert_exact("accelerate", world, tmp_path, attempts, ref)


GRID = SCRIPTS / "accelerate_grid.py"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("world", [1, 2])
def test_accelerate_every_dataloader_configuration_resumes_exactly(
    world: int, zygote: Zygote, tmp_path: Path
) -> None:
    """``dispatch_batches`` x ``split_batches`` x ``even_batches`` x ``use_stateful_dataloader``,
    with gradient accumulation: every configuration, killed three times and resumed from
    accelerate's checkpoint in fresh processes, trains the uninterrupted run's batches and ends
    with its weights (``tests/scripts/accelerate_grid.py``)."""
    pytest.importorskip("accelerate")
    import accelerate_grid as grid

    ref, resumed = tmp_path / "uninterrupted", tmp_path / "resumed"
    ref.mkdir()
    resumed.mkdir()
    codes = run_forked(GRID, zygote, ref, world, "--reference", timeout=600)
    assert set(codes) == {0}, output(ref)
    for attempt in range(len(grid.STOPS)):
        codes = run_forked(GRID, zygote, resumed, world, attempt=attempt, timeout=600)
        assert killed(codes), f"attempt {attempt} was not killed ({codes}):\n{output(resumed)}"
    codes = run_forked(GRID, zygote, resumed, world, attempt=len(grid.STOPS), timeout=600)
    assert set(codes) == {0}, output(resumed)
    attempts = list(range(len(grid.STOPS) + 1))
    refused: dict[str, str] = {}
    wrong: dict[str, Any] = {}
    for name in grid.CONFIGS:
        if list((ref / name).glob("refused*.txt")):
            refused[name] = (ref / name / "refused0.txt").read_text()
            continue
        logs = [read_log(ref / name / f"log{r}-0.txt") for r in range(world)]
        for epoch in range(job.EPOCHS):  # the uninterrupted run trains on every sample
            seen = set()
            for log in logs:
                per = len(log) // job.EPOCHS
                seen.update(i for b in log[epoch * per : (epoch + 1) * per] for i in b)
            n = grid.SIZES.get(name, job.N)
            assert seen == set(range(n)), f"{name}: epoch {epoch} misses samples"
        for rank in range(world):
            want = logs[rank]
            if world == 1:  # torch's order
                order = [torch_perm(n, job.SEED + e) for e in range(job.EPOCHS)]
                assert want == [p[i : i + job.B] for p in order for i in range(0, n, job.B)]
            got = trained(resumed / name, rank, attempts)
            if got != want:
                wrong[f"{name}, rank {rank}"] = damage(want, got)
                continue
            want_w, got_w = weights(ref / name, rank), weights(resumed / name, rank)
            if not all(torch.equal(want_w[k], got_w[k]) for k in want_w):
                wrong[f"{name}, rank {rank}"] = "weights"
    assert wrong == {}
    if world == 1:
        assert refused == {}
    else:
        assert list(refused) == [grid.PADDED]
        assert "dispatch_batches=True" in refused[grid.PADDED], refused


# --- the frameworks' native paths, for contrast ------------------------------------------------


def damage(want: Log, got: Log) -> dict[str, int]:
    """Batches trained more often than in the uninterrupted run, and batches never trained."""
    w, g = collections.Counter(map(tuple, want)), collections.Counter(map(tuple, got))
    return {"repeated": sum((g - w).values()), "lost": sum((w - g).values())}


def native_damage(
    framework: str, zygote: Zygote, workdir: Path, world: int, args: list[str], ref: Path
) -> dict[str, int]:
    """Kill the job mid-epoch once, resume it, and count the damage on rank 0."""
    workdir.mkdir()
    attempts = kill_and_resume(framework, zygote, workdir, world, args, [per_epoch(world) // 2])
    return damage(read_log(ref / "log0-0.txt"), trained(workdir, 0, attempts))


# Measured with 200 items, batches of 8 (25 per epoch), killed after batch 12; quoted in
# docs/frameworks.md. Keys: (recipe, num_workers).
LIGHTNING_NATIVE = {
    ("none", 2): {"repeated": 12, "lost": 12},
    ("hooks", 2): {"repeated": 0, "lost": 4},
    ("hooks", 0): {"repeated": 0, "lost": 0},
}


@pytest.mark.timeout(300)
def test_lightning_native_paths_repeat_or_lose_batches(
    zygote: Zygote, references: References, tmp_path: Path
) -> None:
    ref = references.get("lightning", 1, zygote)
    found = {}
    for recipe, workers in LIGHTNING_NATIVE:
        args = ["--recipe", recipe, "--workers", str(workers)]
        workdir = tmp_path / f"{recipe}-{workers}"
        found[recipe, workers] = native_damage("lightning", zygote, workdir, 1, args, ref)
    print("Lightning, killed mid-epoch:", found)
    assert found == LIGHTNING_NATIVE


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("workers", "repeated", "lost"), [(2, 0, 25), (0, 12, 0)])
def test_lightning_stateful_dataloader_alone_repeats_or_loses_batches(
    workers: int, repeated: int, lost: int, zygote: Zygote, references: References, tmp_path: Path
) -> None:
    """The same three kills as the recipes, with a StatefulDataLoader and no callback.

    With workers, Lightning starts the epoch's iterator before it sets the epoch: resumed from a
    checkpoint after the last batch of epoch 0, the loader's state (the end of epoch 0) is applied
    to that iterator, and epoch 1 trains on nothing. Without workers that resume is exact, but
    Lightning does not restore the loader from the next checkpoint (mid epoch 1, taken by that
    resumed run: its epoch counters say the epoch never started), and epoch 1 starts over."""
    ref = references.get("lightning", 1, zygote)
    args = ["--recipe", "stateful-alone", "--workers", str(workers)]
    attempts = kill_and_resume("lightning", zygote, tmp_path, 1, args, kill_points(1), strict=False)
    found = damage(read_log(ref / "log0-0.txt"), trained(tmp_path, 0, attempts))
    print(f"Lightning, StatefulDataLoader alone, {workers} workers, three kills:", found)
    assert found == {"repeated": repeated, "lost": lost}


@pytest.mark.timeout(120)
def test_lightning_ddp_refuses_a_wrapped_sampler(zygote: Zygote, tmp_path: Path) -> None:
    codes = run_forked(LIGHTNING, zygote, tmp_path, 2, "--recipe", "wrapped", "--workers", "0")
    assert 0 not in codes
    out = output(tmp_path)
    assert (
        "DistributedSamplerWrapper" in out
        and "give the DataLoader a ResumableDistributedSampler" in out
    ), out
    assert not read_log(tmp_path / "log0-0.txt")  # it failed before training on any batch


@pytest.mark.timeout(120)
def test_lightning_ddp_advice_for_a_sampler_that_shards_itself(
    zygote: Zygote, tmp_path: Path
) -> None:
    """A length-grouped sampler takes num_replicas and rank itself: the advice is to keep
    Lightning from wrapping it, not to use another sampler."""
    args = ["--recipe", "wrapped-length", "--workers", "0"]
    codes = run_forked(LIGHTNING, zygote, tmp_path, 2, *args)
    assert 0 not in codes
    out = output(tmp_path)
    assert "ResumableLengthGroupedSampler" in out and "use_distributed_sampler=False" in out, out
    assert "give the DataLoader a ResumableDistributedSampler" not in out, out
    assert not read_log(tmp_path / "log0-0.txt")


ACCELERATE_NATIVE = {
    ("register", 2): {"repeated": 0, "lost": 5},
    ("register", 0): {"repeated": 0, "lost": 1},
}


@pytest.mark.timeout(300)
def test_accelerate_native_paths_lose_batches(
    zygote: Zygote, references: References, tmp_path: Path
) -> None:
    pytest.importorskip("accelerate")
    ref = references.get("accelerate", 1, zygote)
    found = {}
    for recipe, workers in ACCELERATE_NATIVE:
        args = ["--recipe", recipe, "--workers", str(workers)]
        workdir = tmp_path / f"{recipe}-{workers}"
        found[recipe, workers] = native_damage("accelerate", zygote, workdir, 1, args, ref)
    print("accelerate, killed mid-epoch:", found)
    assert found == ACCELERATE_NATIVE


@pytest.mark.timeout(120)
def test_accelerate_shards_a_distributed_sampler_twice(zygote: Zygote, tmp_path: Path) -> None:
    pytest.importorskip("accelerate")
    codes = run_forked(ACCELERATE, zygote, tmp_path, 2, "--recipe", "distributed", "--workers", "0")
    assert set(codes) == {0}, output(tmp_path)
    per_epoch_samples = []
    for epoch in range(job.EPOCHS):
        seen: set[int] = set()
        for rank in range(2):
            log = read_log(tmp_path / f"log{rank}-0.txt")
            half = len(log) // job.EPOCHS
            seen.update(i for b in log[epoch * half : (epoch + 1) * half] for i in b)
        per_epoch_samples.append(len(seen))
    print(
        "accelerate prepare() + ResumableDistributedSampler: samples per epoch", per_epoch_samples
    )
    assert per_epoch_samples == [104, 104]


def test_loader_progress_refuses_a_sampler_sharded_twice() -> None:
    pytest.importorskip("accelerate")
    from accelerate.data_loader import prepare_data_loader

    from resumable_samplers import ResumableDistributedSampler, ResumableRandomSampler
    from resumable_samplers.accelerate import LoaderProgress

    data = job.Synthetic()
    sharded = ResumableDistributedSampler(data, num_replicas=2, rank=0, batch_size=job.B)
    loader = prepare_data_loader(
        tud.DataLoader(data, batch_size=job.B, sampler=sharded), num_processes=2, process_index=0
    )
    with pytest.raises(ValueError, match="ResumableRandomSampler"):
        LoaderProgress(loader)
    mismatched = ResumableRandomSampler(data, batch_size=4)
    loader = prepare_data_loader(tud.DataLoader(data, batch_size=job.B, sampler=mismatched))
    with pytest.raises(ValueError, match="batch_size=4"):
        LoaderProgress(loader)
    with pytest.raises(ValueError, match="resumable sampler"):
        LoaderProgress(prepare_data_loader(tud.DataLoader(data, batch_size=job.B, shuffle=True)))


def test_the_callback_is_a_callback_of_both_lightning_namespaces() -> None:
    lightning = pytest.importorskip("lightning.pytorch")
    pytorch_lightning = pytest.importorskip("pytorch_lightning")
    from resumable_samplers.lightning import SamplerResume

    callback = SamplerResume()
    assert isinstance(callback, lightning.Callback)
    assert isinstance(callback, pytorch_lightning.Callback)
    trainer = pytorch_lightning.Trainer(callbacks=[callback], logger=False, accelerator="cpu")
    assert callback in trainer.callbacks


def test_the_package_imports_no_framework() -> None:
    code = (
        "import sys, resumable_samplers\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'lightning', 'pytorch_lightning', 'accelerate', 'lightning_fabric'})\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

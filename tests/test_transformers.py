"""transformers' ``Trainer`` with ``ResumableTrainerMixin``: real training jobs trained in the stock
``Trainer``'s order, SIGKILLed right after a checkpoint and resumed from it in fresh processes,
continue at exactly the next batch without drawing the batches before it.

Each job is ``tests/scripts/transformers_train.py``: 200 items, batches of 8 per process, 2
epochs, a linear model, CPU, on 1 process or on 2 (a gloo group, with torchrun's environment).
Its ranks are forked from a server that imported transformers once (``_zygote.py``). Per rank, the
batches the attempts trained on, one after the other, must be the uninterrupted run's, index for
index, and the final weights bit for bit the same; the uninterrupted run must be the stock
``Trainer``'s. Every resumed attempt must start its sampler at the resume point: the first index
its sampler hands out is the first index it trains on (the stock ``Trainer`` replays the epoch
from its first index).
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
import framework_job as job
from _workers import free_port
from _zygote import Zygote, torchrun_env

from conftest import torch_perm

SCRIPT = Path(__file__).parent / "scripts" / "transformers_train.py"
RUN_SECONDS = 120
PER_EPOCH = -(-job.N // job.B)  # batches per epoch on one process (25)

Log = list[list[int]]


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    preload = ["torch", "accelerate", "transformers", "transformers.trainer"]
    preload += ["resumable_samplers", "resumable_samplers.transformers"]
    server = Zygote(preload)
    yield server
    server.close()


def output(workdir: Path) -> str:
    return "\n".join(p.read_text()[-3000:] for p in sorted(workdir.glob("out*.txt")))


def run(
    zygote: Zygote,
    workdir: Path,
    world: int,
    args: list[str],
    attempt: int = 0,
    kill: int | None = None,
    save_steps: int | None = None,
) -> list[int]:
    """One attempt of the job on ``world`` forked ranks (killed right after the checkpoint at
    global step ``kill``, saved every ``save_steps``)."""
    port = free_port()
    envs = [torchrun_env(r, world, port) if world > 1 else {} for r in range(world)]
    for env in envs:
        env["KILL_AFTER"] = str(kill or "")
        env["SAVE_STEPS"] = str(save_steps or "")
    argv = ["--workdir", str(workdir), "--attempt", str(attempt), *args]
    if attempt:
        argv.append("--resume")
    logs = [workdir / f"out{attempt}-{r}.txt" for r in range(world)]
    return zygote.run(SCRIPT, argv, envs, logs, RUN_SECONDS)


def read(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def batches(workdir: Path, rank: int, attempt: int) -> Log:
    return [[int(i) for i in line] for line in read(workdir / f"log{rank}-{attempt}.txt")]


def draws(workdir: Path, rank: int, attempt: int) -> list[tuple[str, int, int]]:
    """Each iteration of the sampler in that attempt: (class, epoch, first index)."""
    return [(c, int(e), int(i)) for c, e, i in read(workdir / f"draws{rank}-{attempt}.txt")]


def weights(workdir: Path, rank: int) -> dict[str, torch.Tensor]:
    return torch.load(workdir / f"final{rank}.pt", weights_only=True)  # type: ignore[no-any-return]


def same_weights(a: Path, b: Path, rank: int) -> bool:
    wa, wb = weights(a, rank), weights(b, rank)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


class Uninterrupted:
    """The uninterrupted runs, each made once: ``get(world, args, stock)``."""

    def __init__(self, root: Path, zygote: Zygote) -> None:
        self.root, self.zygote = root, zygote
        self.done: dict[tuple[int, tuple[str, ...]], Path] = {}

    def get(self, world: int, args: list[str]) -> Path:
        key = (world, tuple(args))
        if key not in self.done:
            workdir = self.root / f"run{len(self.done)}"
            workdir.mkdir()
            codes = run(self.zygote, workdir, world, args)
            assert set(codes) == {0}, output(workdir)
            self.done[key] = workdir
        return self.done[key]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, zygote: Zygote) -> Uninterrupted:
    return Uninterrupted(tmp_path_factory.mktemp("uninterrupted"), zygote)


def kill_and_resume(
    zygote: Zygote, workdir: Path, world: int, args: list[str], kills: list[int]
) -> list[int]:
    """Kill the job right after the checkpoint at each global step of ``kills``, resuming each
    time from that checkpoint in fresh processes, then let it finish. The attempts made.

    The job saves every ``save_steps`` steps, their greatest common divisor (the Trainer keeps
    a checkpoint's ``save_steps`` when it resumes from it)."""
    every = math.gcd(*kills)
    for attempt, step in enumerate(kills):
        codes = run(zygote, workdir, world, args, attempt=attempt, kill=step, save_steps=every)
        assert set(codes) == {-9}, f"attempt {attempt} not killed ({codes}):\n{output(workdir)}"
        assert (workdir / f"checkpoint-{step}").is_dir()
    codes = run(zygote, workdir, world, args, attempt=len(kills))
    assert set(codes) == {0}, output(workdir)
    return list(range(len(kills) + 1))


def assert_resumed_exactly(
    workdir: Path, ref: Path, world: int, attempts: list[int], sampler: str
) -> None:
    """The attempts trained the uninterrupted run's batches and weights, and each resumed
    attempt's sampler started at its first batch (nothing before it drawn)."""
    for rank in range(world):
        got = [b for a in attempts for b in batches(workdir, rank, a)]
        assert got == batches(ref, rank, 0), f"rank {rank}: not the uninterrupted batches"
        assert same_weights(ref, workdir, rank), f"rank {rank}: other final weights"
        for attempt in attempts[1:]:
            first_trained = batches(workdir, 0, attempt)[0][0]  # rank 0 has the first batch
            started = draws(workdir, rank, attempt)[0]
            assert started[2] == first_trained, (
                f"rank {rank}, attempt {attempt}: the sampler started at index {started[2]}, "
                f"not at the resume point (index {first_trained})"
            )
            assert started[0] == sampler, started


def stock_order(world: int, rank: int, epochs: int = job.EPOCHS) -> Log:
    """accelerate's SeedableRandomSampler: torch.randperm seeded with seed + epoch, its batches
    dealt to the processes in turn, the last step padded with the epoch's first batches."""
    out = []
    for epoch in range(epochs):
        order = torch_perm(job.N, job.SEED + epoch)
        epoch_batches = [order[i : i + job.B] for i in range(0, job.N, job.B)]
        if world > 1 and len(epoch_batches) % world:
            pad = order[: job.B * world]
            fill = [pad[i : i + job.B] for i in range(0, len(pad), job.B)]
            last = epoch_batches.pop()
            epoch_batches.append(last + fill[0][: job.B - len(last)])
            rest = fill[0][job.B - len(last) :] + fill[1]
            epoch_batches += [rest[i : i + job.B] for i in range(0, len(rest), job.B)][
                : -len(epoch_batches) % world
            ]
        out += epoch_batches[rank::world]
    return out


# --- the stock order -------------------------------------------------------------------------


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("world", "args"), [(1, []), (2, []), (2, ["--split-batches"])])
def test_uninterrupted_run_is_the_stock_trainers(
    world: int, args: list[str], zygote: Zygote, uninterrupted: Uninterrupted, tmp_path: Path
) -> None:
    ours = uninterrupted.get(world, args)
    codes = run(zygote, tmp_path, world, [*args, "--stock"])
    assert set(codes) == {0}, output(tmp_path)
    for rank in range(world):
        if not args:
            assert batches(tmp_path, rank, 0) == stock_order(world, rank)
        assert batches(ours, rank, 0) == batches(tmp_path, rank, 0)
        assert same_weights(ours, tmp_path, rank)
        assert [d[0] for d in draws(ours, rank, 0)] == ["ResumableRandomSampler"] * job.EPOCHS
    if world == 1:  # transformers' default order, as documented
        assert batches(ours, 0, 0)[0] == [44, 57, 157, 64, 19, 74, 65, 10]


# --- resuming ----------------------------------------------------------------------------------


CASES = {
    # name: (processes, arguments, global steps of the kills)
    "mid-epoch": (1, [], [PER_EPOCH // 2]),
    # right after the checkpoint at the end of epoch 0, then mid epoch 1 (saved every 5 steps)
    "epoch-end": (1, ["--workers", "2"], [PER_EPOCH, PER_EPOCH + 10]),
    # 13 optimizer steps an epoch (the last of one batch); max_steps ends mid epoch 1
    "accumulation-workers": (
        1,
        ["--accumulation", "2", "--workers", "2", "--max-steps", "20"],
        [6, 16],
    ),
    "sequential": (1, ["--strategy", "sequential"], [PER_EPOCH + 3]),
    # 13 batches per process and epoch, the last step padded by accelerate
    "2proc-mid-epoch": (2, ["--workers", "2"], [6, 13 + 5]),
    "2proc-epoch-end": (2, ["--accumulation", "2"], [7]),
    # accelerate splits each batch of 8 over the 2 processes
    "2proc-split-batches": (2, ["--split-batches"], [10]),
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", CASES)
def test_resumes_at_the_next_batch_without_drawing_the_skipped_ones(
    case: str, zygote: Zygote, uninterrupted: Uninterrupted, tmp_path: Path
) -> None:
    world, args, kills = CASES[case]
    ref = uninterrupted.get(world, args)
    sampler = "ResumableRandomSampler"
    if "sequential" in args:
        sampler = "ResumableSequentialSampler"
        identity = [list(range(i, i + job.B)) for i in range(0, job.N, job.B)]
        assert batches(ref, 0, 0) == identity * job.EPOCHS  # SequentialSampler's order
    attempts = kill_and_resume(zygote, tmp_path, world, args, kills)
    assert_resumed_exactly(tmp_path, ref, world, attempts, sampler)


@pytest.mark.timeout(300)
def test_ignore_data_skip_starts_the_epoch_over(
    zygote: Zygote, uninterrupted: Uninterrupted, tmp_path: Path
) -> None:
    args = ["--ignore-data-skip", "--max-steps", str(PER_EPOCH // 2 + 2 * PER_EPOCH)]
    ref = uninterrupted.get(1, [])
    kill_and_resume(zygote, tmp_path, 1, args, [PER_EPOCH // 2])
    # The resumed run trains epoch 0 again from its first batch, then epoch 1, as stock does.
    assert batches(tmp_path, 0, 1) == batches(ref, 0, 0)
    assert [d[0] for d in draws(tmp_path, 0, 1)] == ["ResumableRandomSampler"] * job.EPOCHS


@pytest.mark.timeout(300)
def test_group_by_length_is_transformers_length_grouped_order_and_resumes(
    zygote: Zygote, uninterrupted: Uninterrupted, tmp_path: Path
) -> None:
    from transformers.trainer_pt_utils import LengthGroupedSampler

    sys.path.insert(0, str(SCRIPT.parent))
    from transformers_train import Items

    args = ["--strategy", "group_by_length", "--accumulation", "2"]
    ref = uninterrupted.get(1, args)
    items = Items()
    lengths = [len(items[i]["input_ids"]) for i in range(job.N)]
    want = []
    for epoch in range(job.EPOCHS):
        # transformers' sampler, its megabatches of per_device_train_batch_size * accumulation
        g = torch.Generator().manual_seed(job.SEED + epoch)
        order = list(LengthGroupedSampler(job.B * 2, lengths=lengths, generator=g))
        want += [order[i : i + job.B] for i in range(0, job.N, job.B)]
    assert batches(ref, 0, 0) == want
    attempts = kill_and_resume(zygote, tmp_path, 1, args, [5])
    assert_resumed_exactly(tmp_path, ref, 1, attempts, "ResumableLengthGroupedSampler")


# --- what the mixin refuses --------------------------------------------------------------------


def make_trainer(
    tmp_path: Path, dataset: object = None, sampler: Any = None, **kwargs: object
) -> object:
    """A Trainer with the mixin; ``sampler(dataset)``, if given, is a subclass's own sampler."""
    import transformers
    from transformers_train import Items, Model, collate

    from resumable_samplers.transformers import ResumableTrainerMixin

    class Trainer(ResumableTrainerMixin, transformers.Trainer):  # type: ignore[misc]
        if sampler is not None:

            def _get_train_sampler(self, train_dataset: Any = None) -> Any:
                return sampler(self.train_dataset)

    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        seed=job.SEED,
        use_cpu=True,
        report_to=[],
        dataloader_pin_memory=False,
        **kwargs,
    )
    log = job.BatchLog(tmp_path, 0, 0)
    data = Items() if dataset is None else dataset
    return Trainer(model=Model(log), args=args, train_dataset=data, data_collator=collate)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train_sampling_strategy": "batch_rebalance"}, "'batch_rebalance'"),
        ({"accelerator_config": {"use_seedable_sampler": False}}, "use_seedable_sampler"),
    ],
)
def test_refuses_a_set_up_it_cannot_resume_exactly(
    kwargs: dict[str, object], message: str, tmp_path: Path
) -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    trainer = make_trainer(tmp_path, **kwargs)
    with pytest.raises(ValueError, match=message):
        trainer.get_train_dataloader()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("sampler", "message"),
    [
        ("torch", "got a SeedableRandomSampler"),
        ("mismatched", "batch_size=4"),
        ("budget", "batch_size=1"),
    ],
)
def test_refuses_a_subclass_sampler_it_cannot_resume(
    sampler: str, message: str, tmp_path: Path
) -> None:
    import torch.utils.data as tud

    from resumable_samplers import ResumableRandomSampler, ResumableTokenBudgetBatchSampler

    samplers = {
        "torch": tud.RandomSampler,
        "mismatched": lambda data: ResumableRandomSampler(data, batch_size=4),
        "budget": lambda data: ResumableTokenBudgetBatchSampler([3] * len(data), 8),
    }
    sys.path.insert(0, str(SCRIPT.parent))
    trainer: Any = make_trainer(tmp_path, sampler=samplers[sampler])
    with pytest.raises(ValueError, match=message):
        trainer.get_train_dataloader()
    # a loader made without the check (a subclass's get_train_dataloader) is refused at resume
    import transformers

    loader = transformers.Trainer.get_train_dataloader(trainer)
    with pytest.raises(ValueError, match=message):
        trainer.get_resumed_dataloader(loader, 3)


def test_lazy_order_is_opt_in(tmp_path: Path) -> None:
    from resumable_samplers import ResumableRandomSampler

    sys.path.insert(0, str(SCRIPT.parent))
    trainer: object = make_trainer(tmp_path)
    sampler = trainer._get_train_sampler()  # type: ignore[attr-defined]
    assert isinstance(sampler, ResumableRandomSampler)
    assert list(sampler) == torch_perm(job.N, job.SEED)
    trainer.sampler_permutation = "lazy"  # type: ignore[attr-defined]
    lazy = trainer._get_train_sampler()  # type: ignore[attr-defined]
    assert list(lazy) == list(ResumableRandomSampler(range(job.N), seed=0, permutation="lazy"))
    assert sorted(lazy) == list(range(job.N)) and list(lazy) != torch_perm(job.N, job.SEED)
    grouped = make_trainer(tmp_path, train_sampling_strategy="group_by_length")
    grouped.sampler_permutation = "lazy"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="sampler_permutation"):
        grouped.get_train_dataloader()  # type: ignore[attr-defined]


def test_the_package_imports_no_transformers() -> None:
    code = (
        "import sys, resumable_samplers\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'transformers', 'accelerate'})\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class Columns:
    """What the Trainer reads lengths from in a ``datasets.Dataset``: named columns."""

    def __init__(self, **columns: list[Any]) -> None:
        self.columns = columns
        self.column_names = list(columns)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self.columns[key]
        return {name: column[key] for name, column in self.columns.items()}


def test_group_by_length_reads_the_length_column_or_the_model_inputs(tmp_path: Path) -> None:
    from transformers.trainer_pt_utils import LengthGroupedSampler

    sys.path.insert(0, str(SCRIPT.parent))
    lengths = [1 + (i * 37) % 23 for i in range(97)]
    g = torch.Generator().manual_seed(job.SEED)
    want = list(LengthGroupedSampler(8, lengths=lengths, generator=g))
    strategy = {"train_sampling_strategy": "group_by_length", "per_device_train_batch_size": 8}
    for data in (
        Columns(length=lengths, input_ids=[[0]] * 97),  # the length column wins
        Columns(input_ids=[[0] * k for k in lengths]),
    ):
        trainer: Any = make_trainer(tmp_path, data, **strategy)
        assert list(trainer._get_train_sampler()) == want
    trainer = make_trainer(tmp_path, Columns(text=["a"] * 97), **strategy)
    with pytest.raises(ValueError, match=r"'length'.*'input_ids'"):
        trainer._get_train_sampler()

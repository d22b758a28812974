"""``resumable-samplers demo``: stop a training run mid-epoch, resume it in a new process.

The demo trains a small model on a synthetic dataset three times, with a real
``torch.utils.data.DataLoader`` over a resumable sampler:

1. a reference run, uninterrupted, recording every batch's sample indices and the final weights;
2. an interrupted run, stopped after ``--stop-after`` batches, which writes a checkpoint (model,
   optimizer, epoch, batches done in the epoch) atomically;
3. a resumed run in a fresh Python process, which loads the checkpoint, sets
   ``sampler.start_iter`` to the batches done before ``sampler.set_epoch(epoch)``, and finishes.

It then checks that the resumed run saw exactly the reference run's batches from the stop point
on and ended with bit-identical weights, and shows what a naive resume would have done instead.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resumable_samplers import _cli

# torch is imported where it is used, so that ``resumable-samplers demo --help`` answers at once.
if TYPE_CHECKING:
    import torch
    import torch.utils.data as tud
    from torch import nn

    from resumable_samplers.samplers import ResumableSamplerType

NUM_FEATURES = 16
NUM_CLASSES = 2
HIDDEN = 32
LEARNING_RATE = 0.1
MOMENTUM = 0.9
SAMPLERS = ("random", "distributed")
CHECKPOINT_FORMAT = 1

Batches = list[list[int]]
Weights = dict[str, "torch.Tensor"]


# --- the training job -----------------------------------------------------------------------


if TYPE_CHECKING:
    _MapDataset = tud.Dataset[tuple[torch.Tensor, torch.Tensor, int]]
else:  # a map-style dataset is any object with __len__ and __getitem__; torch loads later
    _MapDataset = object


class SyntheticDataset(_MapDataset):
    """Random features with a linearly separable label; item ``i`` is ``(x, y, i)``.

    Args:
        size: the number of samples.
        seed: the seed of the generator that draws the features and labels.
    """

    def __init__(self, size: int, seed: int) -> None:
        import torch

        generator = torch.Generator().manual_seed(seed)
        self.features = torch.randn(size, NUM_FEATURES, generator=generator)
        direction = torch.randn(NUM_FEATURES, generator=generator)
        self.labels = (self.features @ direction > 0).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.features[index], self.labels[index], index


@dataclass(frozen=True)
class DemoOptions:
    """What a demo run is made of; everything but ``num_workers`` must match on resume."""

    dataset_size: int
    batch_size: int
    epochs: int
    seed: int
    sampler: str
    num_workers: int

    @property
    def batches_per_epoch(self) -> int:
        """Batches per epoch (the DataLoader keeps the last, partial batch)."""
        return math.ceil(self.dataset_size / self.batch_size)

    def job_config(self) -> dict[str, int | str]:
        """The settings that fix the data order and the training; stored in checkpoints."""
        config = asdict(self)
        del config["num_workers"]  # resuming with a different number of workers is fine
        return config

    def to_argv(self) -> list[str]:
        """These options as ``demo`` command-line arguments."""
        return [
            f"--dataset-size={self.dataset_size}",
            f"--batch-size={self.batch_size}",
            f"--epochs={self.epochs}",
            f"--seed={self.seed}",
            f"--sampler={self.sampler}",
            f"--num-workers={self.num_workers}",
        ]


@dataclass
class Job:
    """One training job: dataset, model, optimizer, sampler and the DataLoader over them."""

    dataset: SyntheticDataset
    model: nn.Module
    optimizer: torch.optim.Optimizer
    sampler: ResumableSamplerType
    loader: tud.DataLoader[tuple[torch.Tensor, torch.Tensor, int]]


@dataclass
class Progress:
    """Where training stands: the batches seen (sample indices) and the next batch to run."""

    batches: Batches
    epoch: int
    batches_done: int


def make_deterministic(seed: int) -> None:
    """Seed torch and make CPU training bit-reproducible across processes."""
    import torch

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)


def make_sampler(options: DemoOptions, dataset: SyntheticDataset) -> ResumableSamplerType:
    """The resumable sampler chosen by ``--sampler``."""
    from resumable_samplers.samplers import ResumableDistributedSampler, ResumableRandomSampler

    if options.sampler == "distributed":
        return ResumableDistributedSampler(
            dataset, num_replicas=1, rank=0, seed=options.seed, batch_size=options.batch_size
        )
    return ResumableRandomSampler(dataset, seed=options.seed, batch_size=options.batch_size)


def build_job(options: DemoOptions) -> Job:
    """A fresh job: the same dataset and initial weights in every process for the same seed."""
    import torch
    import torch.utils.data as tud
    from torch import nn

    make_deterministic(options.seed)
    dataset = SyntheticDataset(options.dataset_size, options.seed)
    model = nn.Sequential(
        nn.Linear(NUM_FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, NUM_CLASSES)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    sampler = make_sampler(options, dataset)
    loader = tud.DataLoader(
        dataset,
        batch_size=options.batch_size,
        sampler=sampler,
        num_workers=options.num_workers,
    )
    return Job(dataset, model, optimizer, sampler, loader)


def train(
    job: Job, options: DemoOptions, start: Progress, max_batches: int | None = None
) -> Progress:
    """Train from ``start`` to the end of the last epoch, or until ``max_batches`` in all.

    Args:
        job: the job to train.
        options: the demo options (number of epochs).
        start: where to start; ``start.batches`` are the batches already seen, kept in front.
        max_batches: stop once this many batches have been seen since the start of training.

    Returns:
        The progress at the stop: all batches seen, and the epoch and batch to resume at.
    """
    import torch
    from torch import nn

    batches = list(start.batches)
    job.sampler.start_iter = start.batches_done  # set before set_epoch, as trainers do
    for epoch in range(start.epoch, options.epochs):
        job.sampler.set_epoch(epoch)
        done = start.batches_done if epoch == start.epoch else 0
        for features, labels, indices in job.loader:
            job.optimizer.zero_grad()
            loss = nn.functional.cross_entropy(job.model(features), labels)
            torch.autograd.backward(loss)
            job.optimizer.step()
            batches.append([int(i) for i in indices])
            done += 1
            if max_batches is not None and len(batches) >= max_batches:
                if done == options.batches_per_epoch:
                    return Progress(batches, epoch + 1, 0)
                return Progress(batches, epoch, done)
    return Progress(batches, options.epochs, 0)


def weights_of(model: nn.Module) -> Weights:
    """A detached copy of the model's weights."""
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def save_atomically(obj: object, path: Path) -> None:
    """``torch.save`` to a temporary file next to ``path``, then rename it over ``path``.

    A crash while saving leaves either the previous file or the new one, never a torn file.
    """
    import torch

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- comparison and report ------------------------------------------------------------------


@dataclass
class RunRecord:
    """What a run produced: every batch's sample indices, and the final weights."""

    batches: Batches
    weights: Weights


def first_difference(expected: Batches, actual: Batches) -> int | None:
    """The position of the first batch that differs (or is missing), or ``None``."""
    for position, (want, got) in enumerate(zip(expected, actual, strict=False)):
        if want != got:
            return position
    if len(expected) != len(actual):
        return min(len(expected), len(actual))
    return None


def same_weights(expected: Weights, actual: Weights) -> bool:
    """Whether both hold the same tensors, bit for bit."""
    import torch

    return expected.keys() == actual.keys() and all(
        torch.equal(expected[name], actual[name]) for name in expected
    )


def check_resume(reference: RunRecord, resumed: RunRecord, stop_after: int) -> int:
    """Print whether the resumed run matches the reference run; return the exit code.

    Args:
        reference: the uninterrupted run.
        resumed: the batches run after the resume (from batch ``stop_after`` on) and the final
            weights.
        stop_after: the number of batches run before the interruption.

    Returns:
        0 if the batches match index for index and the weights bit for bit, else 1.
    """
    expected = reference.batches[stop_after:]
    diff = first_difference(expected, resumed.batches)
    samples = sum(len(batch) for batch in resumed.batches)
    if diff is None:
        batches_line = f"yes ({len(expected)} batches, {samples} sample indices)"
    else:
        batches_line = (
            f"no (first difference at batch {stop_after + diff}: "
            f"expected {_head(expected, diff)}, got {_head(resumed.batches, diff)})"
        )
    weights_ok = same_weights(reference.weights, resumed.weights)
    print(f"  resumed batches identical: {batches_line}")
    print(f"  final weights identical: {'yes' if weights_ok else 'no'}")
    return 0 if diff is None and weights_ok else 1


def _head(batches: Batches, position: int) -> str:
    if position >= len(batches):
        return "no batch"
    batch = batches[position]
    return f"[{', '.join(map(str, batch[:4]))}{', ...' if len(batch) > 4 else ''}]"


def naive_resume_lines(options: DemoOptions, job: Job, stopped: Progress) -> list[str]:
    """What two naive resumes would have done in the interrupted epoch, counted.

    One restarts the epoch from its first batch; the other uses torch's ``RandomSampler`` with a
    new generator and skips the batches already done.
    """
    import torch
    import torch.utils.data as tud

    done = stopped.batches_done
    if done == 0:
        return ["  naive resume: stopped at an epoch boundary, where restarting the epoch is right"]
    seen = {i for batch in stopped.batches[-done:] for i in batch}
    epoch = stopped.epoch
    # Restart the epoch: the same order from its first batch.
    job.sampler.start_iter = 0
    job.sampler.set_epoch(epoch)
    restarted = list(job.sampler)
    repeated_restart = sum(1 for i in restarted if i in seen)
    # A plain RandomSampler with a new generator, skipping the batches already done.
    fresh = tud.RandomSampler(job.dataset, generator=torch.Generator())
    rest = list(fresh)[done * options.batch_size :]
    repeated_fresh = sum(1 for i in rest if i in seen)
    never_seen = len(set(range(options.dataset_size)) - seen - set(rest))
    return [
        f"  naive resume, restarting epoch {epoch} from its first batch: "
        f"{repeated_restart} samples trained twice in the epoch ({done} extra batches)",
        f"  naive resume, RandomSampler with a new generator, skipping {done} batches: "
        f"{repeated_fresh} samples trained twice, {never_seen} never seen in epoch {epoch}",
    ]


# --- the command ----------------------------------------------------------------------------


def run_demo(options: DemoOptions, stop_after: int | None) -> int:
    """Reference run, interrupted run, resume in a new process, then compare and report."""
    import torch

    per_epoch = options.batches_per_epoch
    total = per_epoch * options.epochs
    if stop_after is None:
        stop_after = max(1, per_epoch // 2)
    if not 1 <= stop_after < total:
        return _usage_error(
            f"--stop-after should be in [1, {total - 1}] "
            f"({options.epochs} epochs of {per_epoch} batches), got {stop_after}"
        )

    job = build_job(options)
    reference = train(job, options, Progress([], 0, 0))
    reference_record = RunRecord(reference.batches, weights_of(job.model))

    job = build_job(options)
    stopped = train(job, options, Progress([], 0, 0), max_batches=stop_after)

    print("resumable-samplers demo: stop mid-epoch, resume in a new process, compare")
    print(
        f"  dataset: {options.dataset_size} samples x {NUM_FEATURES} features; "
        f"batch size {options.batch_size}; {per_epoch} batches per epoch x "
        f"{options.epochs} epochs = {total} batches"
    )
    print(
        f"  sampler: {type(job.sampler).__name__}(seed={options.seed}) in a DataLoader "
        f"with num_workers={options.num_workers}"
    )
    print(f"  reference run: {len(reference.batches)} batches, uninterrupted")
    print(
        f"  interrupted run: stopped after {stop_after} batches "
        f"(epoch {stopped.epoch}, batch {stopped.batches_done} of {per_epoch})"
    )

    with tempfile.TemporaryDirectory(prefix="resumable-samplers-demo-") as tmp:
        checkpoint = Path(tmp) / "checkpoint.pt"
        result = Path(tmp) / "resumed.pt"
        save_atomically(
            {
                "format": CHECKPOINT_FORMAT,
                "config": options.job_config(),
                "epoch": stopped.epoch,
                "start_iter": stopped.batches_done,
                "batches": stopped.batches,
                "model": job.model.state_dict(),
                "optimizer": job.optimizer.state_dict(),
            },
            checkpoint,
        )
        print(
            f"  checkpoint: epoch {stopped.epoch}, start_iter {stopped.batches_done}, "
            "model + optimizer (written to a temp file, then os.replace)"
        )
        command = [
            sys.executable,
            "-m",
            "resumable_samplers",
            "demo",
            *options.to_argv(),
            f"--resume-from={checkpoint}",
            f"--result={result}",
        ]
        print("  resuming in a new process (it imports torch first) ...", flush=True)
        child = subprocess.run(command, check=False)
        if child.returncode != 0:
            print(f"  resumed run: the new process failed with exit code {child.returncode}")
            return 1
        saved = torch.load(result, weights_only=True)
    resumed = RunRecord(saved["batches"], saved["weights"])
    print(
        f"  resumed run (new process, pid {saved['pid']}): ran {len(resumed.batches)} batches "
        f"from epoch {stopped.epoch}, batch {stopped.batches_done}"
    )
    code = check_resume(reference_record, resumed, stop_after)
    for line in naive_resume_lines(options, job, stopped):
        print(line)
    return code


def resume_from_checkpoint(options: DemoOptions, checkpoint: Path, result: Path) -> int:
    """Load the checkpoint, finish the training, and save the batches run and final weights."""
    import torch

    state: dict[str, Any] = torch.load(checkpoint, weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT:
        print(f"demo: error: unknown checkpoint format in {checkpoint}", file=sys.stderr)
        return 2
    if state["config"] != options.job_config():
        print(
            f"demo: error: the checkpoint was written with {state['config']}, "
            f"not {options.job_config()}",
            file=sys.stderr,
        )
        return 2
    job = build_job(options)
    job.model.load_state_dict(state["model"])
    job.optimizer.load_state_dict(state["optimizer"])
    start = Progress([], state["epoch"], state["start_iter"])
    finished = train(job, options, start)
    save_atomically(
        {"batches": finished.batches, "weights": weights_of(job.model), "pid": os.getpid()},
        result,
    )
    return 0


_PARSER: list[argparse.ArgumentParser] = []  # the demo's parser, for its usage line


def _usage_error(message: str) -> int:
    """Print the usage and ``message`` as argparse does for its own errors; exit status 2."""
    if _PARSER:
        _PARSER[-1].print_usage(sys.stderr)
    print(f"resumable-samplers demo: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """The ``demo`` command."""
    from resumable_samplers._limits import SEED_END, text

    if args.seed + args.epochs - 1 >= SEED_END:
        return _usage_error(
            f"--seed + --epochs - 1 should be below {text(SEED_END)} (the sampler seeds epoch e "
            f"with seed + e), got --seed {args.seed} and --epochs {args.epochs}"
        )
    options = DemoOptions(
        dataset_size=args.dataset_size,
        batch_size=args.batch_size,
        epochs=args.epochs,
        seed=args.seed,
        sampler=args.sampler,
        num_workers=args.num_workers,
    )
    if (args.resume_from is None) != (args.result is None):
        return _usage_error("--resume-from and --result go together")
    if args.resume_from is not None:
        return resume_from_checkpoint(options, args.resume_from, args.result)
    return run_demo(options, args.stop_after)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="stop a training run mid-epoch, resume it in a new process, compare",
        description=(
            "Train a small model with a DataLoader over a resumable sampler: once without "
            "interruption, once stopped after --stop-after batches with a checkpoint, then "
            "resumed from the checkpoint in a new Python process. Checks that the resumed run "
            "sees the same batches and ends with bit-identical weights (exit code 0), and shows "
            "what a naive resume would have done."
        ),
    )
    _PARSER.append(parser)
    positive = _cli.int_in(1, 10**9)
    parser.add_argument(
        "--epochs",
        type=_cli.int_in(1, 10**6),
        default=2,
        help="number of epochs (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size", type=positive, default=32, help="samples per batch (default: %(default)s)"
    )
    parser.add_argument(
        "--stop-after",
        type=positive,
        default=None,
        help="interrupt after this many batches (default: the middle of epoch 0)",
    )
    parser.add_argument(
        "--num-workers",
        type=_cli.int_in(0, 1024),
        default=0,
        help="DataLoader worker processes (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=_cli.seed,
        default=0,
        help="seed of the data, model and order (default: %(default)s)",
    )
    parser.add_argument(
        "--dataset-size",
        type=_cli.int_in(1, 10**7),
        default=1000,
        help="number of synthetic samples (default: %(default)s)",
    )
    parser.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default="random",
        help="ResumableRandomSampler or ResumableDistributedSampler with one replica "
        "(default: %(default)s)",
    )
    # Internal: how the demo runs its resumed half in a new process.
    parser.add_argument("--resume-from", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)

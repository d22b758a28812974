"""A tiny Lightning training job (CPU) that can be SIGKILLed after any batch and resumed from
Lightning's own checkpoint; see ``framework_job.py`` for the log and the kill switch.

    python tests/scripts/lightning_train.py --workdir /tmp/job --recipe callback --workers 2
    KILL_AFTER=10 python tests/scripts/lightning_train.py --workdir /tmp/job --recipe callback
    python tests/scripts/lightning_train.py --workdir /tmp/job --attempt 1 --resume

Under ``torchrun --nproc_per_node 2`` it trains with DDP on gloo. Recipes (``--recipe``):

- ``callback``: a plain ``DataLoader`` and ``resumable_samplers.lightning.SamplerResume``;
- ``stateful``: torchdata's ``StatefulDataLoader`` (Lightning saves its state), and the callback;
- ``stateful-alone``: the ``StatefulDataLoader`` without the callback;
- ``none``: a plain ``DataLoader``, nothing else (Lightning's native path);
- ``hooks``: a plain ``DataLoader``, the sampler's state saved and loaded in the module's
  ``on_save_checkpoint``/``on_load_checkpoint`` (what one writes without the callback);
- ``wrapped``: a ``ResumableRandomSampler`` under DDP (Lightning wraps it) with the callback;
- ``wrapped-length``: the same with a ``ResumableLengthGroupedSampler``;
- ``combined-<mode>``: two train loaders (200 and 40 items) in a ``CombinedLoader`` of that mode
  (``max_size_cycle``, ``max_size``, ``min_size``), each with its own sampler, and the callback;
- ``token-budget``: a ``ResumableTokenBudgetBatchSampler`` as the loader's ``batch_sampler``, and
  the callback;
- ``length``: a ``ResumableLengthGroupedSampler``, and the callback.

``token-budget`` and ``length`` shard themselves under DDP: the trainer gets
``use_distributed_sampler=False``.
"""

# ruff: noqa: E402
# The recipe (shown in docs/frameworks.md) comes first and runs as it is.
# [start:recipe]
from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from resumable_samplers import ResumableDistributedSampler, ResumableRandomSampler
from resumable_samplers.lightning import SamplerResume


class Regression(pl.LightningModule):
    def __init__(self, dataset: Any, batch_size: int, num_workers: int) -> None:
        super().__init__()
        self.dataset, self.batch_size, self.num_workers = dataset, batch_size, num_workers
        self.net = nn.Linear(8, 1)

    def train_dataloader(self) -> DataLoader:
        # Under DDP a ResumableDistributedSampler (Lightning keeps a DistributedSampler as it
        # is); in one process a ResumableRandomSampler. Its batch_size is the loader's.
        sampler: ResumableRandomSampler | ResumableDistributedSampler
        if self.trainer.world_size > 1:
            sampler = ResumableDistributedSampler(self.dataset, seed=0, batch_size=self.batch_size)
        else:
            sampler = ResumableRandomSampler(self.dataset, seed=0, batch_size=self.batch_size)
        return DataLoader(
            self.dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers
        )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        _, x, y = batch
        return ((self.net(x).squeeze(1) - y) ** 2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)


def make_trainer(**kwargs: Any) -> pl.Trainer:
    # SamplerResume moves the sampler to where Lightning's checkpoint stopped.
    callbacks = [SamplerResume(), *kwargs.pop("callbacks", [])]
    return pl.Trainer(callbacks=callbacks, **kwargs)


# Resuming: make_trainer(...).fit(model, ckpt_path="path/to/checkpoint.ckpt")
# [end:recipe]

# [start:stateful]
import warnings

from torchdata.stateful_dataloader import StatefulDataLoader

# torchdata's loader calls torch.set_vital, which recent torch deprecates with a warning
warnings.filterwarnings("ignore", message="'set_vital' is deprecated")


class StatefulRegression(Regression):
    def train_dataloader(self) -> StatefulDataLoader:
        sampler = super().train_dataloader().sampler  # the same resumable sampler
        return StatefulDataLoader(
            self.dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers
        )


# [end:stateful]

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import framework_job as job
from lightning.pytorch.utilities import CombinedLoader

from resumable_samplers import ResumableLengthGroupedSampler, ResumableTokenBudgetBatchSampler


class Logged(StatefulRegression):
    """The recipes' module, logging what it trains on; the recipe picks its loader."""

    def __init__(self, args: argparse.Namespace, rank: int) -> None:
        super().__init__(job.Synthetic(), job.B, args.workers)
        self.recipe = args.recipe
        self.log = job.BatchLog(args.workdir, rank, args.attempt)
        self.sampler: Any = None
        if self.recipe == "hooks":  # made early, so that on_load_checkpoint can restore it
            self.sampler = ResumableRandomSampler(self.dataset, seed=0, batch_size=job.B)

    def train_dataloader(self) -> Any:
        workers = self.num_workers
        if self.recipe.startswith("combined-"):
            short = job.Synthetic(job.SHORT)
            loaders = {
                "a": DataLoader(
                    self.dataset,
                    batch_size=job.B,
                    sampler=ResumableRandomSampler(self.dataset, seed=0, batch_size=job.B),
                    num_workers=workers,
                ),
                "b": DataLoader(
                    short,
                    batch_size=job.B,
                    sampler=ResumableRandomSampler(short, seed=1, batch_size=job.B),
                    num_workers=workers,
                ),
            }
            return CombinedLoader(loaders, self.recipe.removeprefix("combined-"))
        if self.recipe == "token-budget":
            batches = ResumableTokenBudgetBatchSampler(job.LENGTHS, job.MAX_TOKENS, seed=0)
            return DataLoader(self.dataset, batch_sampler=batches, num_workers=workers)
        if self.recipe in ("wrapped-length", "length"):
            sampler = ResumableLengthGroupedSampler(job.LENGTHS, job.B, seed=0)
            return DataLoader(self.dataset, batch_size=job.B, sampler=sampler, num_workers=workers)
        if self.recipe.startswith("stateful"):
            loader = super().train_dataloader()
            self.sampler = loader.sampler
            return loader
        if self.recipe in ("wrapped", "hooks"):
            if self.sampler is None:
                self.sampler = ResumableRandomSampler(self.dataset, seed=0, batch_size=job.B)
            return DataLoader(
                self.dataset, batch_size=job.B, sampler=self.sampler, num_workers=self.num_workers
            )
        loader = Regression.train_dataloader(self)
        self.sampler = loader.sampler
        return loader

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if isinstance(batch, dict):  # the combined recipes: a batch of each loader, or None
            self.log.write(batch["a"][0], batch["b"] and batch["b"][0])
            parts = [b for b in batch.values() if b is not None]
            return sum(super(Logged, self).training_step(b, batch_idx) for b in parts)  # type: ignore[return-value]
        self.log.write(batch[0])
        return super().training_step(batch, batch_idx)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.recipe == "hooks":
            checkpoint["sampler"] = self.sampler.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.recipe == "hooks":
            self.sampler.load_state_dict(checkpoint["sampler"])


class KillSwitch(pl.Callback):
    """After the k-th batch this run trained: save Lightning's checkpoint, SIGKILL this rank."""

    def __init__(self, path: Path, after: int | None) -> None:
        self.path, self.after, self.trained = path, after, 0

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self.trained += 1
        if self.trained == self.after:
            trainer.save_checkpoint(self.path)  # every rank; rank 0 writes, then a barrier
            job.die()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--recipe", default="callback")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--attempt", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    pl.seed_everything(0, verbose=False)
    model = Logged(args, rank)
    ckpt = args.workdir / "checkpoint.ckpt"
    kill = KillSwitch(ckpt, job.kill_after())
    common: dict[str, Any] = {
        "max_epochs": job.EPOCHS,
        "accelerator": "cpu",
        "devices": world,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "callbacks": [kill],
    }
    if world > 1:
        common["strategy"] = "ddp"
    if args.recipe in ("token-budget", "length"):
        common["use_distributed_sampler"] = False  # they shard themselves over the group
    if args.recipe in ("callback", "stateful", "wrapped", "wrapped-length", "token-budget") or (
        args.recipe.startswith(("combined-", "length"))
    ):
        trainer = make_trainer(**common)
    else:
        trainer = pl.Trainer(**common)
    trainer.fit(model, ckpt_path=ckpt if args.resume else None)
    job.save_weights(args.workdir, rank, model)


if __name__ == "__main__":
    main()

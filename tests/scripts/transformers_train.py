"""A tiny transformers ``Trainer`` job (CPU) that can be SIGKILLed right after a checkpoint and
resumed from it with ``trainer.train(resume_from_checkpoint=...)``; see ``framework_job.py`` for
the log and the kill switch.

    python tests/scripts/transformers_train.py --workdir /tmp/job --workers 2 --accumulation 2
    torchrun --standalone --nproc_per_node 2 tests/scripts/transformers_train.py --workdir /tmp/job

``--stock`` trains with transformers' own ``Trainer``; otherwise with
``class Trainer(ResumableTrainerMixin, transformers.Trainer)``. With ``KILL_AFTER=k`` the run
saves checkpoints every ``SAVE_STEPS`` steps (``save_steps``; ``k`` by default) and SIGKILLs
itself on every rank right after the one at global step ``k``; ``--resume`` resumes
from the newest checkpoint in the work directory.

Besides the batches, every rank writes ``draws<rank>-<attempt>.txt``: one line per iteration of
the sampler, with the sampler's class and the first index it handed out, so a test can tell a
sampler that seeks to the resume point from one that replays the epoch from its start.
"""

# ruff: noqa: E402
# The recipe (shown in docs/frameworks.md) comes first and runs as it is.
# [start:recipe]
from __future__ import annotations

import transformers

from resumable_samplers.transformers import ResumableTrainerMixin


class Trainer(ResumableTrainerMixin, transformers.Trainer):
    """transformers' Trainer, resuming in O(1) (the same for any Trainer subclass)."""


# trainer = Trainer(model=model, args=args, train_dataset=dataset)
# trainer.train()                                        # the stock order, batch for batch
# trainer.train(resume_from_checkpoint="out/checkpoint-500")  # continues at the next batch
# [end:recipe]

import argparse
import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
import framework_job as job


class Items(job.Synthetic):
    """The job's data as the dicts a ``Trainer`` collates; ``input_ids`` of varying length for
    ``group_by_length``."""

    def __getitem__(self, i: int) -> dict[str, Any]:  # type: ignore[override]
        _, x, y = super().__getitem__(i)
        return {"idx": i, "x": x, "labels": y, "input_ids": [0] * (1 + (i * 7919) % 13)}


class Model(nn.Module):
    """A linear model whose forward logs the batch it trains on."""

    def __init__(self, log: job.BatchLog) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 1)
        self.log = log

    def forward(self, idx: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, **_: Any) -> Any:
        self.log.write(idx.tolist())
        return {"loss": ((self.linear(x).squeeze(1) - labels) ** 2).mean()}


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    return {
        "idx": torch.tensor([f["idx"] for f in items]),
        "x": torch.stack([f["x"] for f in items]),
        "labels": torch.stack([f["labels"] for f in items]),
    }


def record_draws(cls: type, path: Path) -> None:
    """Make every iteration of a ``cls`` sampler write its class and first index to ``path``."""
    original = cls.__iter__

    @functools.wraps(original)
    def __iter__(self: Any) -> Iterator[int]:
        first = True
        for i in original(self):
            if first:
                with open(path, "a") as f:
                    f.write(f"{type(self).__name__} {self.epoch} {i}\n")
                first = False
            yield i

    cls.__iter__ = __iter__  # type: ignore[method-assign]


class KillSwitch(transformers.TrainerCallback):
    """SIGKILLs the process right after the checkpoint of global step ``at`` is saved."""

    def __init__(self, at: int | None) -> None:
        self.at = at

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step == self.at:
            if torch.distributed.is_initialized():
                torch.distributed.barrier()
            job.die()
        return control


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--attempt", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--stock", action="store_true")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--accumulation", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--strategy", default="random")
    parser.add_argument("--ignore-data-skip", action="store_true")
    parser.add_argument("--split-batches", action="store_true")
    opts = parser.parse_args(argv)

    from accelerate.data_loader import SeedableRandomSampler

    import resumable_samplers

    rank = int(os.environ.get("RANK", "0"))
    log = job.BatchLog(opts.workdir, rank, opts.attempt)
    draws = opts.workdir / f"draws{rank}-{opts.attempt}.txt"
    for cls in (
        SeedableRandomSampler,
        resumable_samplers.ResumableRandomSampler,
        resumable_samplers.ResumableSequentialSampler,
        resumable_samplers.ResumableLengthGroupedSampler,
    ):
        record_draws(cls, draws)

    transformers.set_seed(job.SEED)
    model = Model(log)
    kill = job.kill_after()  # a global step at which the Trainer saves (save_steps)
    every = int(os.environ.get("SAVE_STEPS") or kill or 0)
    args = transformers.TrainingArguments(
        output_dir=str(opts.workdir),
        per_device_train_batch_size=job.B,
        gradient_accumulation_steps=opts.accumulation,
        num_train_epochs=job.EPOCHS,
        max_steps=opts.max_steps,
        learning_rate=0.01,
        lr_scheduler_type="constant",
        seed=job.SEED,
        save_strategy="no" if kill is None else "steps",
        save_steps=every or 500,
        logging_strategy="no",
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=opts.workers,
        dataloader_pin_memory=False,
        train_sampling_strategy=opts.strategy,
        ignore_data_skip=opts.ignore_data_skip,
        accelerator_config={"split_batches": opts.split_batches},
        disable_tqdm=True,
        ddp_find_unused_parameters=False,
    )
    cls = transformers.Trainer if opts.stock else Trainer
    trainer = cls(
        model=model,
        args=args,
        train_dataset=Items(),
        data_collator=collate,
        callbacks=[KillSwitch(kill)],
    )
    checkpoint = None
    if opts.resume:
        found = sorted(opts.workdir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        checkpoint = str(found[-1])
    trainer.train(resume_from_checkpoint=checkpoint)
    job.save_weights(opts.workdir, rank, model)


if __name__ == "__main__":
    main()

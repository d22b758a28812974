"""A tiny accelerate training job (CPU) that can be SIGKILLed after any batch and resumed from
accelerate's own checkpoint (``save_state``/``load_state``); see ``framework_job.py`` for the log
and the kill switch.

    python tests/scripts/accelerate_train.py --workdir /tmp/job --recipe progress --workers 2
    torchrun --standalone --nproc_per_node 2 tests/scripts/accelerate_train.py --workdir /tmp/job

Recipes (``--recipe``):

- ``progress``: a plain ``DataLoader`` and ``resumable_samplers.accelerate.LoaderProgress``;
- ``stateful``: ``use_stateful_dataloader=True`` (accelerate saves the loader's state), and
  ``LoaderProgress`` for the epoch;
- ``register``: ``register_for_checkpointing(sampler)``, the epoch taken from the sampler's state
  (what one writes without the helper);
- ``distributed``: a ``ResumableDistributedSampler`` given to ``prepare()`` (never resumed).
"""

# ruff: noqa: E402
# The recipe (shown in docs/frameworks.md) comes first and runs as it is.
# [start:recipe]
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader

from resumable_samplers import ResumableRandomSampler
from resumable_samplers.accelerate import LoaderProgress


def prepare(accelerator: Accelerator, dataset: Any, num_workers: int = 2) -> tuple[Any, ...]:
    model = nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    # A non-distributed sampler, the same on every process: prepare() shards its batches.
    sampler = ResumableRandomSampler(dataset, seed=0, batch_size=8)
    loader = DataLoader(dataset, batch_size=8, sampler=sampler, num_workers=num_workers)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    progress = LoaderProgress(loader)  # the epoch, and the batches trained in it
    accelerator.register_for_checkpointing(progress)  # saved and loaded with the rest
    return model, optimizer, progress


def train(
    accelerator: Accelerator,
    model: Any,
    optimizer: Any,
    progress: LoaderProgress,
    epochs: int,
    after_step: Callable[[Any], None] = lambda batch: None,
) -> None:
    for epoch in range(progress.epoch, epochs):
        for batch in progress.iterate(epoch):  # the restored epoch continues at its next batch
            _, x, y = batch
            optimizer.zero_grad()
            loss = ((model(x).squeeze(1) - y) ** 2).mean()
            accelerator.backward(loss)
            optimizer.step()
            after_step(batch)  # e.g. accelerator.save_state(...) every so many steps


# Resuming, in a new process:
#     accelerator = Accelerator()
#     model, optimizer, progress = prepare(accelerator, dataset)
#     accelerator.load_state("path/to/checkpoint")
#     train(accelerator, model, optimizer, progress, epochs)
# [end:recipe]

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import framework_job as job


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--recipe", default="progress")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--attempt", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from accelerate import DataLoaderConfiguration
    from accelerate.utils import set_seed

    from resumable_samplers import ResumableDistributedSampler

    stateful = args.recipe == "stateful"
    accelerator = Accelerator(
        cpu=True, dataloader_config=DataLoaderConfiguration(use_stateful_dataloader=stateful)
    )
    rank = accelerator.process_index
    set_seed(0)
    dataset = job.Synthetic()
    ckpt = args.workdir / "checkpoint"
    log = job.BatchLog(args.workdir, rank, args.attempt)
    kill_after = job.kill_after()
    steps = 0

    def after_step(batch: Any) -> None:
        nonlocal steps
        log.write(batch[0])
        steps += 1
        if steps == kill_after:
            accelerator.save_state(ckpt)
            accelerator.wait_for_everyone()
            job.die()

    if args.recipe in ("progress", "stateful"):
        model, optimizer, progress = prepare(accelerator, dataset, args.workers)
        if args.resume:
            accelerator.load_state(ckpt)
        train(accelerator, model, optimizer, progress, job.EPOCHS, after_step)
    else:  # accelerate's own path: the sampler registered, or a distributed sampler
        model = nn.Linear(8, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        sampler: Any
        if args.recipe == "distributed":
            sampler = ResumableDistributedSampler(dataset, seed=0, batch_size=job.B)
        else:
            sampler = ResumableRandomSampler(dataset, seed=0, batch_size=job.B)
        loader = DataLoader(dataset, batch_size=job.B, sampler=sampler, num_workers=args.workers)
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        accelerator.register_for_checkpointing(sampler)
        if args.resume:
            accelerator.load_state(ckpt)
        for epoch in range(sampler.state_dict()["epoch"], job.EPOCHS):
            loader.set_epoch(epoch)
            for batch in loader:
                _, x, y = batch
                optimizer.zero_grad()
                loss = ((model(x).squeeze(1) - y) ** 2).mean()
                accelerator.backward(loss)
                optimizer.step()
                after_step(batch)
    job.save_weights(args.workdir, rank, accelerator.unwrap_model(model))
    accelerator.wait_for_everyone()
    accelerator.end_training()


if __name__ == "__main__":
    main()

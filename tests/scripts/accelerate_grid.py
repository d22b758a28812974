"""Every ``DataLoaderConfiguration`` of accelerate, in one job: ``dispatch_batches`` x
``split_batches`` x ``even_batches`` x ``use_stateful_dataloader``, each with gradient
accumulation (2 batches per optimizer step) and the ``LoaderProgress`` recipe.

    python tests/scripts/accelerate_grid.py --workdir /tmp/grid --reference
    torchrun --standalone --nproc_per_node 2 tests/scripts/accelerate_grid.py --workdir /tmp/grid

The job trains one model per configuration, one configuration after the other, each in
``<workdir>/<configuration>/``. ``--reference`` runs every configuration uninterrupted. Otherwise
attempt ``a`` (``--attempt a``, resumed from the previous attempt's checkpoints with ``a > 0``)
trains every configuration up to its ``a``-th stop (:data:`STOPS`: the first optimizer step from
the middle of the first epoch on, after the last batch of the first epoch, the first optimizer
step from the middle of the second epoch on), saves accelerate's checkpoint there and goes on
to the next configuration; after the last one, every rank SIGKILLs itself. The attempt after the
last stop trains to the end. Each rank logs the batches it trains on as ``framework_job.py``
does, and saves its final weights.

Gradients are not reduced over processes (the model is not wrapped for DDP), so that a
configuration that gives the processes different numbers of batches (``even_batches=False``)
trains without a collective waiting for a process that has finished its epoch; each rank saves
its own model and optimizer next to accelerate's checkpoint. A configuration ``LoaderProgress``
refuses writes the error to ``refused.txt`` and is skipped.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from torch import nn
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).parent))
import framework_job as job

from resumable_samplers import ResumableRandomSampler
from resumable_samplers.accelerate import LoaderProgress

ACCUMULATE = 2
CONFIGS = {
    f"dispatch{int(d)}-split{int(s)}-even{int(e)}-stateful{int(t)}": {
        "dispatch_batches": d,
        "split_batches": s,
        "even_batches": e,
        "use_stateful_dataloader": t,
    }
    for d, s, e, t in itertools.product((False, True), repeat=4)
}
# On more than one process, accelerate completes the last step of a dispatched epoch of 201
# samples with the iteration's first samples: LoaderProgress refuses it there.
PADDED = "dispatch1-split0-201samples"
CONFIGS[PADDED] = {"dispatch_batches": True}
SIZES = {PADDED: 201}
# Where attempt a stops: (epoch, "half" or "end" of this rank's batches of that epoch).
STOPS = [(0, "half"), (0, "end"), (1, "half")]


def stop_after(stop: tuple[int, str] | None, epoch: int, length: int) -> int | None:
    """After how many batches of ``epoch`` this attempt checkpoints, if it does in that epoch."""
    if stop is None or stop[0] != epoch:
        return None
    return length // 2 if stop[1] == "half" else length


def run(name: str, args: argparse.Namespace, world: int) -> None:
    workdir = args.workdir / name
    workdir.mkdir(exist_ok=True)
    accelerator = Accelerator(
        cpu=True,
        gradient_accumulation_steps=ACCUMULATE,
        dataloader_config=DataLoaderConfiguration(**CONFIGS[name]),
    )
    rank = accelerator.process_index
    torch.manual_seed(0)
    model = nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    dataset = job.Synthetic(SIZES.get(name, job.N))
    sampler = ResumableRandomSampler(dataset, seed=0, batch_size=job.B)
    loader = DataLoader(dataset, batch_size=job.B, sampler=sampler, num_workers=args.workers)
    optimizer, loader = accelerator.prepare(optimizer, loader)
    try:
        progress = LoaderProgress(loader)
    except ValueError as e:
        (workdir / f"refused{rank}.txt").write_text(str(e))
        return
    accelerator.register_for_checkpointing(progress)
    ckpt = workdir / "checkpoint"
    mine = workdir / f"rank{rank}.pt"
    if args.attempt:
        accelerator.load_state(ckpt)
        saved = torch.load(mine, weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
    stop = None if args.reference or args.attempt >= len(STOPS) else STOPS[args.attempt]
    log = job.BatchLog(workdir, rank, args.attempt)
    for epoch in range(progress.epoch, job.EPOCHS):
        after = stop_after(stop, epoch, len(loader))
        for batch in progress.iterate(epoch):
            _, x, y = batch
            with accelerator.accumulate(model):
                loss = ((model(x).squeeze(1) - y) ** 2).mean()
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
            log.write(batch[0])
            # At an optimizer step: accumulated gradients are not part of a checkpoint.
            if after is not None and progress.batches >= after and accelerator.sync_gradients:
                accelerator.save_state(ckpt)
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, mine)
                accelerator.wait_for_everyone()
                return
    job.save_weights(workdir, rank, model)
    accelerator.wait_for_everyone()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--attempt", type=int, default=0)
    p.add_argument("--resume", action="store_true")  # the attempt number says it
    p.add_argument("--reference", action="store_true")
    p.add_argument("--configs", default=",".join(CONFIGS))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    for name in args.configs.split(","):
        run(name, args, world)
    if not args.reference and args.attempt < len(STOPS):
        job.die()
    from accelerate import PartialState

    PartialState().destroy_process_group()


if __name__ == "__main__":
    main()

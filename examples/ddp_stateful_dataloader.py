r"""Data-parallel training with torchdata's ``StatefulDataLoader``, resuming at the next batch.

The same training as ``ddp_train.py`` (a tiny model, a synthetic dataset, gloo on CPU processes,
a ``ResumableDistributedSampler`` per process), but the checkpoint holds each rank's
``loader.state_dict()``, which carries the sampler's state. The loader restores it at exactly the
next batch even though its worker processes (``--num-workers``) fetch batches ahead. A loader's
state belongs to one rank, so resume with the same number of processes (``ddp_train.py`` shows
resuming on another number).

A checkpoint is a directory per step, ``<checkpoint-dir>/step-00000004/``, holding
``trainer.pt`` (rank 0: model, optimizer, epoch, step) and ``loader-rank<r>.pt`` (rank ``r``'s
loader state). Once every rank has written its part, rank 0 atomically replaces the file
``<checkpoint-dir>/latest`` with the new directory's name, so an interruption at any moment leaves
a complete checkpoint behind.

Run it on 2 processes (``torchrun`` is ``python -m torch.distributed.run``; ``--standalone`` picks
a free port)::

    torchrun --standalone --nproc_per_node 2 examples/ddp_stateful_dataloader.py \
        --checkpoint-dir full/ckpt --log-dir full/logs

Simulate an interruption after 7 steps (the last checkpoint is then the one of step 4), then
resume::

    torchrun --standalone --nproc_per_node 2 examples/ddp_stateful_dataloader.py \
        --checkpoint-dir run/ckpt --log-dir run/logs-1 --stop-after 7
    torchrun --standalone --nproc_per_node 2 examples/ddp_stateful_dataloader.py \
        --checkpoint-dir run/ckpt --log-dir run/logs-2 --resume

Each rank appends one JSON line per step to ``<log-dir>/rank<r>.jsonl``, as ``ddp_train.py`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import TensorDataset
from torchdata.stateful_dataloader import StatefulDataLoader

from resumable_samplers import ResumableDistributedSampler

# torchdata's loader calls torch.set_vital, which recent torch deprecates with a warning
warnings.filterwarnings("ignore", message="'set_vital' is deprecated")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint-dir", type=Path, default=Path("checkpoints"), help="one directory per step"
    )
    parser.add_argument(
        "--log-dir", type=Path, default=Path("logs"), help="the indices each rank trained on"
    )
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir")
    parser.add_argument(
        "--stop-after", type=int, metavar="STEPS", help="stop after STEPS steps, as if killed"
    )
    parser.add_argument("--checkpoint-every", type=int, default=4, metavar="STEPS")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dataset-size", type=int, default=120)
    parser.add_argument(
        "--global-batch-size", type=int, default=12, help="samples per step, over all processes"
    )
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def make_dataset(size: int, seed: int) -> TensorDataset:
    """A synthetic regression problem; item ``i`` is ``(i, features, target)``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(size, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) + 0.1 * torch.randn(size, 1, generator=g)
    return TensorDataset(torch.arange(size), x, y)


def make_model(seed: int) -> nn.Module:
    """A tiny MLP, initialised from ``seed``."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))


def save_file(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` ``obj`` to ``path`` and flush it to disk."""
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def replace_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees either the old or the new content."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    """Train, checkpointing every few steps; resume from the last checkpoint with ``--resume``."""
    args = parse_args(argv)
    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    if args.global_batch_size % world_size:
        raise SystemExit(
            f"--global-batch-size {args.global_batch_size} is not divisible by the "
            f"{world_size} processes"
        )
    batch_size = args.global_batch_size // world_size

    dataset = make_dataset(args.dataset_size, args.seed)
    sampler = ResumableDistributedSampler(dataset, seed=args.seed, batch_size=batch_size)
    loader = StatefulDataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=args.num_workers
    )
    model = DistributedDataParallel(make_model(args.seed))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    latest = args.checkpoint_dir / "latest"

    epoch, step = 0, 0
    if args.resume and latest.exists():
        directory = args.checkpoint_dir / latest.read_text()
        trainer = torch.load(directory / "trainer.pt", weights_only=True)
        if trainer["world_size"] != world_size:
            raise SystemExit(
                f"the checkpoint was saved by {trainer['world_size']} processes; a loader state "
                f"belongs to one rank, so resume with as many (not {world_size})"
            )
        model.module.load_state_dict(trainer["model"])
        optimizer.load_state_dict(trainer["optimizer"])
        # The next iter(loader) starts at the batch after the saved one.
        loader.load_state_dict(torch.load(directory / f"loader-rank{rank}.pt", weights_only=True))
        epoch, step = trainer["epoch"], trainer["step"]
        if rank == 0:
            print(f"resumed at epoch {epoch}, step {step}")

    def checkpoint_now() -> None:
        name = f"step-{step:08d}"
        directory = args.checkpoint_dir / name
        directory.mkdir(parents=True, exist_ok=True)
        if rank == 0:
            # The epoch in progress (the loop variable): a resume runs the loop from it, and the
            # loader state says where in it (after its last batch: nothing left of it).
            save_file(
                {
                    "model": model.module.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch,
                    "step": step,
                    "world_size": world_size,
                },
                directory / "trainer.pt",
            )
        save_file(loader.state_dict(), directory / f"loader-rank{rank}.pt")
        dist.barrier()  # every rank's part is on disk
        if rank == 0:
            previous = latest.read_text() if latest.exists() else None
            replace_text_atomically(latest, name)
            if previous is not None and previous != name:
                shutil.rmtree(args.checkpoint_dir / previous, ignore_errors=True)

    args.log_dir.mkdir(parents=True, exist_ok=True)
    with open(args.log_dir / f"rank{rank}.jsonl", "a", buffering=1) as log:
        while epoch < args.epochs:
            sampler.set_epoch(epoch)  # a restored loader state keeps its position in this epoch
            losses: list[float] = []
            for index, x, y in loader:
                optimizer.zero_grad()
                loss = nn.functional.mse_loss(model(x), y)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                record = {"epoch": epoch, "step": step, "rank": rank, "world_size": world_size}
                log.write(json.dumps({**record, "indices": index.tolist()}) + "\n")
                step += 1
                if step % args.checkpoint_every == 0:
                    checkpoint_now()
                if step == args.stop_after:
                    if rank == 0:
                        print(f"stopped after step {step} (simulated interruption)")
                    dist.destroy_process_group()
                    return
            if rank == 0:
                mean = sum(losses) / max(len(losses), 1)
                print(f"epoch {epoch} done at step {step}, mean loss on rank 0: {mean:.4f}")
            epoch += 1
    checkpoint_now()  # the final weights
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

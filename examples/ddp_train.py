r"""Data-parallel training that stops mid-epoch and resumes exactly, on any number of processes.

A tiny model learns a synthetic regression problem with ``DistributedDataParallel`` on CPU
processes (gloo backend). Each process draws its batches from a ``ResumableDistributedSampler``.
Every ``--checkpoint-every`` optimizer steps, rank 0 writes one checkpoint file atomically: the
model, the optimizer, ``sampler.state_dict()``, the epoch and the step. ``--resume`` continues from
that file at exactly the next batch, in exactly the order the uninterrupted run would have used;
``--resume-from PATH`` continues from another file and leaves it as it is (``--checkpoint`` is
then where this run writes), so that several runs can resume from one checkpoint.

The sampler's state holds a *global* position, so the resumed job may have another number of
processes. The global batch (``--global-batch-size``) stays the same and each process takes an
equal share of it, so an optimizer step sees the same samples whatever the number of processes.

Run it on 2 processes (``torchrun`` is ``python -m torch.distributed.run``; ``--standalone`` picks
a free port)::

    torchrun --standalone --nproc_per_node 2 examples/ddp_train.py \
        --checkpoint full/ckpt.pt --log-dir full/logs

Simulate an interruption after 7 steps (the last checkpoint is then the one of step 4), then
resume on 2, 3 or 1 processes::

    torchrun --standalone --nproc_per_node 2 examples/ddp_train.py \
        --checkpoint run/ckpt.pt --log-dir run/logs-1 --stop-after 7
    torchrun --standalone --nproc_per_node 3 examples/ddp_train.py \
        --checkpoint run/ckpt.pt --log-dir run/logs-2 --resume

Each rank appends one JSON line per step to ``<log-dir>/rank<r>.jsonl``: the epoch, the step, the
rank, the number of processes and the dataset indices it trained on. Interleaving the ranks' lists
of a step item by item gives that step's global batch in the sampler's global order.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset

from resumable_samplers import ResumableDistributedSampler


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", type=Path, default=Path("checkpoint.pt"), help="written by rank 0"
    )
    parser.add_argument(
        "--log-dir", type=Path, default=Path("logs"), help="the indices each rank trained on"
    )
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    parser.add_argument(
        "--resume-from",
        type=Path,
        metavar="PATH",
        help="continue from this checkpoint, left as it is (this run writes --checkpoint)",
    )
    parser.add_argument(
        "--stop-after", type=int, metavar="STEPS", help="stop after STEPS steps, as if killed"
    )
    parser.add_argument("--checkpoint-every", type=int, default=4, metavar="STEPS")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dataset-size", type=int, default=120)
    parser.add_argument(
        "--global-batch-size", type=int, default=12, help="samples per step, over all processes"
    )
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


def save_atomically(obj: dict[str, Any], path: Path) -> None:
    """Write ``obj`` with ``torch.save`` so that ``path`` is always a complete checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic: a reader sees the old file or the new one


def main(argv: list[str] | None = None) -> None:
    """Train, checkpointing every few steps; resume from the checkpoint with ``--resume``."""
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
    # num_replicas and rank come from the process group.
    sampler = ResumableDistributedSampler(dataset, seed=args.seed, batch_size=batch_size)
    # With num_workers=0 the loader draws indices only when a batch is needed, so
    # sampler.state_dict() counts exactly the batches trained on.
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    model = DistributedDataParallel(make_model(args.seed))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)

    epoch, step = 0, 0
    source = args.resume_from or (args.checkpoint if args.resume else None)
    if args.resume_from is not None and not args.resume_from.exists():
        raise SystemExit(f"--resume-from {args.resume_from}: no such checkpoint")
    if source is not None and source.exists():
        checkpoint = torch.load(source, weights_only=True)
        model.module.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        sampler.load_state_dict(checkpoint["sampler"])  # saved with any number of processes
        epoch, step = checkpoint["epoch"], checkpoint["step"]
        if rank == 0:
            print(f"resumed at epoch {epoch}, step {step}, world size {world_size}")

    def checkpoint_now() -> None:
        if rank == 0:
            # The epoch in progress (the loop variable) with the sampler's state, the same on
            # every rank (a global position): a resume runs the loop from that epoch.
            save_atomically(
                {
                    "model": model.module.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "sampler": sampler.state_dict(),
                    "epoch": epoch,
                    "step": step,
                },
                args.checkpoint,
            )

    args.log_dir.mkdir(parents=True, exist_ok=True)
    with open(args.log_dir / f"rank{rank}.jsonl", "a", buffering=1) as log:
        while epoch < args.epochs:
            sampler.set_epoch(epoch)  # keeps a position restored for this epoch
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
    checkpoint_now()  # the final weights, and a state that resumes to "nothing left to do"
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

"""A tiny training job that checkpoints atomically and may be SIGKILLed at any moment.

Used by ``tests/test_crash_restart.py``; also runnable by hand::

    python tests/scripts/train.py --workdir /tmp/job --kind random
    # two ranks of a gloo group:
    python tests/scripts/train.py --workdir /tmp/job --kind distributed --rank 0 --port 29500 &
    python tests/scripts/train.py --workdir /tmp/job --kind distributed --rank 1 --port 29500

A synthetic regression dataset of ``N`` items, a linear model, SGD with momentum, batches of
``B`` from a ``ResumableRandomSampler`` (one process) or a ``ResumableDistributedSampler``
(``WORLD`` ranks, gradients all-reduced), ``EPOCHS`` epochs, ``DataLoader(num_workers=0)``.

Files in ``--workdir``:

- ``log{rank}.txt``: one line per trained batch, the batch's sample indices;
- ``ckpt.pt``: every ``CKPT_EVERY`` steps and at the end, written by rank 0 to a temporary file,
  fsynced and renamed over the old one: model, optimizer, ``sampler.state_dict()`` and ``steps``,
  the number of batches trained (= lines of every rank's log) when it was taken. Every rank's
  log is flushed and fsynced, and the ranks meet at a barrier, before it is written;
- ``started{rank}-{run}.txt``: written once run ``--run`` has restored its checkpoint and cut its
  log back to ``steps`` lines (the batches after the checkpoint are trained again): the step it
  resumes from;
- ``done{rank}.txt``: the total number of steps, written at the end.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.utils.data as tud
from torch import nn

from resumable_samplers import ResumableDistributedSampler, ResumableRandomSampler

N = 2000
B = 16
EPOCHS = 2
SEED = 1234
CKPT_EVERY = 6
WORLD = 2  # ranks of the distributed job


class Synthetic(tud.Dataset[tuple[int, torch.Tensor, torch.Tensor]]):
    """Item ``i`` is ``(i, x_i, y_i)`` with ``y = x @ w + noise``, the same in every process."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 8, generator=g)
        self.y = self.x @ torch.arange(1.0, 9.0) + 0.1 * torch.randn(n, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        return i, self.x[i], self.y[i]


class Momentum:
    """SGD with momentum, written out (``torch.optim`` would import ``torch._dynamo``, which
    takes seconds per process here); its buffers are part of the checkpoint."""

    def __init__(self, params: list[nn.Parameter], lr: float, beta: float = 0.9) -> None:
        self.params, self.lr, self.beta = params, lr, beta
        self.buf = [torch.zeros_like(p) for p in params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for p, b in zip(self.params, self.buf, strict=True):
            assert p.grad is not None
            b.mul_(self.beta).add_(p.grad)
            p.sub_(self.lr * b)

    def state_dict(self) -> dict[str, Any]:
        return {"buf": [b.clone() for b in self.buf]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for b, saved in zip(self.buf, state["buf"], strict=True):
            b.copy_(saved)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file, fsync it and rename it over ``path``."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def cut_log(path: Path, lines: int) -> None:
    """Keep the first ``lines`` complete lines of the log (the checkpoint's batches)."""
    data = path.read_bytes() if path.exists() else b""
    complete = data.split(b"\n")[:-1]
    if len(complete) < lines:
        raise RuntimeError(f"{path} has {len(complete)} complete lines, the checkpoint {lines}")
    write_atomic(path, b"".join(line + b"\n" for line in complete[:lines]))


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--kind", choices=("random", "distributed"), default="random")
    p.add_argument("--rank", type=int, default=int(os.environ.get("RANK", "0")))
    p.add_argument("--port", type=int, default=int(os.environ.get("MASTER_PORT", "29500")))
    p.add_argument("--run", type=int, default=0, help="run number, names the started file")
    p.add_argument("--step-sleep", type=float, default=0.0, help="seconds to sleep per step")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    torch.set_num_threads(1)
    work: Path = args.workdir
    world = WORLD if args.kind == "distributed" else 1
    rank = args.rank if world > 1 else 0
    if world > 1:
        import torch.distributed as dist

        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{args.port}",
            rank=rank,
            world_size=world,
            timeout=timedelta(seconds=30),
        )

    ds = Synthetic(N)
    torch.manual_seed(0)
    model = nn.Linear(8, 1)
    opt = Momentum(list(model.parameters()), lr=0.01)
    sampler: ResumableRandomSampler | ResumableDistributedSampler
    if world > 1:
        sampler = ResumableDistributedSampler(ds, seed=SEED, batch_size=B)  # group's W and rank
    else:
        sampler = ResumableRandomSampler(ds, seed=SEED, batch_size=B)
    loader = tud.DataLoader(ds, batch_size=B, sampler=sampler, num_workers=0)

    ckpt_path = work / "ckpt.pt"
    log_path = work / f"log{rank}.txt"
    steps, first_epoch = 0, 0
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=True)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sampler.load_state_dict(ckpt["sampler"])
        steps, first_epoch = ckpt["steps"], ckpt["sampler"]["epoch"]
    cut_log(log_path, steps)
    write_atomic(work / f"started{rank}-{args.run}.txt", f"{steps}\n".encode())

    def checkpoint(log: Any) -> None:
        log.flush()
        os.fsync(log.fileno())
        if world > 1:
            dist.barrier()  # every rank's log holds `steps` lines before the checkpoint says so
        if rank == 0:
            state = {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "sampler": sampler.state_dict(),
                "steps": steps,
            }
            save_checkpoint(ckpt_path, state)

    with open(log_path, "a") as log:
        for epoch in range(first_epoch, EPOCHS):
            sampler.set_epoch(epoch)  # keeps the position loaded for this epoch
            for idx, x, y in loader:
                opt.zero_grad()
                loss = ((model(x).squeeze(1) - y) ** 2).mean()
                loss.backward()
                if world > 1:
                    for p in model.parameters():
                        assert p.grad is not None
                        dist.all_reduce(p.grad)
                        p.grad /= world
                opt.step()
                steps += 1
                log.write(" ".join(map(str, idx.tolist())) + "\n")
                log.flush()
                if steps % CKPT_EVERY == 0:
                    checkpoint(log)
                if args.step_sleep:
                    time.sleep(args.step_sleep)
        checkpoint(log)
    write_atomic(work / f"done{rank}.txt", f"{steps}\n".encode())
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

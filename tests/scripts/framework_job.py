"""What the framework training scripts share: the data, the per-rank log of trained batches, and
the kill switch.

A job is one training run of ``N`` items in batches of ``B`` for ``EPOCHS`` epochs. Every rank
appends the sample indices of each batch it trains on to ``<workdir>/log<rank>-<attempt>.txt``, one
line per batch. With ``KILL_AFTER=k`` in the environment, the script saves the framework's
checkpoint after the ``k``-th batch this run has trained
and then SIGKILLs itself on every rank, as a machine failure would; ``--resume`` starts from that
checkpoint in a fresh process.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import torch
import torch.utils.data as tud

N = 200
B = 8
EPOCHS = 2
SEED = 0
# Token lengths of the items, for the length-grouped and token-budget samplers.
LENGTHS = [1 + (i * 37) % 50 for i in range(N)]
MAX_TOKENS = 160
SHORT = 40  # items of the second train loader of the combined recipes (5 batches)


class Synthetic(tud.Dataset[tuple[int, torch.Tensor, torch.Tensor]]):
    """Item ``i`` is ``(i, x_i, y_i)`` with ``y = x @ w + noise``, the same in every process."""

    def __init__(self, n: int = N) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 8, generator=g)
        self.y = self.x @ torch.arange(1.0, 9.0) + 0.1 * torch.randn(n, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        return i, self.x[i], self.y[i]


def kill_after() -> int | None:
    """After how many batches trained by this run the job checkpoints and kills itself."""
    value = os.environ.get("KILL_AFTER")
    return int(value) if value else None


def die() -> None:
    """SIGKILL this process: no cleanup, no flush beyond what was written already."""
    os.kill(os.getpid(), signal.SIGKILL)


class BatchLog:
    """This rank's log of the batches trained by one attempt (one run of the job)."""

    def __init__(self, workdir: Path, rank: int, attempt: int) -> None:
        self.file = open(workdir / f"log{rank}-{attempt}.txt", "a")  # noqa: SIM115

    def write(self, indices: Any, *more: Any) -> None:
        """One line: the batch's sample indices; the batches of further loaders trained in the
        same step (``None`` for none) follow, each after a ``-1``."""
        parts = [str(int(i)) for i in indices]
        for batch in more:
            parts.append("-1")
            parts.extend(str(int(i)) for i in ([] if batch is None else batch))
        self.file.write(" ".join(parts) + "\n")
        self.file.flush()


def save_weights(workdir: Path, rank: int, model: torch.nn.Module) -> None:
    torch.save(
        {k: v.detach().clone() for k, v in model.state_dict().items()}, workdir / f"final{rank}.pt"
    )

"""Samplers driving a real ``torch.utils.data.DataLoader``: resume mid-epoch, then a whole epoch.

The dataset returns its index, so a batch is the list of indices the sampler chose. Every
uninterrupted epoch is checked against torch's own order (``torch.randperm`` with
``Generator().manual_seed(seed + epoch)``, ``range(n)``, or torch's ``DistributedSampler``), and
every resumed run against the uninterrupted run's batches.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from typing import Any

import pytest
import torch
import torch.utils.data as tud

from resumable_samplers import (
    ResumableDistributedSampler,
    ResumableRandomSampler,
    ResumableSequentialSampler,
)

sys.path.insert(0, os.path.dirname(__file__))
from _workers import IndexDataset

N = 29  # not a multiple of the batch size, nor of the world size
B = 4
W = 3
SEED = 5
EPOCH = 2
LOADER_TIMEOUT = 60  # seconds a multi-process loader may wait for a batch before raising

# (kind, rank, drop_last); rank/drop_last only matter for the distributed sampler.
SAMPLERS = [
    ("random", None, False),
    ("sequential", None, False),
    *[("distributed", r, dl) for dl in (False, True) for r in range(W)],
]


def _id(case: tuple[str, int | None, bool]) -> str:
    kind, rank, drop_last = case
    if kind != "distributed":
        return kind
    return f"distributed-r{rank}" + ("-drop_last" if drop_last else "")


DATASET = IndexDataset(N)


def make_sampler(kind: str, epoch: int, rank: int | None = None, drop_last: bool = False) -> Any:
    ds = DATASET
    s: Any
    if kind == "random":
        s = ResumableRandomSampler(ds, seed=SEED, batch_size=B)
    elif kind == "sequential":
        s = ResumableSequentialSampler(ds, batch_size=B)
    else:
        s = ResumableDistributedSampler(
            ds, num_replicas=W, rank=rank, seed=SEED, drop_last=drop_last, batch_size=B
        )
    s.set_epoch(epoch)
    return s


def reference_order(
    kind: str, epoch: int, rank: int | None = None, drop_last: bool = False
) -> list[int]:
    """The order torch itself gives for this sampler and epoch."""
    if kind == "random":
        g = torch.Generator().manual_seed(SEED + epoch)
        return torch.randperm(N, generator=g).tolist()
    if kind == "sequential":
        return list(range(N))
    ref = tud.DistributedSampler(
        DATASET, num_replicas=W, rank=rank, shuffle=True, seed=SEED, drop_last=drop_last
    )
    ref.set_epoch(epoch)
    return list(ref)


def make_loader(sampler: Any, num_workers: int, **kwargs: Any) -> tud.DataLoader[int]:
    if num_workers:
        kwargs.setdefault("timeout", LOADER_TIMEOUT)
    return tud.DataLoader(
        DATASET,
        batch_size=B,
        sampler=sampler,
        num_workers=num_workers,
        **kwargs,
    )


def run_epoch(loader: tud.DataLoader[int]) -> list[list[int]]:
    out = []
    for batch in loader:
        assert isinstance(batch, torch.Tensor)
        out.append(batch.tolist())
    return out


def chunks(order: list[int]) -> list[list[int]]:
    return [order[i : i + B] for i in range(0, len(order), B)]


def flatten(batches: list[list[int]]) -> list[int]:
    return [i for b in batches for i in b]


def resume_points(num_batches: int) -> list[int]:
    """0, 1, a middle batch, the last batch, exactly past the end, and well past the end."""
    return sorted({0, 1, num_batches // 2, num_batches - 1, num_batches, num_batches + 3})


@pytest.mark.timeout(120)
@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("case", SAMPLERS, ids=_id)
def test_resume_then_whole_next_epoch(case: tuple[str, int | None, bool], num_workers: int) -> None:
    kind, rank, drop_last = case
    ctx = {"multiprocessing_context": "fork"} if num_workers else {}

    # The sampler itself yields Python ints, in torch's order.
    direct = make_sampler(kind, EPOCH, rank, drop_last)
    direct_list = list(direct)
    assert all(type(i) is int for i in direct_list)
    ref = reference_order(kind, EPOCH, rank, drop_last)
    ref_next = reference_order(kind, EPOCH + 1, rank, drop_last)
    assert direct_list == ref

    # Uninterrupted epochs EPOCH and EPOCH + 1 through the loader, from fresh samplers.
    full = run_epoch(make_loader(make_sampler(kind, EPOCH, rank, drop_last), num_workers, **ctx))
    full_next = run_epoch(
        make_loader(make_sampler(kind, EPOCH + 1, rank, drop_last), num_workers, **ctx)
    )
    assert flatten(full) == ref
    assert full == chunks(ref)
    assert flatten(full_next) == ref_next
    assert full_next == chunks(ref_next)
    assert len(full[-1]) < B  # the epoch ends on a partial batch, so that case is covered
    assert ref != ref_next or kind == "sequential"

    for k in resume_points(len(full)):
        # Stopped after k batches: a new sampler and loader, start_iter = k, same seed/epoch.
        sampler = make_sampler(kind, EPOCH, rank, drop_last)
        sampler.start_iter = k
        loader = make_loader(sampler, num_workers, **ctx)
        assert run_epoch(loader) == full[k:], k
        assert sampler.start_iter == 0, k
        # The epoch after the resumed one is whole.
        sampler.set_epoch(EPOCH + 1)
        assert run_epoch(loader) == full_next, k


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", [SAMPLERS[0], SAMPLERS[2]], ids=_id)
def test_persistent_workers_two_epochs(case: tuple[str, int | None, bool]) -> None:
    kind, rank, drop_last = case
    full = chunks(reference_order(kind, EPOCH, rank, drop_last))
    k = len(full) // 2
    sampler = make_sampler(kind, EPOCH, rank, drop_last)
    sampler.start_iter = k
    loader = make_loader(sampler, 2, persistent_workers=True, multiprocessing_context="fork")
    assert run_epoch(loader) == full[k:]
    for epoch in (EPOCH + 1, EPOCH + 2):
        sampler.set_epoch(epoch)
        assert run_epoch(loader) == chunks(reference_order(kind, epoch, rank, drop_last)), epoch


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("method", "case"),
    [("spawn", SAMPLERS[0]), ("forkserver", SAMPLERS[3])],
    ids=["spawn-random", "forkserver-distributed-r1"],
)
def test_start_methods(method: str, case: tuple[str, int | None, bool]) -> None:
    kind, rank, drop_last = case
    if method == "forkserver":
        # The server imports torch once and forks the workers from that clean state (ignored if
        # the server already runs, e.g. started by test_distributed with the same preload).
        mp.get_context("forkserver").set_forkserver_preload(["torch", "_workers"])
    full = chunks(reference_order(kind, EPOCH, rank, drop_last))
    k = 1
    sampler = make_sampler(kind, EPOCH, rank, drop_last)
    sampler.start_iter = k
    # Persistent, so the (slow to start) workers serve both epochs.
    loader = make_loader(sampler, 2, persistent_workers=True, multiprocessing_context=method)
    assert run_epoch(loader) == full[k:]
    assert sampler.start_iter == 0
    sampler.set_epoch(EPOCH + 1)
    assert run_epoch(loader) == chunks(reference_order(kind, EPOCH + 1, rank, drop_last))

"""Elastic resume across real gloo jobs: 4 processes save mid-epoch, 2 (or 3) processes resume.

Job 1 (4 ranks, per-rank batch ``B``) consumes ``K`` batches per rank through a DataLoader; every
rank's ``state_dict()`` is gathered (they must agree) and rank 0 saves it with ``torch.save``.
Job 2 is a new group of 2 or 3 ranks with a per-rank batch that keeps the global batch
(``4 * 3 == 2 * 6 == 3 * 4``); each rank loads the file with ``torch.load(weights_only=True)`` and
runs the rest of the epoch, then the next one. Results go to files and are asserted here.

Why per-rank batches give the global sequence: a distributed sampler with ``W`` ranks gives rank
``r`` the global positions ``r, r + W, r + 2W, ...``, so its batch ``g`` (items ``j`` in
``[g*b, (g+1)*b)``) holds the positions ``r + W*j``. Over all ranks, batch ``g`` therefore covers
exactly the positions ``[g*W*b, (g+1)*W*b)``: the concatenation over ranks of batch ``g`` is the
``g``-th global batch, the same multiset of samples an optimiser step sees. Inside it, position
``W*(g*b + i) + r`` is rank ``r``'s ``i``-th item, so interleaving the ranks element by element
(``shard[p % W][p // W]``) restores the exact position order, which is what is compared.
"""

from __future__ import annotations

import functools
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.utils.data as tud

import resumable_samplers as rs

sys.path.insert(0, os.path.dirname(__file__))
import _elastic_workers
import _workers
from _workers import IndexDataset

N = 1001  # divisible by none of the world sizes 4, 2, 3
SEED = 17
EPOCH = 1
OLD_WORLD, B, K = 4, 3, 20  # job 1 consumes K * B * OLD_WORLD = 240 global positions
NEW_BATCH = {2: 6, 3: 4}  # per-rank batch keeping the global batch of 12
PERMUTATIONS = ["torch", "lazy"]
JOIN_SECONDS = 90


def _run_job(world: int, out_dir: Path, job: dict[str, Any]) -> list[dict[str, Any]]:
    """Run ``world`` ranks of a new gloo group and return every rank's results."""
    preload = ["torch", "torch.distributed", "resumable_samplers", "_workers", "_elastic_workers"]
    work = functools.partial(_elastic_workers.elastic_work, job)
    return _workers.run_gloo_job(world, out_dir, work, preload, JOIN_SECONDS)


def _job(phase: str, state_dir: Path, batch_size: int) -> dict[str, Any]:
    return {
        "phase": phase,
        "n": N,
        "seed": SEED,
        "epoch": EPOCH,
        "batch_size": batch_size,
        "k": K,
        "permutations": PERMUTATIONS,
        "state_path": str(state_dir / "sampler-{permutation}.pt"),
    }


def _perm(permutation: str, epoch: int) -> list[int]:
    """The epoch's order P: global position p of a W-process run holds P[p mod N]."""
    if permutation == "torch":
        g = torch.Generator().manual_seed(SEED + epoch)
        return torch.randperm(N, generator=g).tolist()  # type: ignore[no-any-return]
    # The lazy order is keyed by (seed, epoch): a single-replica sampler at that epoch.
    s = rs.ResumableRandomSampler(IndexDataset(N), seed=SEED, permutation="lazy")
    s.set_epoch(epoch)
    return list(s)


def _global(shards: list[list[int]]) -> list[int]:
    """Interleave per-rank sequences back into global position order."""
    world = len(shards)
    assert len({len(s) for s in shards}) == 1
    return [shards[p % world][p // world] for p in range(world * len(shards[0]))]


def _flat(batches: list[list[int]]) -> list[int]:
    return [i for b in batches for i in b]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """Job 1: 4 ranks consume K batches each and save."""
    root = tmp_path_factory.mktemp("elastic")
    results = _run_job(OLD_WORLD, root / "job1", _job("save", root, B))
    return root, results


@pytest.mark.timeout(120)
@pytest.mark.parametrize("permutation", PERMUTATIONS)
def test_four_process_job_saves_one_global_state(
    saved: tuple[Path, list[dict[str, Any]]], permutation: str
) -> None:
    root, results = saved
    perm = _perm(permutation, EPOCH)
    if permutation == "torch":
        assert perm == rs.randperm(N, SEED + EPOCH).tolist()
    total4 = -(-N // OLD_WORLD) * OLD_WORLD
    uninterrupted = [perm[p % N] for p in range(total4)]
    if permutation == "torch":  # torch's own 4-process DistributedSampler, interleaved
        refs = []
        for r in range(OLD_WORLD):
            ref = tud.DistributedSampler(IndexDataset(N), OLD_WORLD, r, seed=SEED)
            ref.set_epoch(EPOCH)
            refs.append(list(ref))
        assert _global(refs) == uninterrupted
    for r, res in enumerate(results):
        mine = res[permutation]
        assert (mine["num_replicas"], mine["rank"]) == (OLD_WORLD, r)
        assert len(mine["batches"]) == K and all(len(b) == B for b in mine["batches"])
    consumed = _global([_flat(res[permutation]["batches"]) for res in results])
    assert consumed == uninterrupted[: K * B * OLD_WORLD]
    # Every rank saved the same state: the global position, not its own.
    states = results[0][permutation]["states"]
    assert all(res[permutation]["states"] == states for res in results)
    assert all(st == states[0] for st in states)
    assert (states[0]["epoch"], states[0]["offset"]) == (EPOCH, K * B * OLD_WORLD)
    assert states[0]["num_replicas"] == OLD_WORLD
    on_disk = torch.load(root / f"sampler-{permutation}.pt", weights_only=True)
    assert on_disk == states[0]
    assert not (root / f"sampler-{permutation}.pt.tmp").exists()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("new_world", [2, 3])
def test_smaller_job_resumes_the_global_sequence(
    saved: tuple[Path, list[dict[str, Any]]], new_world: int
) -> None:
    root, old = saved
    new_batch = NEW_BATCH[new_world]
    assert new_world * new_batch == OLD_WORLD * B  # the global batch is kept
    results = _run_job(new_world, root / f"job2-w{new_world}", _job("resume", root, new_batch))
    for permutation in PERMUTATIONS:
        perm = _perm(permutation, EPOCH)
        c = K * B * OLD_WORLD
        job1 = _global([_flat(res[permutation]["batches"]) for res in old])
        per_rank = [res[permutation]["batches"] for res in results]
        for r, res in enumerate(results):
            mine = res[permutation]
            assert (mine["num_replicas"], mine["rank"]) == (new_world, r), permutation
            assert mine["loaded"] == old[0][permutation]["states"][0], permutation
        # Every rank has the same number of batches, all full except possibly the last.
        assert len({len(b) for b in per_rank}) == 1, permutation
        for batches in per_rank:
            assert all(len(b) == new_batch for b in batches[:-1]), permutation
        job2 = _global([_flat(b) for b in per_rank])
        combined = job1 + job2
        # No sample lost or repeated: the first N positions are P itself, exactly ...
        assert combined[:N] == perm, permutation
        # ... and after them only the wrap-around padding of the new world size.
        assert len(combined) == c + -(-(N - c) // new_world) * new_world, permutation
        assert combined[N:] == [perm[p % N] for p in range(N, len(combined))], permutation
        counts = Counter(combined)
        assert set(counts) == set(range(N)), permutation
        assert sum(v - 1 for v in counts.values()) == len(combined) - N == -(N - c) % new_world
        # Global batch g of job 2 (concatenated over ranks) is global batch K + g of the
        # uninterrupted run, as a multiset, wherever it lies within the first N positions.
        gb = new_world * new_batch
        for g in range(len(per_rank[0])):
            concat = [i for batches in per_rank for i in batches[g]]
            lo = c + g * gb
            hi = min(lo + gb, len(combined))
            assert sorted(concat) == sorted(combined[lo:hi]), (permutation, g)
            if hi <= N:
                assert sorted(concat) == sorted(perm[lo:hi]), (permutation, g)
        # The following epoch is whole, sharded over the new world size.
        nxt = _perm(permutation, EPOCH + 1)
        total = -(-N // new_world) * new_world
        for r, res in enumerate(results):
            expected = [nxt[p % N] for p in range(r, total, new_world)]
            assert res[permutation]["next_epoch"] == expected, (permutation, r)
            if permutation == "torch":
                ref = tud.DistributedSampler(IndexDataset(N), new_world, r, seed=SEED)
                ref.set_epoch(EPOCH + 1)
                assert expected == list(ref), r

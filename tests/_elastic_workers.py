"""Importable rank functions for the elastic-resume gloo jobs (test_elastic.py).

Only standard library, torch and the library under test are imported here (plus the dataset from
``_workers``), so a forkserver child does not import pytest or the test modules.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.utils.data as tud
from _workers import IndexDataset


def _save_rank(job: dict[str, Any], rank: int) -> dict[str, Any]:
    """Job 1: consume ``k`` batches per rank through a DataLoader, then save the sampler state."""
    import torch.distributed as dist

    from resumable_samplers import ResumableDistributedSampler

    out: dict[str, Any] = {}
    for permutation in job["permutations"]:
        ds = IndexDataset(job["n"])
        # num_replicas and rank come from the process group.
        s = ResumableDistributedSampler(
            ds, seed=job["seed"], batch_size=job["batch_size"], permutation=permutation
        )
        s.set_epoch(job["epoch"])
        loader = tud.DataLoader(ds, batch_size=job["batch_size"], sampler=s, num_workers=0)
        it = iter(loader)
        batches = [next(it).tolist() for _ in range(job["k"])]
        state = s.state_dict()
        states: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(states, state)
        if rank == 0:
            path = job["state_path"].format(permutation=permutation)
            tmp = path + ".tmp"
            torch.save(state, tmp)
            os.replace(tmp, path)
        dist.barrier()  # the state file exists before any rank reports success
        out[permutation] = {
            "num_replicas": s.num_replicas,
            "rank": s.rank,
            "batches": batches,
            "states": states,
        }
    return out


def _resume_rank(job: dict[str, Any], rank: int) -> dict[str, Any]:
    """Job 2: load the saved state, run the rest of the epoch, then the whole next epoch."""
    from resumable_samplers import ResumableDistributedSampler

    out: dict[str, Any] = {}
    for permutation in job["permutations"]:
        state = torch.load(job["state_path"].format(permutation=permutation), weights_only=True)
        ds = IndexDataset(job["n"])
        s = ResumableDistributedSampler(
            ds, seed=job["seed"], batch_size=job["batch_size"], permutation=permutation
        )
        s.load_state_dict(state)
        s.set_epoch(job["epoch"])  # what a trainer does at the top of the epoch loop
        loader = tud.DataLoader(ds, batch_size=job["batch_size"], sampler=s, num_workers=0)
        batches = [b.tolist() for b in loader]
        s.set_epoch(job["epoch"] + 1)
        next_epoch = [i for b in loader for i in b.tolist()]
        out[permutation] = {
            "num_replicas": s.num_replicas,
            "rank": s.rank,
            "loaded": state,
            "batches": batches,
            "next_epoch": next_epoch,
        }
    return out


def elastic_work(job: dict[str, Any], rank: int, world: int) -> dict[str, Any]:
    """One rank's part of ``job["phase"]`` ("save" or "resume"), run by ``_workers.gloo_rank``."""
    run = _save_rank if job["phase"] == "save" else _resume_rank
    return run(job, rank)

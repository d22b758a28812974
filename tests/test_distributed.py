"""ResumableDistributedSampler inside a real 4-process gloo group, checked against torch.

The group runs once (module fixture); each rank builds our sampler and torch's
``DistributedSampler`` without ``num_replicas``/``rank`` and the results are gathered to rank 0
with ``all_gather_object``, written to a file and asserted here, in the pytest process. A rank
that fails writes its traceback and exits non-zero; a hung rank is terminated after a deadline.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
import _workers

WORLD = _workers.DIST_WORLD
JOIN_SECONDS = 90


def _run_group(out_dir: Path) -> list[dict[str, Any]]:
    preload = ["torch", "torch.distributed", "resumable_samplers", "_workers"]
    return _workers.run_gloo_job(WORLD, out_dir, _workers.dist_results, preload, JOIN_SECONDS)


@pytest.fixture(scope="module")
def group_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return _run_group(tmp_path_factory.mktemp("gloo"))


def _global_padded(n: int, seed: int, epoch: int, shuffle: bool, drop_last: bool) -> list[int]:
    """The global list torch's DistributedSampler builds before sharding (rebuilt here)."""
    if shuffle:
        g = torch.Generator().manual_seed(seed + epoch)
        perm = torch.randperm(n, generator=g).tolist()
    else:
        perm = list(range(n))
    if drop_last:
        return perm[: (n // WORLD) * WORLD]
    total = -(-n // WORLD) * WORLD
    out = list(perm)
    while len(out) < total:
        out += perm[: total - len(out)]
    return out


@pytest.mark.timeout(120)
def test_defaults_come_from_the_process_group(group_results: list[dict[str, Any]]) -> None:
    for r, res in enumerate(group_results):
        d = res["defaults"]
        assert d["dist_world"] == WORLD
        assert d["dist_rank"] == r == d["given_rank"]
        assert d["num_replicas"] == WORLD
        assert d["rank"] == d["dist_rank"]


@pytest.mark.timeout(120)
def test_each_rank_equals_torch(group_results: list[dict[str, Any]]) -> None:
    combos = _workers.dist_combos()
    assert set(group_results[0]["combos"]) == set(combos)
    for combo in combos:
        for r, res in enumerate(group_results):
            c = res["combos"][combo]
            assert c["ours"] == c["torch"], (combo, r)
            assert c["indices"] == c["torch"], (combo, r)
            assert c["dtype"] == "uint32", (combo, r)
            assert c["len"] == c["torch_len"] == len(c["torch"]), (combo, r)
            if c["ours"]:
                assert c["types"] == ["int"], (combo, r)


@pytest.mark.timeout(120)
def test_shards_partition_the_padded_epoch(group_results: list[dict[str, Any]]) -> None:
    for combo in _workers.dist_combos():
        n, seed, epoch, shuffle, drop_last = combo
        shards = [res["combos"][combo]["ours"] for res in group_results]
        # Equal length on every rank.
        assert len({len(s) for s in shards}) == 1, combo
        glob = _global_padded(n, seed, epoch, shuffle, drop_last)
        # Rank r's j-th index is G(r + j * W), and the multiset of all shards is G.
        for r, s in enumerate(shards):
            assert s == glob[r::WORLD], (combo, r)
        assert Counter(i for s in shards for i in s) == Counter(glob), combo
        assert all(0 <= i < n for s in shards for i in s), combo
        if drop_last or n % WORLD == 0:
            # No padding: the shards are pairwise disjoint.
            flat = [i for s in shards for i in s]
            assert len(flat) == len(set(flat)), combo
            assert len(flat) == (n // WORLD) * WORLD, combo
        else:
            # With padding the union covers the whole dataset; only the padding repeats.
            assert set().union(*map(set, shards)) == set(range(n)), combo
            flat = [i for s in shards for i in s]
            assert len(flat) - len(set(flat)) == -(-n // WORLD) * WORLD - n, combo


@pytest.mark.timeout(120)
def test_resume_in_group_equals_torch_tail(group_results: list[dict[str, Any]]) -> None:
    resume0 = group_results[0]["resume"]
    assert resume0
    for key in resume0:
        n, seed, epoch, shuffle, drop_last, b, k = key
        tails = []
        for r, res in enumerate(group_results):
            c = res["resume"][key]
            assert c["ours"] == c["torch"][k * b :], (key, r)
            assert c["indices"] == c["torch"][k * b :], (key, r)
            assert c["len"] == len(c["torch"]), (key, r)
            if c["ours"] or c["next"]:
                assert c["types"] == ["int"], (key, r)
            tails.append(c["ours"])
        # Globally the ranks continue with the contiguous block G[k*b*W:] (contract 1.5).
        glob = _global_padded(n, seed, epoch, shuffle, drop_last)
        rest = glob[k * b * WORLD :]
        for r, t in enumerate(tails):
            assert t == rest[r::WORLD], (key, r)
    # The sweep did include resuming past the end (which yields nothing).
    assert any(not c["ours"] for c in resume0.values())


@pytest.mark.timeout(120)
def test_epoch_after_resume_is_whole(group_results: list[dict[str, Any]]) -> None:
    for key in group_results[0]["resume"]:
        for r, res in enumerate(group_results):
            c = res["resume"][key]
            assert c["start_iter_after"] == 0, (key, r)
            assert c["next"] == c["torch_next"], (key, r)

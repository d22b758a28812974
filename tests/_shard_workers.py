"""The work of one rank of a gloo job with ResumableShardSampler (see tests/test_shards.py)."""

from __future__ import annotations

from typing import Any

SIZES = [13, 0, 7, 21, 4, 9, 30, 2, 11, 16]
STOP = 5


def shard_results(rank: int, world: int) -> dict[str, Any]:
    """A sampler that takes its rank from the group: its whole epoch 1, and a run stopped after
    ``STOP`` indices with its state."""
    from resumable_samplers import ResumableShardSampler

    def make() -> ResumableShardSampler:
        s = ResumableShardSampler(SIZES, window=3, seed=5, batch_size=1)
        s.set_epoch(1)
        return s

    s = make()
    whole = list(s)
    stopped = make()
    it = iter(stopped)
    head = [next(it) for _ in range(STOP)]
    return {
        "replicas": (s.num_replicas, s.rank),
        "whole": whole,
        "head": head,
        "state": stopped.state_dict(),
    }

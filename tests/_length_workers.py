"""Work of one rank of the length-grouping gloo job (``tests/test_length.py``)."""

from __future__ import annotations

from typing import Any

LENGTHS = [(i * 37) % 23 + 1 for i in range(103)]


def length_ranks(rank: int, world: int) -> dict[str, Any]:
    """Both samplers built without ``num_replicas``/``rank``, as under torchrun."""
    import resumable_samplers as rs

    grouped = rs.ResumableLengthGroupedSampler(LENGTHS, 4, seed=3)
    grouped.set_epoch(1)
    budget = rs.ResumableTokenBudgetBatchSampler(LENGTHS, 60, seed=3)
    budget.set_epoch(1)
    return {
        "replicas": (grouped.num_replicas, grouped.rank, budget.num_replicas, budget.rank),
        "grouped": list(grouped),
        "budget": list(budget),
    }

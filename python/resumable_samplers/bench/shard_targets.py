"""Section ``s``, sharded datasets: the targets of ``ResumableShardSampler`` and their verdict.

The targets (listed in ``docs/benchmarks.md``, section "Performance targets"):

- ``shard_first_index``: from construction to the first index of an epoch, fresh, after a
  resume and after an elastic resume from 8 to 6 ranks, in under 50 ms at n = 1e9 samples in
  K = 1e5 shards;
- ``shard_open``: at most ``window`` shards open at a time on every rank (a shard is open from
  the first to the last of its samples in the rank's epoch), at any n;
- ``shard_loads``: over all ranks an epoch reads at most K + 2W shards (W ranks), at any n.

The measurements themselves and the comparison with Mosaic Streaming are in
:mod:`~resumable_samplers.bench.shard_cases`.
"""

from __future__ import annotations

from typing import Any

from resumable_samplers.bench.shard_cases import SAMPLES_PER_SHARD, WINDOW
from resumable_samplers.bench.spec import Outcome, format_n
from resumable_samplers.bench.targets import row, summarize

SHARD_FIRST_MAX_S = 50e-3
TARGET_SHARD_N = 10**9
TARGET_SHARD_K = TARGET_SHARD_N // SAMPLES_PER_SHARD

TARGETS: dict[str, str] = {
    "shard_first_index": "ResumableShardSampler from construction to the first index (fresh, "
    f"resumed, elastic 8 -> 6) < {SHARD_FIRST_MAX_S * 1e3:g} ms "
    f"(n = {format_n(TARGET_SHARD_N)}, K = {format_n(TARGET_SHARD_K)} shards)",
    "shard_open": f"at most window = {WINDOW} shards open at a time on every rank (any n)",
    "shard_loads": "at most K + 2W shard loads per epoch over the W ranks (any n)",
}
"""The targets of section ``s``, by key."""

_CASE_OF = {
    "shard_first_index": "shard_first",
    "shard_open": "shard_locality",
    "shard_loads": "shard_locality",
}
_FIRST = (
    ("first_index_s", "construction to the first index of epoch 1"),
    ("resume_s", "construction + load_state_dict (50%) to the first index"),
    ("elastic_s", "the same, resumed elastically 8 -> 6 ranks"),
)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def _first_rows(o: Outcome) -> list[dict[str, Any]]:
    n, m = o.spec.n, o.metrics
    at_size = n == TARGET_SHARD_N and m.get("shards") == TARGET_SHARD_K
    return [
        row(
            f"ours, K = {m.get('shards')}: {what}",
            n,
            _ms(m[metric]),
            value=m[metric],
            unit="s",
            threshold=f"< {SHARD_FIRST_MAX_S * 1e3:g} ms",
            passed=m[metric] < SHARD_FIRST_MAX_S,
            at_target_size=at_size,
            key="shard_first_index",
        )
        for metric, what in _FIRST
    ]


def _locality_rows(o: Outcome) -> list[dict[str, Any]]:
    n, m = o.spec.n, o.metrics
    return [
        row(
            f"ours, K = {m['shards']}: most shards open at once on a rank",
            n,
            str(m["max_open"]),
            value=m["max_open"],
            threshold=f"<= {m['window']} (window)",
            passed=m["max_open"] <= m["window"],
            key="shard_open",
        ),
        row(
            f"ours, K = {m['shards']}: shard loads in the epoch over the ranks",
            n,
            str(m["loads"]),
            value=m["loads"],
            threshold=f"<= {m['load_bound']} (K + 2W)",
            passed=m["loads"] <= m["load_bound"],
            key="shard_loads",
        ),
    ]


def shards(outcomes: list[Outcome]) -> dict[str, Any]:
    """Section s's target rows (ours only; Mosaic's numbers are in its tables) and their verdict
    on :data:`TARGETS` (the shape of :func:`~resumable_samplers.bench.targets.lazy_at_scale`)."""
    runs = [o for o in outcomes if o.spec.section == "s"]
    rows: list[dict[str, Any]] = []
    for o in runs:
        if o.spec.impl != "ours":
            continue
        if o.status != "ok":
            rows.append(row(f"{o.spec.case} ours", o.spec.n, f"{o.status}: {o.reason}"))
        elif o.spec.case == "shard_first":
            rows += _first_rows(o)
        elif o.spec.case == "shard_locality":
            rows += _locality_rows(o)

    def why(key: str) -> str:
        measured = [r for r in rows if r["key"] == key and r["passed"] is not None]
        if measured:
            sizes = ", ".join(sorted({format_n(r["n"]) for r in measured}))
            return (
                f"measured at n = {sizes}, the target is stated at n = "
                f"{format_n(TARGET_SHARD_N)} (K = {format_n(TARGET_SHARD_K)})"
            )
        ran = [o for o in runs if o.spec.case == _CASE_OF[key] and o.spec.impl == "ours"]
        if not ran:
            return "not in this run"
        return "; ".join(f"{o.status} at n = {format_n(o.spec.n)}: {o.reason}" for o in ran)

    return summarize(rows, TARGETS, why, bool(runs))

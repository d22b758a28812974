"""Section ``h``, length grouping: its rows, against transformers, and its targets.

The targets (listed in ``docs/benchmarks.md``, section "Performance targets"):

- ``length_memory``: an epoch of ``ResumableLengthGroupedSampler`` or
  ``ResumableTokenBudgetBatchSampler`` needs under 8 bytes of memory per sample beyond the
  mapped lengths, at n = 1e8;
- ``length_vs_transformers``: the length-grouped epoch (to its first index) is at least 10x
  faster than transformers' ``LengthGroupedSampler``, at n = 1e7.
"""

from __future__ import annotations

from typing import Any

from resumable_samplers.bench.spec import (
    LENGTH_BATCH_SIZE,
    LENGTH_MAX_TOKENS,
    Outcome,
    format_mib,
    format_n,
    format_seconds,
)
from resumable_samplers.bench.targets import row, summarize

LENGTH_MAX_BYTES_PER_SAMPLE = 8.0
TARGET_LENGTH_N = 10**8
TRANSFORMERS_MIN_RATIO = 10.0
TARGET_TRANSFORMERS_N = 10**7

TARGETS: dict[str, str] = {
    "length_memory": "an epoch of the length-grouped or token-budget sampler < "
    f"{LENGTH_MAX_BYTES_PER_SAMPLE:g} bytes a sample beyond the lengths "
    f"(n = {format_n(TARGET_LENGTH_N)})",
    "length_vs_transformers": f"length-grouped epoch >= {TRANSFORMERS_MIN_RATIO:g}x faster than "
    f"transformers' LengthGroupedSampler (n = {format_n(TARGET_TRANSFORMERS_N)})",
}
"""The targets of section ``h``, by key."""

NAMES = {
    "ours": f"ResumableLengthGroupedSampler(lengths, {LENGTH_BATCH_SIZE})",
    "budget": f"ResumableTokenBudgetBatchSampler(lengths, {LENGTH_MAX_TOKENS})",
    "transformers": f"transformers LengthGroupedSampler({LENGTH_BATCH_SIZE}, lengths=list)",
}


def _s(seconds: float) -> str:
    return f"{format_seconds(seconds)} s"


def _epoch_rows(o: Outcome, ours: Outcome | None) -> list[dict[str, Any]]:
    n, m, name = o.spec.n, o.metrics, NAMES[o.spec.impl]
    rows: list[dict[str, Any]] = []
    if "construct_s" in m:
        rows.append(row(f"{name}: construct", n, _s(m["construct_s"]), value=m["construct_s"]))
    rows.append(
        row(
            f"{name}: first epoch, to its first index",
            n,
            _s(m["first_epoch_s"]),
            value=m["first_epoch_s"],
            unit="s",
        )
    )
    extra = o.rss.get("extra")
    if isinstance(extra, int):
        per = extra / n
        judged = o.spec.impl in ("ours", "budget")
        rows.append(
            row(
                f"{name}: extra RSS of the first epoch",
                n,
                f"{format_mib(extra)} MiB, {per:.2f} B/sample",
                value=per,
                unit="B/sample",
                threshold=f"< {LENGTH_MAX_BYTES_PER_SAMPLE:g} B/sample" if judged else None,
                passed=per < LENGTH_MAX_BYTES_PER_SAMPLE if judged else None,
                at_target_size=n == TARGET_LENGTH_N,
                key="length_memory" if judged else None,
            )
        )
    if "batches" in m:
        rows.append(row(f"{name}: batches in the epoch", n, str(m["batches"]), value=m["batches"]))
    if o.spec.impl == "transformers" and ours is not None and ours.metrics["first_epoch_s"] > 0:
        ratio = m["first_epoch_s"] / ours.metrics["first_epoch_s"]
        rows.append(
            row(
                "first epoch: transformers / ours",
                n,
                f"{ratio:.1f}x",
                value=ratio,
                unit="x",
                threshold=f">= {TRANSFORMERS_MIN_RATIO:g}x",
                passed=ratio >= TRANSFORMERS_MIN_RATIO,
                at_target_size=n == TARGET_TRANSFORMERS_N,
                key="length_vs_transformers",
            )
        )
    return rows


def _resume_rows(o: Outcome, ours: Outcome | None) -> list[dict[str, Any]]:
    n, m, name = o.spec.n, o.metrics, NAMES[o.spec.impl]
    how = "epoch and skip" if o.spec.impl == "transformers" else "load_state_dict + next"
    rows = [
        row(
            f"{name}: resumed at 50% in a fresh process ({how})",
            n,
            _s(m["resume_s"]),
            value=m["resume_s"],
            unit="s",
        )
    ]
    if o.spec.impl == "transformers" and ours is not None and ours.metrics["resume_s"] > 0:
        ratio = m["resume_s"] / ours.metrics["resume_s"]
        rows.append(row("resume at 50%: transformers / ours", n, f"{ratio:.1f}x", value=ratio))
    return rows


def _padding_rows(o: Outcome) -> list[dict[str, Any]]:
    m = o.metrics
    what = f"padding efficiency (real / padded tokens), batches of {LENGTH_BATCH_SIZE}"
    return [
        row(f"{what}: random order", o.spec.n, f"{m['random']:.3f}", value=m["random"]),
        row(
            f"{what}: length grouped",
            o.spec.n,
            f"{m['length_grouped']:.3f}",
            value=m["length_grouped"],
        ),
        row(
            f"padding efficiency: token budget {LENGTH_MAX_TOKENS} "
            f"({m['token_budget_mean_batch']:.1f} samples a batch)",
            o.spec.n,
            f"{m['token_budget']:.3f}",
            value=m["token_budget"],
        ),
    ]


def length_grouping(outcomes: list[Outcome]) -> dict[str, Any]:
    """Section h's rows and its verdict on :data:`TARGETS` (the shape of
    :func:`~resumable_samplers.bench.targets.lazy_at_scale`)."""
    runs = [o for o in outcomes if o.spec.section == "h"]
    ours = {
        (o.spec.case, o.spec.n): o
        for o in runs
        if o.spec.impl == "ours" and o.status == "ok" and o.spec.case != "length_padding"
    }
    rows: list[dict[str, Any]] = []
    for o in runs:
        if o.status != "ok":
            rows.append(row(f"{o.spec.case} {o.spec.impl}", o.spec.n, f"{o.status}: {o.reason}"))
        elif o.spec.case == "length_epoch":
            rows += _epoch_rows(o, ours.get((o.spec.case, o.spec.n)))
        elif o.spec.case == "length_resume":
            rows += _resume_rows(o, ours.get((o.spec.case, o.spec.n)))
        else:
            rows += _padding_rows(o)

    def why(key: str) -> str:
        measured = [r for r in rows if r["key"] == key and r["passed"] is not None]
        want = TARGET_LENGTH_N if key == "length_memory" else TARGET_TRANSFORMERS_N
        if measured:
            sizes = ", ".join(sorted({format_n(r["n"]) for r in measured}))
            return f"measured at n = {sizes}, the target is stated at n = {format_n(want)}"
        impls = ("ours", "budget") if key == "length_memory" else ("transformers",)
        ran = [o for o in runs if o.spec.case == "length_epoch" and o.spec.impl in impls]
        if not ran:
            return "not in this run"
        return "; ".join(
            f"{o.spec.impl} {o.status} at n = {format_n(o.spec.n)}: {o.reason}" for o in ran
        )

    return summarize(rows, TARGETS, why, bool(runs))

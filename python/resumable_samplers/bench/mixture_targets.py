"""Section ``g``, weighted mixtures: its rows, against Megatron and torchdata, and its targets.

The targets (listed in ``docs/benchmarks.md``, section "Performance targets"):

- ``mixture_first_index``: the first index of a mixture at any position (epoch 3 half-way),
  once the sampler is built, in under 1 ms at n = 1e9, for K = 3 and K = 1000 sources;
- ``mixture_iterate``: iterating a mixture of 3 sources costs at most 1.5x the plain lazy
  sampler per index, at n = 1e7.
"""

from __future__ import annotations

from typing import Any

from resumable_samplers.bench.spec import (
    DEFAULT_MIXTURE_ITER_N,
    MIXTURE_EPOCH,
    MIXTURE_KS,
    Outcome,
    format_mib,
    format_n,
    format_seconds,
)
from resumable_samplers.bench.targets import row, summarize

MIXTURE_FIRST_MAX_S = 1e-3
TARGET_MIXTURE_N = 10**9
MIXTURE_ITER_MAX_RATIO = 1.5
TARGET_MIXTURE_ITER_N = DEFAULT_MIXTURE_ITER_N
TARGET_MIXTURE_ITER_K = 3

TARGETS: dict[str, str] = {
    "mixture_first_index": "first index of a mixture at any position, the sampler built, "
    f"< {MIXTURE_FIRST_MAX_S * 1e3:g} ms (n = {format_n(TARGET_MIXTURE_N)}, "
    f"K = {', '.join(map(str, MIXTURE_KS))})",
    "mixture_iterate": f"iterating a mixture of {TARGET_MIXTURE_ITER_K} sources <= "
    f"{MIXTURE_ITER_MAX_RATIO:g}x the plain lazy sampler per index "
    f"(n = {format_n(TARGET_MIXTURE_ITER_N)})",
}
"""The targets of section ``g``, by key."""

_CASE_OF = {"mixture_first_index": "mixture_first", "mixture_iterate": "mixture_iterate"}


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def _not_ok(o: Outcome) -> dict[str, Any]:
    k = f", K={o.spec.k}" if o.spec.k else ""
    return row(f"{o.spec.case} {o.spec.impl}{k}", o.spec.n, f"{o.status}: {o.reason}")


def _first_rows(runs: list[Outcome]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    ours = {(o.spec.n, o.spec.k): o for o in runs if o.spec.impl == "ours" and o.status == "ok"}
    for o in runs:
        n, k, m = o.spec.n, o.spec.k, o.metrics
        if o.status != "ok":
            rows.append(_not_ok(o))
            continue
        if o.spec.impl == "ours":
            rows += [
                row(
                    f"K={k}: ours, build + first index at epoch {MIXTURE_EPOCH} half-way",
                    n,
                    f"{_ms(m['time_s'])} (build {_ms(m['build_s'])})",
                    value=m["time_s"],
                    unit="s",
                ),
                row(
                    f"K={k}: ours, first index of the built sampler (seek + next)",
                    n,
                    _ms(m["first_s"]),
                    value=m["first_s"],
                    unit="s",
                    threshold=f"< {MIXTURE_FIRST_MAX_S * 1e3:g} ms",
                    passed=m["first_s"] < MIXTURE_FIRST_MAX_S,
                    at_target_size=n == TARGET_MIXTURE_N,
                    key="mixture_first_index",
                ),
                row(
                    f"K={k}: ours, extra RSS",
                    n,
                    f"{format_mib(o.rss.get('extra'))} MiB",
                    value=o.rss.get("extra"),
                    unit="B",
                ),
            ]
            continue
        scaled = m["measured_n"] != n
        note = f" (built at n = {format_n(m['measured_n'])}, scaled)" if scaled else ""
        rows.append(
            row(
                f"K={k}: Megatron's blending index (build_blending_indices){note}",
                n,
                f"{format_seconds(m['time_s'])} s",
                value=m["time_s"],
                unit="s",
            )
        )
        if not scaled:
            rows.append(
                row(
                    f"K={k}: Megatron, extra RSS",
                    n,
                    f"{format_mib(o.rss.get('extra'))} MiB",
                    value=o.rss.get("extra"),
                    unit="B",
                )
            )
        mine = ours.get((n, k))
        if mine is not None and mine.metrics["time_s"] > 0:
            ratio = m["time_s"] / mine.metrics["time_s"]
            rows.append(
                row(f"K={k}: Megatron / ours (to the first index)", n, f"{ratio:.0f}x", value=ratio)
            )
    return rows


def _iterate_rows(runs: list[Outcome]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    plain = next((o for o in runs if o.spec.impl == "lazy" and o.status == "ok"), None)
    for o in runs:
        if o.status != "ok":
            rows.append(_not_ok(o))
            continue
        n, m = o.spec.n, o.metrics
        what = "plain lazy sampler" if o.spec.impl == "lazy" else f"mixture, K={o.spec.k}"
        rows.append(
            row(
                f"iterate an epoch as Python ints: {what}, per index",
                n,
                f"{m['ns_per_index']:.1f} ns",
                value=m["ns_per_index"],
                unit="ns",
            )
        )
        if o.spec.impl == "ours" and plain is not None and plain.spec.n == n:
            ratio = m["ns_per_index"] / plain.metrics["ns_per_index"]
            judged = o.spec.k == TARGET_MIXTURE_ITER_K
            rows.append(
                row(
                    f"iterate: mixture K={o.spec.k} / plain lazy sampler",
                    n,
                    f"{ratio:.2f}x",
                    value=ratio,
                    unit="x",
                    threshold=f"<= {MIXTURE_ITER_MAX_RATIO:g}x" if judged else None,
                    passed=ratio <= MIXTURE_ITER_MAX_RATIO if judged else None,
                    at_target_size=n == TARGET_MIXTURE_ITER_N,
                    key="mixture_iterate" if judged else None,
                )
            )
    return rows


def _restore_rows(runs: list[Outcome]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for o in runs:
        if o.status != "ok":
            rows.append(_not_ok(o))
            continue
        m = o.metrics
        rows += [
            row(
                f"torchdata MultiNodeWeightedSampler, K={o.spec.k}: restore a state saved "
                "half-way and yield",
                o.spec.n,
                _ms(m["time_s"]),
                value=m["time_s"],
                unit="s",
            ),
            row(
                f"torchdata MultiNodeWeightedSampler, K={o.spec.k}: iteration, per item",
                o.spec.n,
                f"{m['ns_per_index']:.0f} ns",
                value=m["ns_per_index"],
                unit="ns",
            ),
        ]
    return rows


def mixtures(outcomes: list[Outcome]) -> dict[str, Any]:
    """Section g's rows and its verdict on :data:`TARGETS` (the shape of
    :func:`~resumable_samplers.bench.targets.lazy_at_scale`)."""
    runs = [o for o in outcomes if o.spec.section == "g"]

    def of(case: str) -> list[Outcome]:
        return [o for o in runs if o.spec.case == case]

    rows = _first_rows(of("mixture_first"))
    rows += _iterate_rows(of("mixture_iterate")) + _restore_rows(of("mixture_restore"))

    def why(key: str) -> str:
        measured = [r for r in rows if r["key"] == key and r["passed"] is not None]
        want = TARGET_MIXTURE_N if key == "mixture_first_index" else TARGET_MIXTURE_ITER_N
        if measured:
            sizes = ", ".join(sorted({format_n(r["n"]) for r in measured}))
            return f"measured at n = {sizes}, the target is stated at n = {format_n(want)}"
        ran = [o for o in of(_CASE_OF[key]) if o.spec.impl in ("ours", "lazy")]
        if not ran:
            return "not in this run"
        return "; ".join(f"{o.status} at n = {format_n(o.spec.n)}: {o.reason}" for o in ran)

    return summarize(rows, TARGETS, why, bool(runs))

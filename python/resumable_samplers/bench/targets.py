"""The library's published performance targets for the lazy order, and the verdict on a run.

The targets (listed in ``docs/benchmarks.md``, section "Performance targets") are stated at
particular sizes: the first index at n = 1e9, 2**40 and 2**63 - 1, ``randperm`` (alone and
against ``torch.randperm(1e8)`` in the same process) and iteration at n = 1e9, the speed off a
power of two at n = 2**24 + 1, 1e7, 1e8 and 2**27 + 1, the Grain comparison at any size. A target
is *judged* only when it was measured at its stated size; a run at smaller sizes shows the same
rows, their verdicts in parentheses, as an indication only. ``resumable-samplers bench --check``
exits 1 when a judged target is missed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from resumable_samplers.bench.spec import (
    LAZY_FIRST_NS,
    MIB,
    RANK,
    WALK_NS,
    WORLD_SIZE,
    Outcome,
    format_mib,
    format_n,
    format_seconds,
)

FIRST_INDEX_MAX_S = 1e-3
RANDPERM_MAX_S = 5.0
RANDPERM_OVERHEAD_MAX_BYTES = 64 * MIB
TARGET_RANDPERM_N = 10**9
RANDPERM_TORCH_MAX_RATIO = 0.6
WALK_MAX_RATIO = 2.5
ITER_OVERHEAD_MAX_S = 1.0
TARGET_ITER_N = 10**9
GRAIN_MIN_RATIO = 10.0
# "Resident memory independent of n": the iterate measurements' extra RSS may differ by this much.
RSS_SAME_TOLERANCE_BYTES = 8 * MIB

TARGETS: dict[str, str] = {
    "first_index": "first index of a lazy epoch at any n up to 2**63-1 and any resume point "
    f"< {FIRST_INDEX_MAX_S * 1e3:g} ms (n = " + ", ".join(map(format_n, LAZY_FIRST_NS)) + ")",
    "randperm_time": f"randperm({format_n(TARGET_RANDPERM_N)}, permutation='lazy') "
    f"<= {RANDPERM_MAX_S:g} s",
    "randperm_overhead": f"randperm({format_n(TARGET_RANDPERM_N)}, permutation='lazy') memory "
    f"beyond its array < {RANDPERM_OVERHEAD_MAX_BYTES // MIB} MiB",
    "randperm_vs_torch": f"randperm({format_n(TARGET_RANDPERM_N)}, permutation='lazy') "
    f"<= {RANDPERM_TORCH_MAX_RATIO:g}x torch.randperm({format_n(TARGET_RANDPERM_N // 10)}) "
    "in the same run",
    "off_power_of_two": "lazy order per index off a power of two <= "
    f"{WALK_MAX_RATIO:g}x its time at the power of two below (n = "
    + ", ".join(map(format_n, WALK_NS))
    + ")",
    "iterate_overhead": f"iterating one rank of {WORLD_SIZE} at n = {format_n(TARGET_ITER_N)} "
    f"costs < {ITER_OVERHEAD_MAX_S:g} s beyond making as many Python ints",
    "grain": f"lazy core throughput >= {GRAIN_MIN_RATIO:g}x Grain's index_shuffle",
}
"""The targets every full run judges, by key."""

TARGET_CASES: dict[str, str] = {
    "first_index": "first",
    "randperm_time": "randperm",
    "randperm_overhead": "randperm",
    "randperm_vs_torch": "randperm",
    "off_power_of_two": "walk",
    "iterate_overhead": "iterate",
    "grain": "grain",
}
"""The case of section ``e`` that measures each target."""


def row(
    measurement: str,
    n: int | None,
    shown: str,
    *,
    value: float | None = None,
    unit: str | None = None,
    threshold: str | None = None,
    passed: bool | None = None,
    at_target_size: bool = True,
    key: str | None = None,
) -> dict[str, Any]:
    """One row of a targets table: what was measured, at which ``n``, the value as shown, and,
    for a row that decides a target, its threshold, verdict and the target's ``key``."""
    return {
        "measurement": measurement,
        "n": n,
        "value": value,
        "unit": unit,
        "shown": shown,
        "threshold": threshold,
        "passed": passed,
        "at_target_size": at_target_size,
        "key": key,
    }


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def _ns(value: float) -> str:
    return f"{value:.0f} ns" if value >= 100 else f"{value:.3g} ns"


def _scale_rows(o: Outcome) -> list[dict[str, Any]]:
    """The rows of the section e table for one outcome."""
    m, n = o.metrics, o.spec.n
    if o.status != "ok":
        name = {
            "first": "first index",
            "randperm": "randperm lazy",
            "walk": "lazy order off a power of two",
            "grain": "grain vs lazy",
        }
        what = name.get(o.spec.case, f"iterate rank {RANK}/{WORLD_SIZE}")
        return [row(what, None if o.spec.case == "first" else n, f"{o.status}: {o.reason}")]
    if o.spec.case == "first":
        limit = f"< {_ms(FIRST_INDEX_MAX_S)}"
        rows = [
            row(
                f"first index, rank {RANK}/{WORLD_SIZE}, start_iter={c['start_iter']} "
                f"({c['where']})",
                c["n"],
                _ms(c["time_s"]),
                value=c["time_s"],
                unit="s",
                threshold=limit,
                passed=c["time_s"] < FIRST_INDEX_MAX_S,
            )
            for c in m["cases"]
        ]
        worst = m["max_time_s"]
        rows.append(
            row(
                f"first index, max over the {len(m['cases'])} cases",
                None,
                _ms(worst),
                value=worst,
                unit="s",
                threshold=limit,
                passed=worst < FIRST_INDEX_MAX_S,
                key="first_index",
            )
        )
        return rows
    if o.spec.case == "randperm":
        at_size = n == TARGET_RANDPERM_N
        rows = [
            row(
                "randperm lazy: time",
                n,
                f"{format_seconds(m['time_s'])} s",
                value=m["time_s"],
                unit="s",
                threshold=f"<= {RANDPERM_MAX_S:g} s",
                passed=m["time_s"] <= RANDPERM_MAX_S,
                at_target_size=at_size,
                key="randperm_time",
            )
        ]
        extra = o.rss.get("extra")
        if isinstance(extra, int):
            over = extra - m["array_bytes"]
            rows.append(
                row(
                    "randperm lazy: overhead (extra RSS - "
                    f"{format_mib(m['array_bytes'])} MiB array)",
                    n,
                    f"{format_mib(over)} MiB",
                    value=over,
                    unit="B",
                    threshold=f"< {RANDPERM_OVERHEAD_MAX_BYTES // MIB} MiB",
                    passed=over < RANDPERM_OVERHEAD_MAX_BYTES,
                    at_target_size=at_size,
                    key="randperm_overhead",
                )
            )
        if m.get("torch_s") is not None:
            tn = m["torch_n"]
            rows.append(
                row(
                    f"torch.randperm({format_n(tn)}), same process, in turn",
                    tn,
                    f"{format_seconds(m['torch_s'])} s",
                    value=m["torch_s"],
                    unit="s",
                )
            )
            rows.append(
                row(
                    f"randperm lazy n={format_n(n)} / torch.randperm n={format_n(tn)}",
                    n,
                    f"{m['torch_ratio']:.2f}x",
                    value=m["torch_ratio"],
                    unit="x",
                    threshold=f"<= {RANDPERM_TORCH_MAX_RATIO:g}x",
                    passed=m["torch_ratio"] <= RANDPERM_TORCH_MAX_RATIO,
                    at_target_size=at_size,
                    key="randperm_vs_torch",
                )
            )
        return rows
    if o.spec.case == "walk":
        at_size = tuple(c["n"] for c in m["cases"]) == WALK_NS
        rows = [
            row(
                f"lazy per index n={format_n(c['n'])}: {_ns(c['ns_per_index'])} vs "
                f"{_ns(c['power_of_two_ns_per_index'])} at 2**{c['power_of_two'].bit_length() - 1}",
                c["n"],
                f"{c['ratio']:.2f}x",
                value=c["ratio"],
                unit="x",
            )
            for c in m["cases"]
        ]
        rows.append(
            row(
                f"lazy per index off / at a power of two, max over {len(m['cases'])} sizes",
                None,
                f"{m['max_ratio']:.2f}x",
                value=m["max_ratio"],
                unit="x",
                threshold=f"<= {WALK_MAX_RATIO:g}x",
                passed=m["max_ratio"] <= WALK_MAX_RATIO,
                at_target_size=at_size,
                key="off_power_of_two",
            )
        )
        return rows
    if o.spec.case == "iterate":
        at_size = n == TARGET_ITER_N
        what = f"iterate rank {RANK}/{WORLD_SIZE} ({format_n(m['count'])} indices)"
        return [
            row(
                f"{what}: sampler",
                n,
                f"{format_seconds(m['time_s'])} s",
                value=m["time_s"],
                unit="s",
            ),
            row(
                f"{what}: baseline, as many Python ints",
                n,
                f"{format_seconds(m['baseline_s'])} s",
                value=m["baseline_s"],
                unit="s",
            ),
            row(
                f"{what}: overhead = sampler - baseline",
                n,
                f"{format_seconds(m['overhead_s'])} s",
                value=m["overhead_s"],
                unit="s",
                threshold=f"< {ITER_OVERHEAD_MAX_S:g} s",
                passed=m["overhead_s"] < ITER_OVERHEAD_MAX_S,
                at_target_size=at_size,
                key="iterate_overhead",
            ),
            row(
                f"{what}: extra RSS",
                n,
                f"{format_mib(o.rss.get('extra'))} MiB",
                value=o.rss.get("extra"),
                unit="B",
            ),
        ]
    # grain
    if not isinstance(m.get("ratio"), int | float):
        return [row("grain vs lazy", n, "no ratio (ours took no measurable time)")]
    cpus = m.get("ours_cpus")
    rows = [
        row(
            f"grain index_shuffle (rounds={m['grain_rounds']}), per call "
            f"({format_n(m['grain_calls'])} calls)",
            n,
            _ns(m["grain_ns_per_call"]),
            value=m["grain_ns_per_call"],
            unit="ns",
        ),
        row(
            f"ours: randperm lazy, per index ({cpus} CPUs)",
            n,
            _ns(m["ours_ns_per_index"]),
            value=m["ours_ns_per_index"],
            unit="ns",
        ),
    ]
    if m.get("ours_single_thread_ns_per_index") is not None:
        rows.append(
            row(
                "ours: randperm lazy, per index (1 thread)",
                n,
                _ns(m["ours_single_thread_ns_per_index"]),
                value=m["ours_single_thread_ns_per_index"],
                unit="ns",
            )
        )
    rows.append(
        row(
            f"grain / ours ({cpus} CPUs)",
            n,
            f"{m['ratio']:.1f}x",
            value=m["ratio"],
            unit="x",
            threshold=f">= {GRAIN_MIN_RATIO:g}x",
            passed=m["ratio"] >= GRAIN_MIN_RATIO,
            key="grain",
        )
    )
    if m.get("ratio_single_thread") is not None:
        rows.append(
            row(
                "grain / ours (1 thread)",
                n,
                f"{m['ratio_single_thread']:.1f}x",
                value=m["ratio_single_thread"],
                unit="x",
            )
        )
    return rows


def lazy_at_scale(outcomes: list[Outcome]) -> dict[str, Any]:
    """Section e against the performance targets: table rows and an overall verdict.

    Returns a dict with:

    - ``passed``: ``False`` when a target measured at its stated size was missed, ``True`` when
      every target of :data:`TARGETS` was measured at its size and met, else ``None``.
    - ``missed``: the keys of the targets missed at their size.
    - ``not_judged``: the keys of the targets not measured at their size, and ``why``: for each
      of them, what was measured instead (a smaller size, a skip, a failure, or nothing).
    - ``rows``: the table's rows. Rows measured at other sizes keep their own ``passed`` with
      ``at_target_size`` false; they do not count.
    """
    runs = [o for o in outcomes if o.spec.section == "e"]
    rows = [row for o in runs for row in _scale_rows(o)]
    iterated = [o for o in runs if o.spec.case == "iterate" and o.status == "ok"]
    extras: list[int] = [x for o in iterated if isinstance(x := o.rss.get("extra"), int)]
    if len(iterated) > 1 and len(extras) == len(iterated):
        spread = max(extras) - min(extras)
        sizes = ", ".join(format_n(o.spec.n) for o in iterated)
        rows.append(
            row(
                f"iterate: extra RSS spread over n = {sizes}",
                None,
                f"{format_mib(spread)} MiB",
                value=spread,
                unit="B",
                threshold=f"< {RSS_SAME_TOLERANCE_BYTES // MIB} MiB (independent of n)",
                passed=spread < RSS_SAME_TOLERANCE_BYTES,
                at_target_size=any(o.spec.n == TARGET_ITER_N for o in iterated),
                key="iterate_rss",
            )
        )
    return summarize(rows, TARGETS, lambda k: _why_not_judged(k, runs, rows), bool(runs))


def summarize(
    rows: list[dict[str, Any]],
    targets: dict[str, str],
    why: Callable[[str], str],
    ran: bool = True,
) -> dict[str, Any]:
    """The verdict of a section's rows on its ``targets``: the dict :func:`lazy_at_scale`
    describes. ``why(key)`` says what was measured instead of a target not judged."""
    judged: dict[str, bool | None] = {}  # a target of several rows is met when all of them are
    for r in (r for r in rows if r["key"] and r["at_target_size"]):
        before = judged.get(r["key"])
        if before is False or r["passed"] is False:
            judged[r["key"]] = False
        elif r["passed"] is True:
            judged[r["key"]] = True
        else:
            judged.setdefault(r["key"], None)
    passed: bool | None = None
    if any(v is False for v in judged.values()):
        passed = False
    elif all(judged.get(k) is True for k in targets):
        passed = True
    not_judged = [k for k in targets if judged.get(k) is None]
    return {
        "passed": passed if ran else None,
        "missed": [k for k, v in judged.items() if v is False],
        "not_judged": not_judged,
        "why": {k: why(k) for k in not_judged},
        "rows": rows,
    }


def _why_not_judged(key: str, runs: list[Outcome], rows: list[dict[str, Any]]) -> str:
    measured = [r for r in rows if r["key"] == key and r["passed"] is not None]
    if measured and key == "off_power_of_two":
        return "measured at smaller sizes, the target is stated at n = " + ", ".join(
            map(format_n, WALK_NS)
        )
    if measured:
        sizes = ", ".join(format_n(r["n"]) for r in measured if r["n"] is not None)
        want = TARGET_RANDPERM_N if key.startswith("randperm") else TARGET_ITER_N
        return f"measured at n = {sizes}, the target is stated at n = {format_n(want)}"
    case = TARGET_CASES[key]
    ran = [o for o in runs if o.spec.case == case]
    if not ran:
        return "not in this run"
    return "; ".join(f"{o.status} at n = {format_n(o.spec.n)}: {o.reason}" for o in ran)


def verdict(summary: dict[str, Any], targets: dict[str, str] = TARGETS) -> str:
    """One paragraph: which of ``targets`` were met, missed, or not judged, and why."""
    rows = summary["rows"]
    met = [k for k in targets if k not in summary["not_judged"] and k not in summary["missed"]]
    parts = []
    if summary["missed"]:
        names = sorted(
            {r["measurement"] for r in rows if r["passed"] is False and r["at_target_size"]}
        )
        parts.append("MISSED at their stated sizes: " + "; ".join(names) + ".")
    if met:
        parts.append(f"Met at their stated sizes: {len(met)} of {len(targets)} ({', '.join(met)}).")
    if summary["not_judged"]:
        why = summary["why"]
        parts.append(
            "Not judged (not measured at their stated size): "
            + "; ".join(f"{k}: {why[k]}" for k in summary["not_judged"])
            + ". A verdict in parentheses is from a smaller size and only indicative."
        )
    return "Performance targets: " + " ".join(parts)


def scale_table(summary: dict[str, Any], targets: dict[str, str] = TARGETS) -> str:
    """The Markdown table of a section judged on targets (``e``, ``g``, ``h``, ``s``): the
    targets next to the numbers, and the verdict."""
    lines = ["| measurement | n | value | target | verdict |", "|---|---|---|---|---|"]
    for r in summary["rows"]:
        mark = {True: "met", False: "MISSED", None: ""}[r["passed"]]
        if mark and not r["at_target_size"]:
            mark = f"({mark})"
        n = format_n(r["n"]) if r["n"] is not None else ""
        lines.append(
            f"| {r['measurement']} | {n} | {r['shown']} | {r['threshold'] or ''} | {mark} |"
        )
    return "\n".join(lines) + "\n\n" + verdict(summary, targets)

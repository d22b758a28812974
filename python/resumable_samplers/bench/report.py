"""The report of a run: Markdown tables with ratios, the checks, the machine, and the files.

``write_results`` prints the report and writes ``results.json``, ``results.md`` and ``plot.png``
into the output folder.
"""

from __future__ import annotations

import json
from typing import Any

from resumable_samplers.bench.checks import checks
from resumable_samplers.bench.length_targets import TARGETS as LENGTH_TARGETS
from resumable_samplers.bench.length_targets import length_grouping
from resumable_samplers.bench.machine import describe, metadata
from resumable_samplers.bench.mixture_targets import TARGETS as MIXTURE_TARGETS
from resumable_samplers.bench.mixture_targets import mixtures
from resumable_samplers.bench.plan import Options
from resumable_samplers.bench.plot import RATIO_OF, plot
from resumable_samplers.bench.runner import BENCH_EXTRA
from resumable_samplers.bench.shard_cases import shard_table
from resumable_samplers.bench.shard_targets import TARGETS as SHARD_TARGETS
from resumable_samplers.bench.shard_targets import shards
from resumable_samplers.bench.spec import (
    CASES,
    LAZY_FIRST_NS,
    MIB,
    SECTIONS,
    Outcome,
    format_mib,
    format_n,
    format_seconds,
)
from resumable_samplers.bench.targets import TARGETS, lazy_at_scale, scale_table

JUDGED: dict[str, tuple[str, dict[str, str]]] = {
    "e": ("lazy_at_scale", TARGETS),
    "g": ("mixtures", MIXTURE_TARGETS),
    "h": ("length_grouping", LENGTH_TARGETS),
    "s": ("shards", SHARD_TARGETS),
}
"""The sections judged on performance targets: their key in ``results.json`` and targets."""


def _ratio(peer: float | None, ours: float | None, floor: float = 0.0) -> str:
    if peer is None or ours is None or ours <= floor or peer <= 0:
        return "n/a"
    return f"{peer / ours:.2f}"


_COLUMNS: dict[str, list[tuple[str, str]]] = {
    # (header, metric); metric "rss.extra" etc. reads the rss dict
    "a": [("time (s)", "time_s")],
    "b": [
        ("construct (s)", "construct_s"),
        ("first index (s)", "first_index_s"),
        ("epoch (s)", "epoch_s"),
    ],
    "c": [("first index (s)", "first_index_s")],
    "d": [("time (s)", "time_s"), ("M indices/s", "indices_per_s")],
    "f": [("first batch (s)", "first_batch_s"), ("resume at 50% (s)", "resume_s")],
}
# A second ratio column: (header, metric).
_SECOND_RATIO: dict[str, tuple[str, str]] = {
    "b": ("first x ours", "first_index_s"),
    "f": ("resume x ours", "resume_s"),
}
# Memory ratios are shown only when ours needed at least this much (smaller is noise).
_RSS_FLOOR = 1 * MIB


def table(section: str, outcomes: list[Outcome]) -> str:
    """The Markdown table of one measurement, with peer / ours ratios."""
    rows = [o for o in outcomes if o.spec.section == section and o.spec.case == CASES[section]]
    columns = _COLUMNS[section]
    key = RATIO_OF[section]
    header = ["n", "impl", *(h for h, _ in columns)]
    header += ["time x ours", "extra RSS (MiB)", "RSS x ours", "base RSS (MiB)"]
    second = _SECOND_RATIO.get(section)
    if second is not None:
        header.insert(header.index("time x ours") + 1, second[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    ours_by_n = {o.spec.n: o for o in rows if o.spec.impl == "ours" and o.status == "ok"}
    for o in rows:
        cells = [format_n(o.spec.n), o.spec.impl]
        if o.status != "ok":
            cells.append(f"{o.status}: {o.reason}")
            cells += [""] * (len(header) - len(cells))
            lines.append("| " + " | ".join(cells) + " |")
            continue
        ours = ours_by_n.get(o.spec.n)
        for _, metric in columns:
            value = o.metrics.get(metric)
            if metric == "indices_per_s":
                cells.append(f"{value / 1e6:.2f}" if isinstance(value, int | float) else "-")
            else:
                cells.append(format_seconds(value))
        om = ours.metrics if ours else {}
        cells.append(_ratio(o.metrics.get(key), om.get(key)))
        if second is not None:
            cells.append(_ratio(o.metrics.get(second[1]), om.get(second[1])))
        extra = o.rss.get("extra")
        cells.append(format_mib(extra))
        cells.append(_ratio(extra, ours.rss.get("extra") if ours else None, _RSS_FLOOR))
        cells.append(format_mib(o.rss.get("base")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_text(outcomes: list[Outcome], result: dict[str, Any]) -> str:
    """All tables and checks, as Markdown."""
    meta = result["meta"]
    parts = [describe(meta), sizes_text(meta)]
    for section in SECTIONS:
        if any(o.spec.section == section for o in outcomes):
            if section == "s":
                body = shard_table(outcomes) + "\n\n" + scale_table(result["shards"], SHARD_TARGETS)
            elif section in JUDGED:
                key, targets = JUDGED[section]
                body = scale_table(result[key], targets)
            else:
                body = table(section, outcomes)
            parts.append(f"### ({section}) {SECTIONS[section]}\n\n{body}")
    c = result["checks"]
    check_lines = [
        f"- bit identity with torch.randperm: {_check_text(c['bit_identity'])}",
        f"- distributed sampler identical to torch's: {_check_text(c['sampler_identity'])}",
        f"- same first index across implementations: {_check_text(c['same_first_index'])}",
        f"- lazy sampler agrees with lazy randperm: {_check_text(c['lazy_agreement'])}",
    ]
    parts.append("### checks\n\n" + "\n".join(check_lines))
    notes = (
        f"Times are wall seconds inside the child (best of {meta['repeat']}). *extra RSS* is "
        "the child's peak resident memory while measuring minus its *base RSS* after imports "
        "and setup (torch imported; helios children also import helios-ml; the list loader "
        "holds its prebuilt list)."
    )
    if any(o.spec.section not in JUDGED for o in outcomes):
        notes += (
            " In the tables, ratios are row / ours, where ours is the torch order; the lazy row "
            "is ours with permutation='lazy' (a different order); memory ratios are n/a when "
            "ours needed under 1 MiB."
        )
    parts.append(notes)
    missing = sorted({f"{o.spec.impl} ({o.reason})" for o in outcomes if o.status == "unavailable"})
    if missing:
        parts.append(f"Not measured: {', '.join(missing)}. To measure every peer: {BENCH_EXTRA}.")
    return "\n\n".join(parts) + "\n"


def sizes_text(meta: dict[str, Any]) -> str:
    """Which sizes each section measured."""
    sizes = ", ".join(map(format_n, meta["sizes"]))
    parts = []
    for section in meta["sections"]:
        if section in "abcf":
            parts.append(f"({section}) n = {sizes}")
        elif section == "d":
            parts.append(f"(d) n = {format_n(meta['loader_n'])}")
        elif section == "g":
            parts.append(
                "(g) first index n = "
                + ", ".join(map(format_n, meta["mixture_n"]))
                + f", iterate n = {format_n(meta['mixture_iter_n'])}"
            )
        elif section == "h":
            parts.append("(h) n = " + ", ".join(map(format_n, meta["length_n"])))
        elif section == "s":
            parts.append("(s) see its table")
        else:
            parts.append(
                "(e) first index n = "
                + ", ".join(map(format_n, LAZY_FIRST_NS))
                + f", randperm n = {format_n(meta['lazy_randperm_n'])}, iterate n = "
                + ", ".join(map(format_n, meta["lazy_iter_n"]))
                + f", Grain comparison n = {format_n(meta['grain_n'])}"
            )
    return "Sizes measured: " + "; ".join(parts) + "."


def _check_text(check: dict[str, Any]) -> str:
    if check["passed"] is True:
        return "passed" + (f" (n up to {format_n(check['max_n'])})" if check.get("max_n") else "")
    if check["passed"] is False:
        return "FAILED"
    unfinished = [r for r in check.get("runs", []) if r["status"] not in ("ok", "skipped")]
    if unfinished:
        return "incomplete: " + "; ".join(
            f"n={format_n(r['n'])} {r['status']}: {r['reason']}" for r in unfinished
        )
    return "not run"


def write_results(
    outcomes: list[Outcome],
    options: Options,
    started: float,
    load_at_start: list[float] | None = None,
    *,
    interrupted: bool = False,
) -> dict[str, Any]:
    """Print the report; write ``results.json``, ``results.md`` and ``plot.png``; return the result.

    Args:
        outcomes: the measurements, in the order they ran.
        options: the run's options (the output folder, whether to plot).
        started: the run's start, as ``time.time()``.
        load_at_start: the load average when the run started.
        interrupted: whether Ctrl-C ended the run early.
    """
    result = {
        "meta": {**metadata(options, started, load_at_start), "interrupted": interrupted},
        "checks": checks(outcomes),
        "lazy_at_scale": lazy_at_scale(outcomes),
        "mixtures": mixtures(outcomes),
        "length_grouping": length_grouping(outcomes),
        "shards": shards(outcomes),
        "results": [o.to_dict() for o in outcomes],
    }
    text = report_text(outcomes, result)
    print(text)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (options.out / "results.md").write_text(text)
    note = (
        plot(outcomes, options.out / "plot.png") if options.plot else "plot: not drawn (--no-plot)"
    )
    print(note if note else f"plot: {options.out / 'plot.png'}")
    print(f"results: {options.out / 'results.json'}, {options.out / 'results.md'}")
    return result

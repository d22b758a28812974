"""``plot.png``: time and extra memory against ``n``, log-log, for sections ``a`` to ``c``.

matplotlib is imported only here, and only when a plot is drawn; without it the report says
once how to get the plot.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from resumable_samplers.bench.spec import CASES, MIB, SECTIONS, Outcome

RATIO_OF: dict[str, str] = {
    "a": "time_s",
    "b": "epoch_s",
    "c": "first_index_s",
    "d": "time_s",
    "f": "first_batch_s",
}
"""The metric each section's ratios (and the plot's time axis) compare."""


_COLORS: dict[str, str] = {
    "ours": "C0",
    "torch": "C1",
    "numpy": "C2",
    "helios": "C3",
    "list": "C4",
    "lazy": "C5",
}


def plot(outcomes: list[Outcome], path: Path) -> str | None:
    """Draw time and extra memory against ``n`` (log-log) for ``a``-``c``; say why not if not."""
    try:
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return (
            "plot: not drawn, matplotlib is not installed (pip install matplotlib, or the "
            "bench extra)"
        )
    sections = [s for s in ("a", "b", "c") if any(o.spec.section == s for o in outcomes)]
    if not sections:
        return "nothing to plot (only the DataLoader measurement ran)"
    fig, axes = plt.subplots(2, len(sections), figsize=(5 * len(sections), 8), squeeze=False)
    for col, section in enumerate(sections):
        series: dict[str, list[Outcome]] = {}
        for o in outcomes:
            if o.spec.section == section and o.spec.case == CASES[section] and o.status == "ok":
                series.setdefault(o.spec.impl, []).append(o)
        for impl, runs in series.items():
            runs.sort(key=lambda o: o.spec.n)
            ns = [o.spec.n for o in runs]
            times = [o.metrics.get(RATIO_OF[section]) for o in runs]
            mems = [o.rss.get("extra", 0) / MIB for o in runs]
            style = {"marker": "o", "label": impl, "color": _COLORS.get(impl)}
            axes[0][col].plot(ns, times, **style)
            axes[1][col].plot(ns, [max(m, 1e-2) for m in mems], **style)
        what = {"a": "time (s)", "b": "full epoch (s)", "c": "time to first index (s)"}[section]
        axes[0][col].set_title(f"({section}) {SECTIONS[section]}", fontsize=9)
        axes[0][col].set_ylabel(what)
        axes[1][col].set_ylabel("extra peak RSS (MiB)")
        for row in (0, 1):
            ax = axes[row][col]
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("n")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None

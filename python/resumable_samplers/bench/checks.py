"""Correctness checks gathered from a run: the benchmark also verifies what it times.

Any ``False`` here makes ``resumable-samplers bench`` exit 1, with or without ``--check``.
"""

from __future__ import annotations

from typing import Any

from resumable_samplers.bench.spec import Outcome

# (case, metric): the first indices every implementation of the torch order must agree on.
_FIRST_INDICES = (
    ("epoch", "first_index"),
    ("resume", "first_index"),
    ("trainer", "first_index"),
    ("trainer", "resume_first_index"),
    ("length_epoch", "first_index"),
    ("length_resume", "first_index"),
)


def checks(outcomes: list[Outcome]) -> dict[str, Any]:
    """Correctness checks gathered from the run.

    - ``bit_identity``: ours equals ``torch.randperm`` at every size both ran.
    - ``sampler_identity``: our distributed sampler yields exactly what torch's does.
    - ``same_first_index``: in ``b``, ``c`` and ``f`` every implementation of the torch order
      yielded the same first index at each size (in ``f``, of the epoch and after the resume),
      and in ``h`` the length-grouped sampler the same as transformers' (epoch and resume).
    - ``lazy_agreement``: in ``b`` and ``c`` the lazy sampler yielded the indices that ``a``'s
      ``randperm(n, seed, permutation="lazy")`` has at its positions (see ``cases._lazy_probes``),
      and in ``e`` every first index was in range.

    ``passed`` is ``False`` on a mismatch, ``None`` when no check ran or one could not finish.
    """

    def summary(case: str) -> dict[str, Any]:
        runs = [o for o in outcomes if o.spec.case == case]
        done = [o for o in runs if o.status == "ok"]
        passed: bool | None = None
        if any(o.metrics.get("passed") is not True for o in done):
            passed = False  # a mismatch
        elif done and all(o.status in ("ok", "skipped") for o in runs):
            passed = True
        return {
            "passed": passed,
            "max_n": max((o.spec.n for o in done), default=None),
            "runs": [
                {"n": o.spec.n, "status": o.status, "reason": o.reason, **o.metrics} for o in runs
            ],
        }

    mismatches = []
    compared = 0
    for case, metric in _FIRST_INDICES:
        firsts: dict[int, dict[str, Any]] = {}
        for o in outcomes:
            ours_order = o.spec.impl != "lazy" and metric in o.metrics  # lazy: another order
            if o.spec.case == case and o.status == "ok" and ours_order:
                firsts.setdefault(o.spec.n, {})[o.spec.impl] = o.metrics.get(metric)
        for n, values in sorted(firsts.items()):
            if len(values) > 1:
                compared += 1
                if len(set(values.values())) > 1:
                    mismatches.append({"case": case, "n": n, metric: values})
    return {
        "bit_identity": summary("verify"),
        "sampler_identity": summary("verify_sampler"),
        "same_first_index": {
            "passed": not mismatches if compared else None,
            "mismatches": mismatches,
        },
        "lazy_agreement": _lazy_agreement(outcomes),
    }


def _lazy_agreement(outcomes: list[Outcome]) -> dict[str, Any]:
    probes = {
        o.spec.n: o.metrics["probes"]
        for o in outcomes
        if o.spec.case == "perm" and o.spec.impl == "lazy" and o.status == "ok"
    }
    compared = 0
    mismatches: list[dict[str, Any]] = []
    for o in outcomes:
        if o.spec.impl != "lazy" or o.status != "ok":
            continue
        if o.spec.case in ("epoch", "resume") and o.spec.n in probes:
            compared += 1
            want = probes[o.spec.n][f"{o.spec.case}_first_index"]
            got = o.metrics.get("first_index")
            if got != want:
                mismatches.append({"case": o.spec.case, "n": o.spec.n, "got": got, "want": want})
        elif o.spec.case == "first":
            compared += 1
            if o.metrics.get("in_range") is not True:
                mismatches.append({"case": "first", "out_of_range": o.metrics.get("cases")})
    return {"passed": not mismatches if compared else None, "mismatches": mismatches}

"""The plan of a run: its options, the measurements they select, and which to skip.

A measurement is skipped, without starting its process, when its implementation cannot be
imported, when it failed at a smaller size, or when it would not fit in the memory budget.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from resumable_samplers.bench.spec import (
    AUTO_REPEAT,
    AUTO_REPEAT_MAX_N,
    CASES,
    DEFAULT_GRAIN_N,
    DEFAULT_LAZY_ITER_NS,
    DEFAULT_LAZY_RANDPERM_N,
    DEFAULT_LENGTH_NS,
    DEFAULT_MIXTURE_ITER_N,
    DEFAULT_MIXTURE_NS,
    GIB,
    IMPLS,
    LAZY_FIRST_NS,
    LAZY_FIRST_REPEAT,
    MIB,
    MIXTURE_KS,
    TORCHDATA_MAX_N,
    TRANSFORMERS_LENGTH_MAX_N,
    WALK_REPEAT,
    Outcome,
    Spec,
    megatron_n,
    walk_sizes,
)

# Bytes per index each implementation holds at its peak, for the "would it fit" estimate.
# torch/helios: the int64 tensor, then ``tolist()`` (an 8-byte pointer and a 32-byte int object
# per index) while the tensor is still alive, then the padded and subsampled copies.
_BYTES_PER_INDEX: dict[tuple[str, str], float] = {
    ("perm", "torch"): 8,
    ("perm", "numpy"): 8,
    ("epoch", "torch"): 49,
    ("epoch", "helios"): 49,
    ("resume", "torch"): 49,
    ("resume", "helios"): 49,
    ("verify", "torch"): 8,
    ("verify_sampler", "torch"): 49,
    ("loader", "list"): 44,
    # the stock Trainer: accelerate's RandomSampler, `torch.randperm(n).tolist()`
    ("trainer", "stock"): 49,
    ("trainer", "lazy"): 0,
    # the lazy order keeps no epoch: a distributed sampler holds one chunk of Python ints
    ("epoch", "lazy"): 0,
    ("resume", "lazy"): 0,
    ("first", "lazy"): 0,
    ("iterate", "lazy"): 0,
    # mixtures: ours holds nothing of the stream; Megatron's index is 2 + 8 bytes a position
    ("mixture_first", "ours"): 0,
    ("mixture_first", "megatron"): 10,
    ("mixture_iterate", "ours"): 0,
    ("mixture_iterate", "lazy"): 0,
    ("mixture_restore", "torchdata"): 0,
    # length grouping: the mapped uint16 lengths, the epoch and its sort buffers (~4 bytes a
    # sample measured); transformers' Python list of lengths and its epoch (~100 bytes a sample)
    ("length_epoch", "ours"): 8,
    ("length_resume", "ours"): 8,
    ("length_epoch", "budget"): 8,
    ("length_resume", "budget"): 8,
    ("length_padding", "ours"): 24,
    ("length_epoch", "transformers"): 100,
    ("length_resume", "transformers"): 100,
    # Mosaic's shuffles: the int64 sample ids and their temporaries
    ("shard_first", "py1e"): 12,
    ("shard_first", "py1br"): 12,
    ("shard_locality", "py1e"): 24,
    ("shard_locality", "py1br"): 24,
}
_MARGIN_BYTES = 256 * MIB


def estimate_bytes(case: str, impl: str, n: int) -> int:
    """Roughly how much memory (beyond the interpreter) ``impl`` needs for ``case`` at ``n``."""
    width = 4 if n <= 2**32 else 8
    if (case, impl) in _BYTES_PER_INDEX:
        per_index = _BYTES_PER_INDEX[(case, impl)]
    elif impl == "ours":
        per_index = {"epoch": width * 1.125, "resume": width * 1.125, "loader": width}.get(
            case, width
        )
    elif impl in ("lazy", "grain") and case in ("perm", "randperm", "grain", "walk"):
        per_index = width  # the lazy randperm's array (the Grain comparison times one too)
    else:
        per_index = _BYTES_PER_INDEX.get((case, impl), 8.0)
    if case in ("verify", "verify_sampler"):
        per_index += width  # ours is held alongside torch's
    return int(per_index * n) + _MARGIN_BYTES


def available_memory() -> int | None:
    """``MemAvailable`` from ``/proc/meminfo`` in bytes, or ``None`` where there is none."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@dataclasses.dataclass
class Options:
    """The parsed command line."""

    sizes: list[int]
    sections: list[str]
    exclude: set[str]
    loader_n: int
    timeout: float
    out: Path
    seed: int
    repeat: int | None
    mem_budget: int | None
    plot: bool
    lazy_randperm_n: int = DEFAULT_LAZY_RANDPERM_N
    lazy_iter_ns: list[int] = dataclasses.field(default_factory=lambda: [*DEFAULT_LAZY_ITER_NS])
    grain_n: int = DEFAULT_GRAIN_N
    mixture_ns: list[int] = dataclasses.field(default_factory=lambda: [*DEFAULT_MIXTURE_NS])
    mixture_iter_n: int = DEFAULT_MIXTURE_ITER_N
    length_ns: list[int] = dataclasses.field(default_factory=lambda: [*DEFAULT_LENGTH_NS])


def repeats(options: Options, n: int) -> int:
    """How often each operation is timed at size ``n``: ``--repeat``, else 3 up to 1e7, else 1."""
    if options.repeat is not None:
        return options.repeat
    return AUTO_REPEAT if n <= AUTO_REPEAT_MAX_N else 1


def plan(options: Options) -> list[Spec]:
    """Every measurement to run, in order (verifications follow the sizes they check)."""
    specs: list[Spec] = []
    for section in options.sections:
        impls = [i for i in IMPLS[section] if i not in options.exclude]
        if section == "e":
            specs += _plan_scale(options, impls)
            continue
        if section == "g":
            specs += _plan_mixture(options, impls)
            continue
        if section == "h":
            specs += _plan_length(options, impls)
            continue
        if section == "s":
            from resumable_samplers.bench.shard_cases import plan_shards  # imports NumPy

            specs += plan_shards(options.sizes, options.seed, options.repeat, impls)
            continue
        case = CASES[section]
        sizes = [options.loader_n] if section == "d" else options.sizes
        for n in sizes:
            for impl in impls:
                specs.append(Spec(section, case, impl, n, options.seed, repeats(options, n)))
            if section == "a" and "torch" in impls:
                specs.append(Spec(section, "verify", "torch", n, options.seed))
        if section == "b" and "torch" in impls:
            specs.append(Spec(section, "verify_sampler", "torch", options.sizes[0], options.seed))
    return specs


def _plan_scale(options: Options, impls: list[str]) -> list[Spec]:
    """Section e: first index, randperm, iterate (one process per size), grain."""
    seed = options.seed
    specs: list[Spec] = []
    if "lazy" in impls:
        first_repeat = options.repeat if options.repeat is not None else LAZY_FIRST_REPEAT
        specs.append(Spec("e", "first", "lazy", max(LAZY_FIRST_NS), seed, first_repeat))
        n = options.lazy_randperm_n
        specs.append(Spec("e", "randperm", "lazy", n, seed, repeats(options, n)))
        n = max(options.sizes)
        if walk_sizes(n):
            walk_repeat = options.repeat if options.repeat is not None else WALK_REPEAT
            specs.append(Spec("e", "walk", "lazy", n, seed, walk_repeat))
        for n in options.lazy_iter_ns:
            specs.append(Spec("e", "iterate", "lazy", n, seed, repeats(options, n)))
    if "grain" in impls:
        n = options.grain_n
        specs.append(Spec("e", "grain", "grain", n, seed, repeats(options, n)))
    return specs


def _plan_mixture(options: Options, impls: list[str]) -> list[Spec]:
    """Section g: the first index (ours, Megatron) per size and K, iteration, torchdata."""
    seed = options.seed
    specs: list[Spec] = []
    for n in options.mixture_ns:
        for k in MIXTURE_KS:
            for impl in ("ours", "megatron"):
                if impl in impls:
                    specs.append(Spec("g", "mixture_first", impl, n, seed, repeats(options, n), k))
    n = options.mixture_iter_n
    if "lazy" in impls:
        specs.append(Spec("g", "mixture_iterate", "lazy", n, seed, repeats(options, n)))
    for k in MIXTURE_KS:
        specs.append(Spec("g", "mixture_iterate", "ours", n, seed, repeats(options, n), k))
    if "torchdata" in impls:
        specs.append(Spec("g", "mixture_restore", "torchdata", min(n, TORCHDATA_MAX_N), seed, 1, 3))
    return specs


def _plan_length(options: Options, impls: list[str]) -> list[Spec]:
    """Section h: per size, each sampler's epoch and resume; then the padding efficiency."""
    seed = options.seed
    specs: list[Spec] = []
    for n in options.length_ns:
        for case in ("length_epoch", "length_resume"):
            specs += [Spec("h", case, impl, n, seed) for impl in impls]
    if "ours" in impls and options.length_ns:
        specs.append(Spec("h", "length_padding", "ours", min(options.length_ns), seed))
    return specs


CHECKS = ("verify", "verify_sampler")


def skip_reason(
    spec: Spec,
    options: Options,
    outcomes: list[Outcome],
    unavailable: dict[str, str],
    broken: dict[tuple[str, str, str], str],
) -> tuple[str, str] | None:
    """``(status, reason)`` when ``spec`` should not run, else ``None``.

    ``unavailable`` maps a peer that cannot be imported to why; ``broken`` maps
    ``(section, case, impl)`` to the failure at a smaller size that makes larger ones pointless.
    """
    if spec.impl in unavailable:
        return "unavailable", unavailable[spec.impl]
    key = (spec.section, spec.case, spec.impl)
    if key in broken and spec.case not in CHECKS:
        return "skipped", broken[key]
    if spec.case == "verify":
        ran = {
            o.spec.impl
            for o in outcomes
            if o.spec.case == "perm" and o.spec.n == spec.n and o.status == "ok"
        }
        if not {"ours", "torch"} <= ran:
            return "skipped", "ours and torch did not both run at this size"
    if spec.impl == "transformers" and spec.n > TRANSFORMERS_LENGTH_MAX_N:
        return (
            "skipped",
            "transformers' sampler runs up to n = 1e7 (its Python list of lengths and its epoch "
            "take ~100 bytes a sample, and over a minute an epoch above that)",
        )
    n = megatron_n(spec.n, spec.k) if spec.impl == "megatron" else spec.n
    need = estimate_bytes(spec.case, spec.impl, n)
    if options.mem_budget is not None and need > options.mem_budget:
        return (
            "skipped",
            f"would need ~{need / GIB:.1f} GiB (budget {options.mem_budget / GIB:.1f} GiB)",
        )
    return None

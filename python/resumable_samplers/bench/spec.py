"""What a measurement is: the sections, the implementations, the sizes, and one run's outcome.

Nothing here imports torch: the parent process plans and reports with these alone.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

SECTIONS: dict[str, str] = {
    "a": "permutation",
    "b": "distributed epoch (W=8, rank 3)",
    "c": "resume at 50% (W=8, rank 3, batch_size=1)",
    "d": "DataLoader index throughput (batch_size=256, num_workers=0)",
    "e": "lazy order at scale",
    "f": "transformers Trainer: first batch, and after a resume at 50% (1 process, batch 8)",
    "g": "weighted mixtures: first index at any position, iteration (K = 3 and 1000 sources)",
    "h": "length grouping: an epoch, a resume at 50% in a fresh process, memory, padding",
    "s": "sharded datasets: the shard order against Mosaic Streaming (W=8, rank 3)",
}
"""The measurements, by the letter ``--only`` selects them with."""

DEFAULT_SECTIONS: tuple[str, ...] = ("a", "b", "c", "d", "e", "g", "h")
"""What runs without ``--only``; ``f`` (it needs transformers) and ``s`` (Mosaic Streaming) are
asked for by name."""

IMPLS: dict[str, tuple[str, ...]] = {
    "a": ("ours", "lazy", "torch", "numpy"),
    "b": ("ours", "lazy", "torch", "helios"),
    "c": ("ours", "lazy", "helios", "torch"),
    "d": ("ours", "list"),
    "e": ("lazy", "grain"),
    "f": ("ours", "lazy", "stock"),
    "g": ("ours", "lazy", "megatron", "torchdata"),
    "h": ("ours", "budget", "transformers"),
    "s": ("ours", "py1e", "py1br"),
}
"""The implementations compared in each measurement; ``ours`` (the torch order) comes first.

``lazy`` is ours with ``permutation="lazy"``; in ``e``, ``grain`` is the Grain comparison (which
times ours too) and ``lazy`` everything else. In ``f``, ``stock`` is transformers' ``Trainer`` and
``ours``/``lazy`` the same ``Trainer`` with ``ResumableTrainerMixin``. In ``g``, ``ours`` is
``ResumableMixtureSampler``, ``lazy`` the plain lazy sampler its iteration is compared with,
``megatron`` Megatron's blending index and ``torchdata`` torchdata's ``MultiNodeWeightedSampler``.
In ``h``, ``ours`` is ``ResumableLengthGroupedSampler``, ``budget``
``ResumableTokenBudgetBatchSampler`` and ``transformers`` transformers' ``LengthGroupedSampler``.
"""

CASES: dict[str, str] = {
    "a": "perm",
    "b": "epoch",
    "c": "resume",
    "d": "loader",
    "f": "trainer",
}
"""The case each of the sections ``a`` to ``d`` and ``f`` times at every size (``e`` has
several)."""
TRAINER_BATCH_SIZE = 8

# 2.2e8 is past n = 214,748,364, where torch.randperm switches to 64-bit draws.
DEFAULT_SIZES: tuple[int, ...] = (10**6, 10**7, 5 * 10**7, 22 * 10**7, 10**9)
QUICK_SIZES: tuple[int, ...] = (10**5, 10**6)
DEFAULT_LOADER_N = 10**6
QUICK_LOADER_N = 10**5
DEFAULT_TIMEOUT_S = 1800.0
AUTO_REPEAT = 3
AUTO_REPEAT_MAX_N = 10**7
WORLD_SIZE = 8
RANK = 3
LOADER_BATCH_SIZE = 256

# Section e: the lazy order at scale. The first-index measurement is O(1) at any n, so it always
# runs at these sizes whatever --sizes is; the others are bounded by --sizes or set by
# their own options (smaller with --quick).
LAZY_FIRST_NS: tuple[int, ...] = (10**9, 2**40, 2**63 - 1)
WALK_NS: tuple[int, ...] = (2**24 + 1, 10**7, 10**8, 2**27 + 1)
"""Sizes off a power of two at which ``walk`` times the lazy order against the power of two below
(the lazy order's Feistel domain is the smallest power of two >= n; values outside [0, n) walk)."""
WALK_QUICK_NS: tuple[int, ...] = (2**16 + 1, 10**5)
"""The ``walk`` sizes of a run whose sizes stay below :data:`WALK_NS` (``--quick``, a smoke run)."""
RANDPERM_TORCH_FRACTION = 10
"""``randperm`` also times ``torch.randperm(n // RANDPERM_TORCH_FRACTION)`` in the same process."""
LAZY_FIRST_REPEAT = 5
WALK_REPEAT = 5
"""How often ``walk`` times each size and its power of two, in turn (the best is kept)."""
DEFAULT_LAZY_RANDPERM_N = 10**9
QUICK_LAZY_RANDPERM_N = 10**6
DEFAULT_LAZY_ITER_NS: tuple[int, ...] = (10**7, 10**9)
QUICK_LAZY_ITER_NS: tuple[int, ...] = (10**5, 10**6)
DEFAULT_GRAIN_N = 10**7
QUICK_GRAIN_N = 10**6
GRAIN_CALLS = 2 * 10**5
GRAIN_ROUNDS = 4

# Section g: weighted mixtures of K sources, weights spanning 6 orders of magnitude.
DEFAULT_MIXTURE_NS: tuple[int, ...] = (10**8, 10**9)
QUICK_MIXTURE_NS: tuple[int, ...] = (10**6,)
DEFAULT_MIXTURE_ITER_N = 10**7
QUICK_MIXTURE_ITER_N = 10**5
MIXTURE_KS: tuple[int, ...] = (3, 1000)
MIXTURE_EPOCH = 3  # the first index is read at epoch 3, half-way
MIXTURE_BATCH_SIZE = 256
# Megatron's blending index is O(N * K): from this K on it is built at N <= MEGATRON_SCALED_N
# and its time scaled linearly to N.
MEGATRON_SCALE_FROM_K = 100
MEGATRON_SCALED_N = 10**7
TORCHDATA_MAX_N = 10**6  # torchdata's sampler draws in Python: ~1 us per item

# Section h: length grouping over n log-normal lengths (uint16, median ~245 tokens).
DEFAULT_LENGTH_NS: tuple[int, ...] = (10**7, 10**8)
QUICK_LENGTH_NS: tuple[int, ...] = (10**5,)
LENGTH_BATCH_SIZE = 32
LENGTH_MAX_TOKENS = 16384
TRANSFORMERS_LENGTH_MAX_N = 10**7  # its lengths list and epoch take ~100 bytes per sample

MIB = 2**20
GIB = 2**30


def walk_sizes(n: int) -> tuple[int, ...]:
    """The sizes ``walk`` measures when its largest may be ``n``: :data:`WALK_NS` when ``n``
    reaches their largest, else those of :data:`WALK_QUICK_NS` up to ``n``."""
    if n >= max(WALK_NS):
        return WALK_NS
    return tuple(m for m in WALK_QUICK_NS if m <= n)


@dataclasses.dataclass(frozen=True)
class Spec:
    """One measurement: what a child process runs.

    Args:
        section: the measurement letter, ``a`` to ``h``.
        case: ``perm``, ``epoch``, ``resume``, ``loader``, ``verify``, ``verify_sampler`` or
            ``trainer``; in ``e``: ``first``, ``randperm``, ``iterate``, ``walk`` or ``grain``;
            in ``g``: ``mixture_first``, ``mixture_iterate`` or ``mixture_restore``; in ``h``:
            ``length_epoch``, ``length_resume`` or ``length_padding``.
        impl: the implementation measured, e.g. ``ours``, ``lazy`` or ``torch``.
        n: the dataset size (for ``first``, the largest of :data:`LAZY_FIRST_NS`, which it
            measures all of; for ``walk``, the largest of the sizes it measures, those of
            :data:`WALK_NS` or :data:`WALK_QUICK_NS` up to ``n``).
        seed: the seed of the permutation.
        repeat: how many times to time the operation (the best time is kept).
        k: the number of sources of a mixture (section ``g``); 0 elsewhere.
    """

    section: str
    case: str
    impl: str
    n: int
    seed: int = 0
    repeat: int = 1
    k: int = 0

    def label(self) -> str:
        """A short human-readable name, e.g. ``(a) perm torch n=1e7``."""
        if self.case == "first":
            return f"({self.section}) first index lazy n={','.join(map(format_n, LAZY_FIRST_NS))}"
        if self.case == "grain":
            return f"({self.section}) grain vs lazy n={format_n(self.n)}"
        if self.case == "walk":
            return f"({self.section}) walk lazy n={','.join(map(format_n, walk_sizes(self.n)))}"
        if self.k:
            return f"({self.section}) {self.case} {self.impl} n={format_n(self.n)} K={self.k}"
        return f"({self.section}) {self.case} {self.impl} n={format_n(self.n)}"

    def to_json(self) -> str:
        """The specification as the JSON the child reads."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Spec:
        """Parse what :meth:`to_json` wrote."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"a spec should be a JSON object, got {text!r}")
        return cls(**data)


@dataclasses.dataclass
class Outcome:
    """The result of one measurement, as recorded in ``results.json``.

    Args:
        spec: what was measured.
        status: ``ok``, ``skipped``, ``unavailable``, ``failed`` or ``timeout``.
        reason: why it is not ``ok``.
        metrics: the child's timings and values (``*_s`` are seconds).
        rss: the child's resident memory in bytes: ``base``, ``peak``, ``extra`` and whether the
            peak was reset after setup (``reset``).
        process: the child process as seen from outside: wall time including interpreter start,
            its peak RSS over its whole life, and its exit status.
    """

    spec: Spec
    status: str
    reason: str | None = None
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    rss: dict[str, Any] = dataclasses.field(default_factory=dict)
    process: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the spec's fields are flattened in)."""
        out: dict[str, Any] = dataclasses.asdict(self.spec)
        out.update(
            status=self.status,
            reason=self.reason,
            metrics=self.metrics,
            rss=self.rss,
            process=self.process,
        )
        return out


def megatron_n(n: int, k: int) -> int:
    """The size Megatron's blending index is built at, for a stream of ``n`` positions over
    ``k`` sources (its time is then scaled linearly to ``n``)."""
    return min(n, MEGATRON_SCALED_N) if k >= MEGATRON_SCALE_FROM_K else n


def format_n(n: int) -> str:
    """``n`` in short form where there is one.

    One or two significant digits times a power of ten (``50000000`` -> ``5e7``, ``220000000``
    -> ``2.2e8``), else a large power of two or one less (``2**40``, ``2**63-1``), else digits.
    """
    if n >= 1000:
        k = len(str(n)) - 1
        d, r = divmod(n, 10**k)
        if r == 0:
            return f"{d}e{k}"
        m, r = divmod(n, 10 ** (k - 1))
        if r == 0:
            return f"{m // 10}.{m % 10}e{k}"
    if n >= 2**20:
        if n & (n - 1) == 0:
            return f"2**{n.bit_length() - 1}"
        if (n + 1) & n == 0:
            return f"2**{n.bit_length()}-1"
    return str(n)


def format_seconds(value: Any) -> str:
    """Seconds with three significant digits (one decimal from 100 s on), ``-`` if missing."""
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.1f}" if value >= 100 else f"{value:.3g}"


def format_mib(value: Any) -> str:
    """Bytes as MiB with one decimal, ``-`` if missing."""
    return f"{value / MIB:.1f}" if isinstance(value, int | float) else "-"

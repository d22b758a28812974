"""The core's limits and order names, as Python reads them: each is defined once, in the Rust
core, and exported by it. Imports neither torch nor NumPy (the command line uses it too)."""

from __future__ import annotations

from resumable_samplers import _core

MAX_LEN: int = _core.MAX_LEN
"""The largest dataset length (and ``randperm``'s ``n``, and number of replicas): ``2**63 - 1``,
so that every index is a torch ``int64``."""

SEED_MIN: int = _core.SEED_MIN
SEED_END: int = _core.SEED_END
"""torch's generator seeds (and ``seed + epoch``): ``[SEED_MIN, SEED_END)``, taken modulo
``SEED_END`` by the core."""


def in_seed_range(value: int) -> bool:
    """Whether ``value`` is one of torch's generator seeds, ``[SEED_MIN, SEED_END)``: the rule
    for a seed, ``seed + epoch`` and the lazy order's keys."""
    return SEED_MIN <= value < SEED_END


U64_MAX: int = SEED_END - 1
"""The largest value of the core's unsigned 64-bit arguments."""

MAX_WEIGHT_SUM: int = _core.MAX_WEIGHT_SUM
"""The largest sum of a mixture's integer weights."""

MAX_LEVEL_REPLICAS: int = _core.MAX_LEVEL_REPLICAS
"""The largest number of ranks a shard sampler's state can be resumed from elastically (a level
of its ``levels`` field)."""

TORCH, TORCH_LEGACY, LAZY, IDENTITY = _core.ORDER_NAMES
"""The core's order names: torch's ``randperm`` (2.6 and later, and 2.5 and earlier), the lazy
bijection, the identity."""


def text(value: int) -> str:
    """``value`` as messages write it: powers of two (give or take one) as ``2**k``."""
    for power, written in ((value, "{}"), (value + 1, "{} - 1"), (-value, "-{}")):
        if power >= 2**16 and power & (power - 1) == 0:
            return written.format(f"2**{power.bit_length() - 1}")
    return str(value)


SEED_RANGE = f"[{text(SEED_MIN)}, {text(SEED_END)})"
"""The seed range as messages write it: ``[-2**63, 2**64)``."""

LEN_RANGE = f"[0, {text(MAX_LEN)}]"
"""The length range as messages write it: ``[0, 2**63 - 1]``."""

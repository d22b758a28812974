"""Argument checks shared by the public API: each names the argument and what is accepted."""

from __future__ import annotations

import operator
from collections.abc import Sized
from typing import Any

import numpy as np

from resumable_samplers import _core
from resumable_samplers._limits import LEN_RANGE, SEED_RANGE, TORCH, TORCH_LEGACY, text

# The core's limits, for the modules that check arguments against them.
from resumable_samplers._limits import MAX_LEN as MAX_LEN
from resumable_samplers._limits import SEED_END as SEED_END
from resumable_samplers._limits import SEED_MIN as SEED_MIN
from resumable_samplers._limits import U64_MAX as U64_MAX


def _is_bool(value: Any) -> bool:
    """Python, NumPy and torch booleans (scalars and 0-d arrays/tensors)."""
    if isinstance(value, (bool, np.bool_)):
        return True
    dtype = getattr(value, "dtype", None)
    return dtype is not None and str(dtype) in ("bool", "torch.bool")


def as_int(name: str, value: Any) -> int:
    """Return ``value`` as an ``int``; booleans and non-integers raise ``TypeError``."""
    if _is_bool(value):
        raise TypeError(f"{name} should be an integer, got a bool ({value})")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} should be an integer, got {type(value).__name__}") from None
    except Exception as e:  # a broken __index__
        raise TypeError(
            f"{name} should be an integer, got {type(value).__name__} whose __index__ raised "
            f"{type(e).__name__}: {e}"
        ) from None


def positive_int(name: str, value: Any, at_most: int | None = None) -> int:
    """An integer >= 1 (and <= ``at_most`` if given)."""
    v = as_int(name, value)
    if v <= 0:
        raise ValueError(f"{name} should be a positive integer, got {v}")
    if at_most is not None and v > at_most:
        raise ValueError(f"{name} should be at most {text(at_most)}, got {v}")
    return v


def non_negative_int(name: str, value: Any, at_most: int | None = None) -> int:
    """An integer >= 0 (and <= ``at_most`` if given)."""
    v = as_int(name, value)
    if v < 0:
        raise ValueError(f"{name} should be a non-negative integer, got {v}")
    if at_most is not None and v > at_most:
        raise ValueError(f"{name} should be at most {text(at_most)}, got {v}")
    return v


def replicas(num_replicas: Any, rank: Any) -> tuple[int, int]:
    """``num_replicas`` and ``rank`` as ints; the core checks that ``rank`` is one of the
    ``num_replicas`` ranks (``ValueError`` in torch's wording)."""
    num_replicas = positive_int("num_replicas", num_replicas, MAX_LEN)
    return num_replicas, _core.check_rank(as_int("rank", rank), num_replicas)


def as_bool(name: str, value: Any) -> bool:
    """A ``bool`` (NumPy bools too); anything else raises ``TypeError``."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} should be a bool, got {type(value).__name__}")


def dataset_len(name: str, data: Any) -> int:
    """``len(data)``, with a clear ``TypeError`` when it has none."""
    if not isinstance(data, Sized):
        raise TypeError(f"{name} should define __len__, got {type(data).__name__}")
    try:
        length = len(data)
    except OverflowError:
        raise ValueError(f"len({name}) should be in {LEN_RANGE}, got a larger value") from None
    except ValueError as e:  # e.g. __len__ returned a negative number
        raise ValueError(f"len({name}) should be in {LEN_RANGE}: {e}") from None
    except TypeError as e:  # e.g. __len__ returned a float, or a 0-d tensor has no length
        raise TypeError(f"{name} should have an integer length: {e}") from None
    except Exception as e:  # a broken __len__
        raise TypeError(f"{name} should have a length: len({name}) raised {e!r}") from None
    n = as_int(f"len({name})", length)
    if not 0 <= n <= MAX_LEN:
        raise ValueError(f"len({name}) should be in {LEN_RANGE}, got {n}")
    return n


def generator_seed(seed: int, epoch: int) -> int:
    """The seed torch's generator gets for an epoch, ``seed + epoch``, as an unsigned 64-bit value.

    ``torch.Generator.manual_seed`` accepts ``[-2**63, 2**64)`` and takes negative seeds as two's
    complement; anything else is refused rather than silently wrapped.
    """
    s = as_int("seed", seed) + as_int("epoch", epoch)
    if not SEED_MIN <= s < SEED_END:
        raise ValueError(
            f"seed + epoch should be in {SEED_RANGE} (torch.Generator's range), got {s}"
        )
    return s % SEED_END


def order_key(seed: int, epoch: int, permutation: str) -> tuple[int, int]:
    """Validate ``(seed, epoch)`` for an order and return both as unsigned 64-bit values.

    The torch order seeds its generator with ``seed + epoch``, which must lie in torch's range
    ``[-2**63, 2**64)``; the lazy order is keyed by the full ``seed`` and ``epoch``, each in
    that range.
    """
    seed = as_int("seed", seed)
    epoch = as_int("epoch", epoch)
    if permutation in (TORCH, TORCH_LEGACY):
        generator_seed(seed, epoch)
    else:
        for name, value in (("seed", seed), ("epoch", epoch)):
            if not SEED_MIN <= value < SEED_END:
                raise ValueError(f"{name} should be in {SEED_RANGE}, got {value}")
    return seed % SEED_END, epoch % SEED_END


def choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} should be one of {listed}, got {value!r}")
    return value

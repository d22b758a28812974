"""Stand-alone permutations."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from resumable_samplers import _checks, _core, _limits
from resumable_samplers._torch_version import torch_order

PERMUTATIONS: tuple[str, ...] = (_limits.TORCH, _limits.LAZY)
"""The accepted values of ``permutation``.

- ``"torch"`` (the default): ``torch.randperm``'s order of the installed torch, bit for bit (torch
  2.6 changed it from 214,748,364 items on; see :func:`core_order`); an epoch is computed once
  and a rank keeps its own share (4 bytes per index up to ``2**32`` items).
- ``"lazy"``: a keyed pseudo-random bijection evaluated one position at a time, so no memory
  of size ``n`` ever exists and any position is reached in O(1). A different order from torch's.
"""


def core_order(permutation: str) -> str:
    """The core's name for the order of ``permutation`` (one of :data:`PERMUTATIONS`).

    ``"torch"`` resolves to the installed torch's generation of ``randperm``: ``"torch"`` for
    torch 2.6 and later, ``"torch-legacy"`` for torch 2.5 and earlier (they differ from
    214,748,364 items on). ``"lazy"`` is itself.

    Raises:
        ValueError: if ``permutation`` is not one of :data:`PERMUTATIONS`.
    """
    _checks.choice("permutation", permutation, PERMUTATIONS)
    return torch_order() if permutation == "torch" else permutation


def same_order(a: str, b: str, n: int) -> bool:
    """Whether the core orders named ``a`` and ``b`` give the same permutation of ``n`` items for
    every seed and epoch: equal names, or the two torch generations below 214,748,364 items.

    Raises:
        ValueError: if a name is not one of the core's orders (``"torch"``, ``"torch-legacy"``,
            ``"lazy"``, ``"identity"``).
    """
    return _core.same_order(a, b, _checks.non_negative_int("n", n))


def randperm(
    n: int, seed: int = 0, *, permutation: str = "torch"
) -> npt.NDArray[np.uint32] | npt.NDArray[np.int64]:
    """Return a random permutation of ``[0, n)`` as a NumPy array.

    With ``permutation="torch"`` the result equals
    ``torch.randperm(n, generator=torch.Generator().manual_seed(seed))`` of the installed torch
    element for element, for every ``n`` and every seed torch accepts, only faster. With
    ``permutation="lazy"`` it is the lazy bijection keyed by ``(seed, 0)``, computed on all
    cores; the epoch-0 order of a lazy sampler with the same seed. The GIL is released while it
    runs.

    Args:
        n: the length of the permutation, in ``[0, 2**63 - 1]``.
        seed: the generator seed, in ``[-2**63, 2**64)``.
        permutation: which order to produce; one of :data:`PERMUTATIONS`.

    Returns:
        A ``uint32`` array when ``n <= 2**32``, else ``int64``, owning its buffer.
    """
    n = _checks.non_negative_int("n", n)
    if n > _checks.MAX_LEN:
        raise ValueError(f"n should be in {_limits.LEN_RANGE}, got {n}")
    _checks.choice("permutation", permutation, PERMUTATIONS)
    s, _ = _checks.order_key(seed, 0, permutation)
    out: Any = _core.randperm(n, s, core_order(permutation))
    return out  # type: ignore[no-any-return]

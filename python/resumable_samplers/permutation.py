"""Stand-alone permutations."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from resumable_samplers import _checks, _core

PERMUTATIONS: tuple[str, ...] = ("torch",)
"""The accepted values of ``permutation``: ``"torch"`` is ``torch.randperm``'s order."""


def randperm(
    n: int, seed: int = 0, *, permutation: str = "torch"
) -> npt.NDArray[np.uint32] | npt.NDArray[np.int64]:
    """Return a random permutation of ``[0, n)`` as a NumPy array.

    With ``permutation="torch"`` the result equals
    ``torch.randperm(n, generator=torch.Generator().manual_seed(seed))`` element for element, for
    every ``n`` and every seed torch accepts, only faster. The GIL is released while it runs.

    Args:
        n: the length of the permutation, in ``[0, 2**63 - 1]``.
        seed: the generator seed, in ``[-2**63, 2**64)``.
        permutation: which order to produce; one of :data:`PERMUTATIONS`.

    Returns:
        A ``uint32`` array when ``n <= 2**32``, else ``int64``, owning its buffer.
    """
    n = _checks.non_negative_int("n", n)
    if n > _checks.MAX_LEN:
        raise ValueError(f"n should be in [0, 2**63 - 1], got {n}")
    s = _checks.generator_seed(seed, 0)
    _checks.choice("permutation", permutation, PERMUTATIONS)
    out: Any = _core.randperm(n, s)
    return out  # type: ignore[no-any-return]

"""Memory of a lazy epoch written from start to end: no transparent huge pages asked for.

A lazy ``randperm`` or ``indices()`` writes its output once, in order, so huge pages save it
little, while a fresh huge page can cost far more to fault in than the small pages it replaces
(on a 2-core VM, 4 GB took 5-17 s with ``MADV_HUGEPAGE`` against 0.8-1.5 s without; see
``docs/permutation.md``). The kernel records the advice in the mapping's ``VmFlags`` (``hg``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import resumable_samplers as rs
from conftest import Sized

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/self/smaps"
)

# 64 MiB of uint32: above the size from which shuffle buffers are advised (8 MiB), and above
# the largest that glibc's malloc may serve from memory it keeps (32 MiB), so every such
# buffer is a mapping of its own, made for it.
N = (1 << 24) + 1


def _vm_flags(address: int) -> list[str]:
    """The ``VmFlags`` of this process's mapping that holds ``address``."""
    lines = Path("/proc/self/smaps").read_text().splitlines()
    inside = False
    for line in lines:
        head = line.split()[0] if line else ""
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            low, high = (int(x, 16) for x in head.split("-"))
            inside = low <= address < high
        elif inside and line.startswith("VmFlags:"):
            return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


def _middle(arr: Any) -> int:
    data: np.ndarray[Any, Any] = np.asarray(arr)
    return int(data.ctypes.data) + data.nbytes // 2


def test_lazy_randperm_is_not_advised_huge_pages() -> None:
    perm = rs.randperm(N, 3, permutation="lazy")
    assert perm.dtype == np.uint32 and perm.size == N
    assert "hg" not in _vm_flags(_middle(perm))


def test_lazy_indices_are_not_advised_huge_pages() -> None:
    sampler = rs.ResumableRandomSampler(Sized(N), seed=3, permutation="lazy")
    indices = sampler.indices()
    assert indices.size == N
    assert "hg" not in _vm_flags(_middle(indices))


def test_the_check_reads_the_advice() -> None:
    # The torch-order shuffle keeps its huge pages (random swaps over the whole buffer), so the
    # same check sees the advice there: the tests above cannot pass for want of a flag.
    perm = rs.randperm(N, 3)
    assert "hg" in _vm_flags(_middle(perm))

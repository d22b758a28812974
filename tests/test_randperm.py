"""``randperm`` equals ``torch.randperm`` bit for bit, in both of torch's CPU regimes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import resumable_samplers as rs
from resumable_samplers import _core

SEEDS = [0, 1, 6691, -1, 2**32 + 5, 2**64 - 1, -(2**63), 2**63]
SWAP_LIMIT = (2**32 - 1) // 20  # torch switches to the inside-out regime at this n


def torch_randperm(n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 17, 1000, 65537, 10**6])
@pytest.mark.parametrize("seed", SEEDS)
def test_equals_torch(n: int, seed: int) -> None:
    ours = rs.randperm(n, seed)
    assert ours.dtype == np.uint32
    assert ours.shape == (n,)
    np.testing.assert_array_equal(ours.astype(np.int64), torch_randperm(n, seed).numpy())


def test_default_seed_is_zero() -> None:
    np.testing.assert_array_equal(rs.randperm(500), torch_randperm(500, 0).numpy())


@pytest.mark.parametrize(
    ("n", "seed"),
    [
        (SWAP_LIMIT - 1, 3),  # last length of the swap regime
        (SWAP_LIMIT + 1, 2**32 + 5),  # inside-out regime (random64() % (i + 1))
    ],
)
def test_both_regimes_at_the_boundary(n: int, seed: int) -> None:
    ours = rs.randperm(n, seed)
    ref = torch_randperm(n, seed).numpy()
    assert ours.dtype == np.uint32
    assert np.array_equal(ours, ref)
    del ref


def test_owns_its_rust_buffer() -> None:
    a = rs.randperm(1000, 5)
    assert not a.flags.owndata  # the memory belongs to the Rust buffer...
    assert a.base is not None and type(a.base).__name__ == "PySliceContainer"  # ...kept alive here
    assert a.flags.writeable and a.flags.c_contiguous
    a[0] = 7  # the caller owns this array
    b = rs.randperm(1000, 5)
    assert not np.shares_memory(a, b)


def test_core_takes_the_generator_seed_as_unsigned() -> None:
    # -1 and 2**64 - 1 are the same torch seed; the public API maps one to the other.
    np.testing.assert_array_equal(_core.randperm(100, 2**64 - 1), rs.randperm(100, -1))


def test_result_does_not_depend_on_torch_threads() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = rs.randperm(100_000, 9)
        torch.set_num_threads(2)
        two = rs.randperm(100_000, 9)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(one, two)

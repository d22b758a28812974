"""The lazy order's values are fixed: saved states and checkpoints depend on them.

Each case below is a sequence the library produces today (a whole ``randperm``, a sampler's
epoch, a resumed or re-sharded epoch, a mixture's stream), pinned by the SHA-256 of its bytes
and its first values. A faster implementation must reproduce every one of them. Huge ``n``
are read position by position (a sampler with many replicas reads a strided sample of the
order; an iterator resumed deep into an epoch reads a contiguous run), never materialised.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import numpy as np
import pytest

import resumable_samplers as rs
from conftest import Sized

SEEDS = (0, 1, 12345, 2**64 - 1, -(2**63))


def _digest(values: Any) -> tuple[str, str, list[int]]:
    """``(dtype, sha256 of the little-endian bytes, first values)`` of a sequence."""
    arr = np.asarray(values)
    if arr.dtype == object or arr.size == 0:
        arr = np.asarray(values, dtype=np.int64)
    arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    return str(arr.dtype), hashlib.sha256(arr.tobytes()).hexdigest()[:32], arr[:4].tolist()


def _randperm(n: int, seed: int) -> Callable[[], Any]:
    return lambda: rs.randperm(n, seed, permutation="lazy")


def _epochs(n: int, seed: int, epochs: Iterable[int]) -> Callable[[], Any]:
    def run() -> Any:
        s = rs.ResumableRandomSampler(Sized(n), seed=seed, permutation="lazy")
        out = []
        for e in epochs:
            s.set_epoch(e)
            out.append(s.indices())
        return np.concatenate(out)

    return run


def _strided(n: int, w: int, rank: int, seed: int, epoch: int) -> Callable[[], Any]:
    """Rank ``rank`` of ``w``: the positions ``rank + j * w`` of the epoch's order."""

    def run() -> Any:
        s = rs.ResumableDistributedSampler(Sized(n), w, rank, seed=seed, permutation="lazy")
        s.set_epoch(epoch)
        return s.indices()

    return run


def _run_at(n: int, w: int, rank: int, seed: int, epoch: int, start: int) -> Callable[[], Any]:
    """4096 indices of rank ``rank`` read by iteration from this rank's position ``start``."""

    def run() -> Any:
        s = rs.ResumableDistributedSampler(Sized(n), w, rank, seed=seed, permutation="lazy")
        s.set_epoch(epoch)
        s.start_iter = start
        it: Iterator[int] = iter(s)
        return list(islice(it, 4096))

    return run


def _ranks(n: int, w: int, seed: int, epoch: int, b: int, k: int, drop: bool) -> Callable[[], Any]:
    """Every rank's epoch, resumed at batch ``k``, by iteration and by ``indices()``."""

    def run() -> Any:
        out: list[int] = []
        for r in range(w):
            s = rs.ResumableDistributedSampler(
                Sized(n), w, r, seed=seed, batch_size=b, drop_last=drop, permutation="lazy"
            )
            s.set_epoch(epoch)
            out += list(s)
            s.start_iter = k
            out += s.indices().tolist()
            s.start_iter = k
            out += list(s)
        return out

    return run


def _elastic(n: int, seed: int, epoch: int, taken: int) -> Callable[[], Any]:
    """A state saved by rank 1 of 3 after ``taken`` indices, loaded by each of 2 ranks."""

    def run() -> Any:
        s = rs.ResumableDistributedSampler(Sized(n), 3, 1, seed=seed, permutation="lazy")
        s.set_epoch(epoch)
        it = iter(s)
        out = list(islice(it, taken))
        state = s.state_dict()
        for r in range(2):
            t = rs.ResumableDistributedSampler(Sized(n), 2, r, seed=seed, permutation="lazy")
            t.load_state_dict(state)
            out += list(t)
        return out

    return run


def _mixture(
    lengths: list[int], weights: list[int], seed: int, w: int, epochs: int, num: int | None
) -> Callable[[], Any]:
    def run() -> Any:
        out: list[int] = []
        for r in range(w):
            s = rs.ResumableMixtureSampler(
                lengths, weights, seed=seed, num_replicas=w, rank=r, num_samples=num
            )
            for e in range(epochs):
                s.set_epoch(e)
                out += list(s)
                s.set_epoch(e)
                s.start_iter = 3
                out += s.indices().tolist()
        return out

    return run


def _mixture_deep(lengths: list[int], seed: int, position: int) -> Callable[[], Any]:
    """4096 mixture indices from a deep stream position (many cycles of the small source)."""

    def run() -> Any:
        s = rs.ResumableMixtureSampler(
            lengths, [3] * len(lengths), seed=seed, num_samples=2**40, batch_size=1
        )
        s.start_iter = position
        return list(islice(iter(s), 4096))

    return run


SMALL_N = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128]
SMALL_N += [129, 255, 256, 257, 1000, 1023, 1024, 1025, 4095, 4096, 4097, 10_000]
MID_N = [65_535, 65_536, 65_537, 100_003, 2**17 + 1, 4**9 + 1, 10**6, 2**20 - 1, 2**20 + 1]
HUGE_N = [2**24 + 1, 10**7, 2**32 - 1, 2**32, 2**32 + 1, 4**20 + 1, 10**12, 2**62 + 12345]
HUGE_N += [2**63 - 1]

CASES: dict[str, Callable[[], Any]] = {}
for _n in SMALL_N:
    for _s in SEEDS:
        CASES[f"randperm-{_n}-{_s}"] = _randperm(_n, _s)
for _n in MID_N:
    for _s in SEEDS[:2]:
        CASES[f"randperm-{_n}-{_s}"] = _randperm(_n, _s)
CASES["randperm-16777216-7"] = _randperm(2**24, 7)
CASES["randperm-16777217-7"] = _randperm(2**24 + 1, 7)
for _n in (5, 17, 1000, 65_537, 10**6 + 1):
    CASES[f"epochs-{_n}"] = _epochs(_n, 99, [0, 1, 2, 2**63, 2**64 - 1])
for _n in HUGE_N:
    _w = max(1, _n // 4000)
    CASES[f"strided-{_n}"] = _strided(_n, _w, _w // 3, 2**64 - 5, 3)
    CASES[f"run-{_n}"] = _run_at(_n, 8, 5, 42, 1, -(-_n // 8) // 2)
    CASES[f"run-end-{_n}"] = _run_at(_n, 1, 0, 0, 0, _n - 4096)
for _n, _w, _b, _k, _drop in [(1, 3, 1, 0, False), (10, 3, 2, 1, False), (1000, 7, 5, 9, True)]:
    CASES[f"ranks-{_n}-{_w}-{_drop}"] = _ranks(_n, _w, 5, 4, _b, _k, _drop)
CASES["ranks-100003-4"] = _ranks(100_003, 4, 2**40, 11, 64, 100, False)
CASES["elastic-1000"] = _elastic(1000, 3, 2, 77)
CASES["elastic-65537"] = _elastic(65_537, 8, 0, 5000)
CASES["mixture-3"] = _mixture([5, 17, 1000], [1, 2, 3], 7, 1, 3, None)
CASES["mixture-ranks"] = _mixture([100, 3, 4097], [5, 1, 2], 2**63, 3, 2, 3000)
CASES["mixture-deep"] = _mixture_deep([7, 65_537, 10**6 + 3], 11, 10**9 + 123)

# Computed with the scalar per-position walk and recorded; see the module docstring.
PINNED: dict[str, tuple[str, str, list[int]]] = {
    "randperm-1-0": ("uint32", "df3f619804a92fdb4057192dc43dd748", [0]),
    "randperm-1-1": ("uint32", "df3f619804a92fdb4057192dc43dd748", [0]),
    "randperm-1-12345": ("uint32", "df3f619804a92fdb4057192dc43dd748", [0]),
    "randperm-1-18446744073709551615": ("uint32", "df3f619804a92fdb4057192dc43dd748", [0]),
    "randperm-1--9223372036854775808": ("uint32", "df3f619804a92fdb4057192dc43dd748", [0]),
    "randperm-2-0": ("uint32", "01acecb507abfe1a354aa8064f4af5d3", [0, 1]),
    "randperm-2-1": ("uint32", "7c9fa136d4413fa6173637e883b6998d", [1, 0]),
    "randperm-2-12345": ("uint32", "01acecb507abfe1a354aa8064f4af5d3", [0, 1]),
    "randperm-2-18446744073709551615": ("uint32", "7c9fa136d4413fa6173637e883b6998d", [1, 0]),
    "randperm-2--9223372036854775808": ("uint32", "7c9fa136d4413fa6173637e883b6998d", [1, 0]),
    "randperm-3-0": ("uint32", "be3e63ddb18e272dd8a8ba102772e658", [0, 2, 1]),
    "randperm-3-1": ("uint32", "0db201e8371010e5cd3b719cf6c131ce", [2, 0, 1]),
    "randperm-3-12345": ("uint32", "ad5dc1478de06a4c2728ea528bd9361a", [0, 1, 2]),
    "randperm-3-18446744073709551615": ("uint32", "a890adf674b36ba6672153a29917fca0", [1, 0, 2]),
    "randperm-3--9223372036854775808": ("uint32", "0db201e8371010e5cd3b719cf6c131ce", [2, 0, 1]),
    "randperm-4-0": ("uint32", "e19cfc999da3dbc38ee6a0ed0e78e5ff", [3, 2, 1, 0]),
    "randperm-4-1": ("uint32", "6256a4b0be4127b6ff9fa076fe759596", [3, 0, 1, 2]),
    "randperm-4-12345": ("uint32", "8bfc8bc2a89c50ca43fb134038c561e5", [0, 3, 2, 1]),
    "randperm-4-18446744073709551615": ("uint32", "f68e148e70b6bfbdf5687ac243823ccf", [1, 0, 2, 3]),
    "randperm-4--9223372036854775808": ("uint32", "6256a4b0be4127b6ff9fa076fe759596", [3, 0, 1, 2]),
    "randperm-5-0": ("uint32", "fd656706bf3b917044f86cc1a9beafd8", [3, 1, 4, 0]),
    "randperm-5-1": ("uint32", "2926daac92bb909cb53e7abd806a1eea", [2, 1, 3, 4]),
    "randperm-5-12345": ("uint32", "67177b19921587d3d04ed7707625c6fc", [2, 3, 4, 0]),
    "randperm-5-18446744073709551615": ("uint32", "ba8a6c511801a7b3dae0a19aa07b098f", [2, 1, 0, 4]),
    "randperm-5--9223372036854775808": ("uint32", "fd18d54ddd76a116dbd82e012c4c6ae0", [4, 0, 2, 3]),
    "randperm-6-0": ("uint32", "d7b910180250ce943c03676727cf3601", [3, 1, 4, 0]),
    "randperm-6-1": ("uint32", "9d087a4bfac57f02d9ca9bdecb0859fb", [2, 1, 3, 5]),
    "randperm-6-12345": ("uint32", "97bea5002b0da12d7013a799464df3ef", [2, 3, 4, 0]),
    "randperm-6-18446744073709551615": ("uint32", "530c5533c390872f0c5c6791c93e706d", [2, 1, 0, 5]),
    "randperm-6--9223372036854775808": ("uint32", "b9be4d6515851ef9c3c8908e1a27c403", [4, 0, 5, 3]),
    "randperm-7-0": ("uint32", "379440eb26db92e4aaa1be8707248cfe", [6, 1, 4, 0]),
    "randperm-7-1": ("uint32", "0f81494e09488b9d8b0cec1ebe1458a4", [2, 6, 3, 5]),
    "randperm-7-12345": ("uint32", "c7b2046e5e1b334226174cd6af336b37", [2, 3, 4, 0]),
    "randperm-7-18446744073709551615": ("uint32", "f85ef618015d5710a2549fd0c2e29738", [2, 1, 0, 5]),
    "randperm-7--9223372036854775808": ("uint32", "a244b4895d04ce805e072df84f9792a0", [4, 0, 5, 6]),
    "randperm-8-0": ("uint32", "7321cff433eece4bc5ef236cfd110394", [6, 1, 4, 0]),
    "randperm-8-1": ("uint32", "cc6e1f1ca0eecf7feadfcdc79561e86e", [7, 6, 3, 5]),
    "randperm-8-12345": ("uint32", "84d9f7f16e54e8fbd367c5250d82d1c2", [2, 3, 4, 0]),
    "randperm-8-18446744073709551615": ("uint32", "d99ecf80373159d36872c10a8d611dc0", [2, 1, 0, 5]),
    "randperm-8--9223372036854775808": ("uint32", "74fdd118f5d1edd0af125642474fe45e", [4, 0, 5, 6]),
    "randperm-9-0": ("uint32", "a5325060bf2d52465c59c27cd06dcc33", [1, 3, 5, 0]),
    "randperm-9-1": ("uint32", "3e7cd5c66f816e89c3528696d2afbf8e", [5, 8, 7, 0]),
    "randperm-9-12345": ("uint32", "9cf7b07958466f37c7414e09bd6c52b9", [4, 2, 6, 0]),
    "randperm-9-18446744073709551615": ("uint32", "55522cecb9cc70762b6a3ee80dfabb4f", [2, 5, 4, 0]),
    "randperm-9--9223372036854775808": ("uint32", "bccc75b8c24edaa18b59a72d089f0b3f", [7, 0, 2, 3]),
    "randperm-10-0": ("uint32", "15c1efe15d376792a076a39099face38", [9, 3, 5, 0]),
    "randperm-10-1": ("uint32", "87166308dce54f09e10cb032080ab1d5", [9, 8, 7, 0]),
    "randperm-10-12345": ("uint32", "7ac9a4a39c3db175338f55076094245e", [4, 2, 6, 0]),
    "randperm-10-18446744073709551615": (
        "uint32",
        "b3a9eb969dcc70a47f2e757bbd0a7cbd",
        [2, 9, 4, 0],
    ),
    "randperm-10--9223372036854775808": (
        "uint32",
        "e170160ad90a7ecc7ed360fffbe97086",
        [7, 0, 2, 9],
    ),
    "randperm-15-0": ("uint32", "ae347a0f3ef1a04c055a8bbe58772f4e", [9, 13, 5, 0]),
    "randperm-15-1": ("uint32", "2ffd2ba73e82908c71cea03ed7573d37", [9, 11, 7, 0]),
    "randperm-15-12345": ("uint32", "83a51a85f2aed38ce59917ebab506125", [4, 2, 6, 0]),
    "randperm-15-18446744073709551615": (
        "uint32",
        "d37be6380a2542ff72e1fa002cfd7cdf",
        [11, 9, 4, 0],
    ),
    "randperm-15--9223372036854775808": (
        "uint32",
        "98d6b1fe4c8880895224673a65fab569",
        [7, 0, 2, 13],
    ),
    "randperm-16-0": ("uint32", "5858194c406a3260e1b796686e0a2c9a", [9, 13, 5, 0]),
    "randperm-16-1": ("uint32", "2649f014cb1a24f140b63cf9c50c0f19", [9, 11, 7, 0]),
    "randperm-16-12345": ("uint32", "7917fe91364b34c350b15bddb929e0fb", [4, 2, 6, 0]),
    "randperm-16-18446744073709551615": (
        "uint32",
        "528a7be7e6d1c172c8defbc2a821a6c1",
        [11, 9, 4, 0],
    ),
    "randperm-16--9223372036854775808": (
        "uint32",
        "7f844a1e9ed588173104eb6e03d7bd8e",
        [7, 0, 2, 13],
    ),
    "randperm-17-0": ("uint32", "81267db25cbcf02c381fa4ae0290ea69", [1, 7, 4, 0]),
    "randperm-17-1": ("uint32", "861d2a097f0fa11a27a7790150c74dc2", [3, 7, 14, 0]),
    "randperm-17-12345": ("uint32", "f0c83bc0b6f6c683d0a9e6b2d83ae510", [12, 8, 9, 1]),
    "randperm-17-18446744073709551615": (
        "uint32",
        "6fcc8b55fc29820b525185e842a1c245",
        [16, 5, 7, 4],
    ),
    "randperm-17--9223372036854775808": (
        "uint32",
        "d021f5a09f046236e66e6c1df7c002c9",
        [10, 11, 7, 12],
    ),
    "randperm-31-0": ("uint32", "67840fb431fc8dbec622a27c3e3eb6d9", [18, 28, 17, 0]),
    "randperm-31-1": ("uint32", "94395465daa3d02aa9b672e91bea4947", [19, 7, 17, 0]),
    "randperm-31-12345": ("uint32", "cb1386034c211bbe7922eaaee1e6c521", [12, 8, 21, 1]),
    "randperm-31-18446744073709551615": (
        "uint32",
        "018237ee97df872b2fb3846797df1b1a",
        [30, 5, 7, 18],
    ),
    "randperm-31--9223372036854775808": (
        "uint32",
        "688451ad6d9b3bb0eb29f77ed07cfb0d",
        [22, 11, 23, 12],
    ),
    "randperm-32-0": ("uint32", "616b355081824efa071ced5262d1773f", [18, 28, 17, 0]),
    "randperm-32-1": ("uint32", "2d4791daa8d30c9be95925fe8ff0ea74", [19, 7, 17, 0]),
    "randperm-32-12345": ("uint32", "866eb2a2e1cfeaab20ce866d7609d6d5", [12, 8, 21, 1]),
    "randperm-32-18446744073709551615": (
        "uint32",
        "ff2791be7c4e93252143c865f0b61a84",
        [30, 5, 7, 18],
    ),
    "randperm-32--9223372036854775808": (
        "uint32",
        "3dd34ad5c2f66e265a250206e1db9a21",
        [22, 11, 23, 12],
    ),
    "randperm-33-0": ("uint32", "902f229c727dbcd91c0a92abcd810b6d", [30, 10, 31, 22]),
    "randperm-33-1": ("uint32", "c0f33510475af93ad507b1431fdac9ef", [0, 2, 8, 7]),
    "randperm-33-12345": ("uint32", "5841fa4891c2a03063346352b1fbec2a", [2, 32, 20, 22]),
    "randperm-33-18446744073709551615": (
        "uint32",
        "a97c5c130e944e25d9222a26764e4449",
        [17, 6, 1, 22],
    ),
    "randperm-33--9223372036854775808": (
        "uint32",
        "041b5475b875a575ed8fc30233460d0a",
        [31, 7, 25, 16],
    ),
    "randperm-63-0": ("uint32", "f23d4d3ec376a65e16d8f4103d00884e", [38, 10, 31, 53]),
    "randperm-63-1": ("uint32", "aeb8986d19b6ee997083b8e430d35828", [49, 2, 36, 7]),
    "randperm-63-12345": ("uint32", "c5203efeb847af628a6d3af97a3fc7ad", [2, 32, 20, 22]),
    "randperm-63-18446744073709551615": (
        "uint32",
        "9a30151b3f2e81705288cadf2bd0a5ad",
        [58, 6, 1, 57],
    ),
    "randperm-63--9223372036854775808": (
        "uint32",
        "f8430b59c8ebebe652c159f94447433b",
        [31, 48, 47, 34],
    ),
    "randperm-64-0": ("uint32", "5a441a943d3239c22b2201dd4a6f0eba", [38, 10, 31, 63]),
    "randperm-64-1": ("uint32", "a5e9f94d5d9482a0b37210dd75514afe", [49, 2, 36, 7]),
    "randperm-64-12345": ("uint32", "4f44af47003f7efa43750c7a77e6f361", [2, 32, 20, 22]),
    "randperm-64-18446744073709551615": (
        "uint32",
        "21de25526c1e2a3856b65f9995d49f74",
        [58, 6, 1, 57],
    ),
    "randperm-64--9223372036854775808": (
        "uint32",
        "817339caa20328c107917705eb2d568a",
        [31, 48, 47, 34],
    ),
    "randperm-65-0": ("uint32", "4957e5d93906feba8ea3909edea246e1", [9, 49, 15, 13]),
    "randperm-65-1": ("uint32", "e03f1f67ad1a08a364b131be44a17c2f", [3, 5, 48, 38]),
    "randperm-65-12345": ("uint32", "47e0ede629e6634277fa2901491a2b52", [26, 25, 53, 44]),
    "randperm-65-18446744073709551615": (
        "uint32",
        "a62c2b82a84a4416794678d924971546",
        [57, 35, 42, 53],
    ),
    "randperm-65--9223372036854775808": (
        "uint32",
        "3083d8ac1683a1b89ef7bdc32d8f582d",
        [50, 21, 64, 20],
    ),
    "randperm-100-0": ("uint32", "68f3cf652c9608c14443d2a66c8c3dbf", [9, 49, 15, 76]),
    "randperm-100-1": ("uint32", "d455f9098092bac212bf90c8e93cd740", [3, 5, 48, 38]),
    "randperm-100-12345": ("uint32", "d1bc363249a6077f806c1cd1843d8e1e", [26, 25, 87, 44]),
    "randperm-100-18446744073709551615": (
        "uint32",
        "de2da438e3612b30c76012786d8c5a50",
        [74, 35, 42, 53],
    ),
    "randperm-100--9223372036854775808": (
        "uint32",
        "6c80487fc4ca42c8154a729079a55bac",
        [50, 68, 64, 20],
    ),
    "randperm-127-0": ("uint32", "75da6c54419e16c2ffb64045484c3d18", [115, 49, 15, 76]),
    "randperm-127-1": ("uint32", "4c402bc62cb7329d2fb20700fc431851", [3, 5, 48, 122]),
    "randperm-127-12345": ("uint32", "4fd4c4ae095ce4300226e133435fc5f2", [103, 25, 87, 113]),
    "randperm-127-18446744073709551615": (
        "uint32",
        "ee7da9330e70413f3f996617cd558da9",
        [74, 35, 42, 53],
    ),
    "randperm-127--9223372036854775808": (
        "uint32",
        "a0a139e3b1c453a527fe394bffa97c01",
        [117, 68, 125, 20],
    ),
    "randperm-128-0": ("uint32", "58e6718d2d01da961fa558477b5aa91c", [115, 49, 15, 76]),
    "randperm-128-1": ("uint32", "27cbc970b97f7892ecda52b609125dcc", [3, 5, 48, 122]),
    "randperm-128-12345": ("uint32", "a4ca8aa9890ba92834afc1a9fba6f529", [103, 25, 87, 113]),
    "randperm-128-18446744073709551615": (
        "uint32",
        "081e58d13ccee4f6f3cf78d0a808c20a",
        [74, 35, 42, 53],
    ),
    "randperm-128--9223372036854775808": (
        "uint32",
        "eac79039a79dec9b0b346edefe13d387",
        [117, 68, 125, 20],
    ),
    "randperm-129-0": ("uint32", "66730770bdbf85910a1dce046a5ec387", [78, 15, 106, 104]),
    "randperm-129-1": ("uint32", "545862162189ed434ccc1fbf45583a32", [99, 67, 103, 80]),
    "randperm-129-12345": ("uint32", "469486fdde103709cb1d14b5e3f6ea49", [76, 48, 73, 28]),
    "randperm-129-18446744073709551615": (
        "uint32",
        "7483c887472af31b3f03cd8a4212f44e",
        [41, 124, 18, 57],
    ),
    "randperm-129--9223372036854775808": (
        "uint32",
        "9ae097c760f9d5d351c2c55f01c92bef",
        [104, 101, 56, 115],
    ),
    "randperm-255-0": ("uint32", "88654b83dabc72853194b541223bc7f7", [78, 144, 106, 104]),
    "randperm-255-1": ("uint32", "753eace0550a3ce3b8d1f836693282ff", [133, 67, 103, 80]),
    "randperm-255-12345": ("uint32", "31909fb83e4a49a023fe81b5ab5249f4", [216, 48, 73, 28]),
    "randperm-255-18446744073709551615": (
        "uint32",
        "bed59b68c5c0805a24eecbed1eba913c",
        [41, 179, 143, 165],
    ),
    "randperm-255--9223372036854775808": (
        "uint32",
        "08fc4c696364ffaa9328406acb1d7652",
        [216, 101, 221, 115],
    ),
    "randperm-256-0": ("uint32", "66974acf8f2c7c8481a17f1b51dc99f5", [78, 144, 106, 104]),
    "randperm-256-1": ("uint32", "67af64ab5c8bf5aa0efe762c0959e986", [133, 67, 103, 80]),
    "randperm-256-12345": ("uint32", "9ea27e1fec226b0a849709be948ff4f3", [216, 48, 73, 28]),
    "randperm-256-18446744073709551615": (
        "uint32",
        "21e1e4ba94a5525e2db47880197c13ed",
        [41, 179, 143, 165],
    ),
    "randperm-256--9223372036854775808": (
        "uint32",
        "ca13812ecbd8e8e444d881b90e9b236a",
        [216, 101, 221, 115],
    ),
    "randperm-257-0": ("uint32", "8b5987f42c461625e5af7109a172d0ac", [243, 172, 242, 90]),
    "randperm-257-1": ("uint32", "687be1fb8dd85c5fc3cbee3fe76f1a66", [224, 239, 215, 80]),
    "randperm-257-12345": ("uint32", "f1d3ffffedce2994f7b77c4ea64462ce", [183, 164, 36, 42]),
    "randperm-257-18446744073709551615": (
        "uint32",
        "84c9b36e30e1faa23d96cab9210a7cd6",
        [58, 160, 232, 110],
    ),
    "randperm-257--9223372036854775808": (
        "uint32",
        "30bb4ae151ecc05f0ff7ac2a926a1ab8",
        [77, 164, 11, 255],
    ),
    "randperm-1000-0": ("uint32", "20c2de8f7c8a10fc9b79d67ff0d8268c", [193, 781, 157, 167]),
    "randperm-1000-1": ("uint32", "f643ee55439b1227b1e361da5b87a104", [577, 891, 98, 993]),
    "randperm-1000-12345": ("uint32", "f879a84feddcb6109421c853370c0fdf", [75, 939, 457, 986]),
    "randperm-1000-18446744073709551615": (
        "uint32",
        "a87359cc1d1e64dae58b4e96882b363c",
        [618, 789, 159, 923],
    ),
    "randperm-1000--9223372036854775808": (
        "uint32",
        "5f2ca826686853b650f40708dc6bf58d",
        [8, 274, 31, 766],
    ),
    "randperm-1023-0": ("uint32", "a6a3a73ea8e3a3b61d95f49b09391186", [193, 781, 157, 167]),
    "randperm-1023-1": ("uint32", "63e86b0fba3b6785f4cc50e2f6ec6e33", [577, 891, 98, 993]),
    "randperm-1023-12345": ("uint32", "97ea623bee6a7dc2a78ef4396aa453ae", [75, 939, 457, 986]),
    "randperm-1023-18446744073709551615": (
        "uint32",
        "517c40c5105471bd938a53096606d1d0",
        [618, 789, 159, 1003],
    ),
    "randperm-1023--9223372036854775808": (
        "uint32",
        "7e9da9450b907500575e56f2dc725147",
        [8, 1019, 31, 766],
    ),
    "randperm-1024-0": ("uint32", "93f09b7514320cdbd1cab133b658ae3a", [193, 781, 157, 167]),
    "randperm-1024-1": ("uint32", "a1bf8462a25a0740307b8b0cb96bed51", [577, 891, 98, 993]),
    "randperm-1024-12345": ("uint32", "370139b8a95edd10b4d7a5823d3c1c11", [75, 939, 457, 986]),
    "randperm-1024-18446744073709551615": (
        "uint32",
        "13d92d8364b3ec2fe880c6d451119c9d",
        [618, 789, 159, 1003],
    ),
    "randperm-1024--9223372036854775808": (
        "uint32",
        "8d60d605f8bea07f1b40a5bf90587892",
        [8, 1019, 31, 766],
    ),
    "randperm-1025-0": ("uint32", "a3f649b55f3cf79fb0ef570359023b19", [736, 485, 527, 583]),
    "randperm-1025-1": ("uint32", "b9fdba063ef1656e35291377d996ebc3", [135, 272, 667, 856]),
    "randperm-1025-12345": ("uint32", "8fde66880c13777e032432a63ab29d77", [276, 484, 628, 401]),
    "randperm-1025-18446744073709551615": (
        "uint32",
        "54441f204a8e9b350e05fd8e03de024f",
        [781, 410, 596, 825],
    ),
    "randperm-1025--9223372036854775808": (
        "uint32",
        "5792d075a67eb682251a121a201aaf60",
        [643, 413, 984, 584],
    ),
    "randperm-4095-0": ("uint32", "f0538ea331a9103791908d8507cab0e2", [187, 2822, 3564, 1480]),
    "randperm-4095-1": ("uint32", "cdca7aab56ced1e5bb2bbf7afbd5822b", [1399, 3353, 3360, 1022]),
    "randperm-4095-12345": ("uint32", "3e835739dc9af324090fc0c2ae1c25c8", [58, 3148, 2507, 1626]),
    "randperm-4095-18446744073709551615": (
        "uint32",
        "648cd72e74d891d0c60eed21edef6ce2",
        [1316, 2593, 1877, 1410],
    ),
    "randperm-4095--9223372036854775808": (
        "uint32",
        "30858bf81abbd752943007e5126435ea",
        [142, 2709, 964, 3381],
    ),
    "randperm-4096-0": ("uint32", "a6402965e69b319d798c8af975722707", [187, 2822, 3564, 1480]),
    "randperm-4096-1": ("uint32", "cec1b5fee3dc972aae9a1bd84265a355", [1399, 3353, 3360, 1022]),
    "randperm-4096-12345": ("uint32", "f7cf831eb424881bee5d38c99c227f4d", [58, 3148, 2507, 1626]),
    "randperm-4096-18446744073709551615": (
        "uint32",
        "b08f65e4ca2b13b7bae7c230cfba271b",
        [1316, 2593, 1877, 1410],
    ),
    "randperm-4096--9223372036854775808": (
        "uint32",
        "42659fe92efd82d1949abaa74125eef5",
        [142, 2709, 964, 3381],
    ),
    "randperm-4097-0": ("uint32", "6abe8ad79af0226f7b91e2d83f9865d8", [2886, 1456, 1847, 548]),
    "randperm-4097-1": ("uint32", "281ad403761c4228acd2e10c1dda9451", [1602, 1136, 230, 1524]),
    "randperm-4097-12345": ("uint32", "42bbe95cacc76034d02cc6f9e01567c1", [3480, 2095, 1963, 2050]),
    "randperm-4097-18446744073709551615": (
        "uint32",
        "4fb48c3ecd6645b05674fffeb594cbfd",
        [1456, 2812, 3039, 556],
    ),
    "randperm-4097--9223372036854775808": (
        "uint32",
        "9434894822dcb71841c2202bb23f2df2",
        [72, 1305, 23, 1119],
    ),
    "randperm-10000-0": ("uint32", "6ae516a5ce7dcb1481dab639a1959923", [4288, 8773, 710, 9532]),
    "randperm-10000-1": ("uint32", "4a5005f1852ec32181b036ed0f3c97b3", [3082, 8362, 6686, 5092]),
    "randperm-10000-12345": ("uint32", "a00034e36ad3d99f46051794f3c02f1f", [5085, 4599, 5947, 240]),
    "randperm-10000-18446744073709551615": (
        "uint32",
        "f443f3484342aff46070f0a4bf5a5926",
        [1180, 4128, 7313, 320],
    ),
    "randperm-10000--9223372036854775808": (
        "uint32",
        "f4e24d9ad414063746c433c50a1aa9fa",
        [4467, 710, 1369, 3273],
    ),
    "randperm-65535-0": ("uint32", "dd30cbfa6abf49bafaabf4f8e000087b", [7467, 43349, 23576, 56144]),
    "randperm-65535-1": ("uint32", "94237ef284ad3efbd507daa9aeb7002f", [6916, 59913, 26099, 58454]),
    "randperm-65536-0": ("uint32", "dd2994225f51a223d15185c36cc45c28", [7467, 43349, 23576, 56144]),
    "randperm-65536-1": ("uint32", "50793c7c0a448fb5b9af56ea56a31cef", [6916, 59913, 26099, 58454]),
    "randperm-65537-0": (
        "uint32",
        "2609b1e8f705a21dae35be371a239d1a",
        [15840, 51134, 57594, 19379],
    ),
    "randperm-65537-1": ("uint32", "8b60fa0c531f94e383ced78bd35bec27", [24021, 58883, 14286, 4990]),
    "randperm-100003-0": (
        "uint32",
        "8662bc32af7ad9cf0bd96081a35def71",
        [15840, 51134, 57594, 19379],
    ),
    "randperm-100003-1": (
        "uint32",
        "66690169283a43e6414c2b4125cd10bd",
        [96388, 91479, 14286, 93185],
    ),
    "randperm-131073-0": (
        "uint32",
        "af62233dcd07cc8a9a6e38b9079b9a0b",
        [37512, 129469, 96063, 101698],
    ),
    "randperm-131073-1": (
        "uint32",
        "27b19fe2d587847b8feffb378b4a37f9",
        [128821, 17261, 95922, 14546],
    ),
    "randperm-262145-0": (
        "uint32",
        "cab97563fa53df42d261388a1b8ee75e",
        [182497, 86699, 32344, 252485],
    ),
    "randperm-262145-1": (
        "uint32",
        "9edd4eb82876da97fcfeb9c957e638e7",
        [17566, 223260, 211651, 254028],
    ),
    "randperm-1000000-0": (
        "uint32",
        "035bd6f8764557aa742e16734c963251",
        [522994, 994240, 598786, 471589],
    ),
    "randperm-1000000-1": (
        "uint32",
        "509562822b571bf0cd8b6ca048383327",
        [324252, 584483, 196321, 543750],
    ),
    "randperm-1048575-0": (
        "uint32",
        "e111a4fd7bf6f75f673540c3cba48edd",
        [522994, 994240, 598786, 471589],
    ),
    "randperm-1048575-1": (
        "uint32",
        "b805c9bc3322833c2ad7a3a205162e79",
        [324252, 584483, 196321, 1008387],
    ),
    "randperm-1048577-0": (
        "uint32",
        "7cabf9f2032febb15767c33fa501c6df",
        [522994, 234622, 598786, 583003],
    ),
    "randperm-1048577-1": (
        "uint32",
        "66a6f05407365cf10cc19fef07f39dd1",
        [954682, 47144, 30284, 115604],
    ),
    "randperm-16777216-7": (
        "uint32",
        "1d7440b668fbb7456ef23db42e8b7ffe",
        [11973198, 12876898, 7184600, 3374341],
    ),
    "randperm-16777217-7": (
        "uint32",
        "79dccbec51fd6895a2f87c5beacd52b7",
        [2305439, 5458655, 15273110, 692786],
    ),
    "epochs-5": ("uint32", "da2dd05c74689943e629aefc47ff79af", [1, 2, 0, 3]),
    "epochs-17": ("uint32", "0981286c904c4c3de509f5e1b1a452a5", [10, 12, 14, 15]),
    "epochs-1000": ("uint32", "b8780070aea564fcb11ffb0c5c63c8fb", [190, 970, 968, 421]),
    "epochs-65537": ("uint32", "26d5706ebccf6a9f596bf1a4ada99f3b", [62993, 57418, 25236, 19106]),
    "epochs-1000001": (
        "uint32",
        "29fda7d5ec862e54958481d49795b50b",
        [900996, 489281, 318896, 947317],
    ),
    "strided-16777217": (
        "uint32",
        "88e193f26e4f13f49a2bb0580a620fbc",
        [10068863, 6517960, 9590925, 11335697],
    ),
    "run-16777217": (
        "int64",
        "386713335f1179da28bd0d2b73ba0a30",
        [13698416, 6264188, 6985949, 2587891],
    ),
    "run-end-16777217": (
        "int64",
        "168c9c9ead3e5fc37e7197603f9b54f3",
        [15608090, 11941061, 5474206, 9159588],
    ),
    "strided-10000000": (
        "uint32",
        "1c84154e1f88da908b8649de3dc3b5e8",
        [1236765, 2225312, 5647976, 5079175],
    ),
    "run-10000000": (
        "int64",
        "18d907275e393d6ba196f6f263ad2a58",
        [6636778, 1686763, 4953954, 650011],
    ),
    "run-end-10000000": (
        "int64",
        "d9ccd30fb219653aaab971e5f8bab41f",
        [9911993, 7781370, 2711036, 224291],
    ),
    "strided-4294967295": (
        "uint32",
        "d6b1cf778f5839ed79de7ab5c07da30a",
        [198448491, 3382186294, 1225654847, 3109620924],
    ),
    "run-4294967295": (
        "int64",
        "130463e380a1ca9e483852ed37f6c7b3",
        [3000849424, 1386328815, 2733297436, 1899402903],
    ),
    "run-end-4294967295": (
        "int64",
        "4cff3a924c6f0f0c0b75f3ed72bb0cb1",
        [466086052, 3943963116, 3129142627, 3462564384],
    ),
    "strided-4294967296": (
        "uint32",
        "5a5ab3cc6ff5bedb08f0b1026c954fb2",
        [198448491, 3382186294, 1225654847, 3109620924],
    ),
    "run-4294967296": (
        "int64",
        "130463e380a1ca9e483852ed37f6c7b3",
        [3000849424, 1386328815, 2733297436, 1899402903],
    ),
    "run-end-4294967296": (
        "int64",
        "2630e67fcd4468c73ff53a813477de2f",
        [3943963116, 3129142627, 3462564384, 2862305977],
    ),
    "strided-4294967297": (
        "int64",
        "5d5d15376ec5ded6f4f35b0aadac98d6",
        [1475232202, 1093302457, 1676081153, 355841411],
    ),
    "run-4294967297": (
        "int64",
        "be89d0fe665ef7930ab9fc43df7b243b",
        [3130751660, 1386328815, 973847669, 2760177538],
    ),
    "run-end-4294967297": (
        "int64",
        "3456d362db8ce0c4b97a0c18e26013be",
        [562903784, 1900555205, 1334745809, 1357810328],
    ),
    "strided-1099511627777": (
        "int64",
        "1dbe77ba0b5c007445d608a8107c35bc",
        [895728126128, 550443600524, 677820500115, 549508786051],
    ),
    "run-1099511627777": (
        "int64",
        "56c566741bad6728ded4b3842496f9b6",
        [291648799180, 129597699641, 869205709093, 936550557580],
    ),
    "run-end-1099511627777": (
        "int64",
        "4fa7c6c951625a7b507dc38713638b3a",
        [382217477479, 829421453243, 290076909212, 158347196556],
    ),
    "strided-1000000000000": (
        "int64",
        "2f07eb24f1396055270e864fbebbb31a",
        [561750515298, 531969785416, 744739723119, 585768105188],
    ),
    "run-1000000000000": (
        "int64",
        "c8f237b77c0974f1e3ab252431ffd789",
        [118890724158, 516616066591, 701926068335, 561600873339],
    ),
    "run-end-1000000000000": (
        "int64",
        "77b2fb904a0d7c31eb8bc50c06f27898",
        [144950702742, 748437331317, 117568797001, 701234319407],
    ),
    "strided-4611686018427400249": (
        "int64",
        "0aff96e7312f00c4d1c614ead645a145",
        [1324710582143011958, 416976056203364570, 3231397274149072212, 2008701325427763453],
    ),
    "run-4611686018427400249": (
        "int64",
        "5b58fef6a37e36e936a96b78c072644c",
        [45459879916832073, 517128605480786889, 1671865336123097595, 4389644884704601266],
    ),
    "run-end-4611686018427400249": (
        "int64",
        "905a6f6c14ad4421a58c2d6cbadfcf39",
        [3602216530007083426, 2745158358906137479, 4412561848525403130, 326125228808666176],
    ),
    "strided-9223372036854775807": (
        "int64",
        "818e2d4c6efdb1debea111385622baa3",
        [2575280358616415462, 3650523406159346569, 230430826413046587, 1561399558589122292],
    ),
    "run-9223372036854775807": (
        "int64",
        "b335d591a016bd35b46277b57c8fa32d",
        [8549320386209088707, 793947913248650020, 9158837597816429491, 7257068104238482546],
    ),
    "run-end-9223372036854775807": (
        "int64",
        "4b1e7fb38f52a052d5fee3338d4115fe",
        [1057574168455387338, 5943912227588829935, 7538695634050141074, 8354176109827574606],
    ),
    "ranks-1-3-False": ("int64", "834a709ba2534ebe3ee1397fd4f7bd28", [0, 0, 0, 0]),
    "ranks-10-3-False": ("int64", "9b53700553ea888daa483856c96084dc", [5, 6, 2, 8]),
    "ranks-1000-7-True": ("int64", "bcb24719c45345ca06b5720350fbdcdf", [150, 896, 319, 791]),
    "ranks-100003-4": ("int64", "89ade71594908f8e8f381066962bd467", [33378, 69568, 64496, 94276]),
    "elastic-1000": ("int64", "14508986e15fa166aca2750549e7e9bf", [297, 252, 470, 535]),
    "elastic-65537": ("int64", "f7f448ba785d1c0dabcf51108d3284c0", [29076, 59083, 62633, 15712]),
    "mixture-3": ("int64", "0ea97afc42bfd3dc6b4a3f4523379ca2", [763, 7, 1, 540]),
    "mixture-ranks": ("int64", "8022cd2bea3a5de1cb2a1d33809c4f2e", [75, 47, 2577, 1672]),
    "mixture-deep": ("int64", "351c2426288c39344b5fdecb1d8e0f0f", [4, 805233, 18502, 1]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_lazy_order_keeps_its_pinned_values(name: str) -> None:
    assert _digest(CASES[name]()) == PINNED[name]

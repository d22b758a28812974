"""``randperm`` equals ``torch.randperm`` bit for bit, in both of torch's CPU regimes, and
follows the installed torch's generation of its loop (torch 2.6 changed it past 214,748,364)."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from importlib.metadata import version

import numpy as np
import pytest
import torch

import resumable_samplers as rs
from resumable_samplers import _core, _torch_version
from resumable_samplers.permutation import core_order, same_order

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


# torch.randperm(214_748_365, generator=torch.Generator().manual_seed(0)), SHA-256 of its values as
# int64 bytes, computed with torch 2.5.1 (the swap loop) and with torch 2.6.0 and 2.7.0 (the
# inside-out loop); see docs/permutation.md for how to repeat it.
PAST_LIMIT = SWAP_LIMIT + 1
SHA256_TORCH_2_5_1 = "058b6df83b3c56a90a0a5915afdfe5e01fc75ee305a05a13e7ff0bf5bf98def7"
SHA256_TORCH_2_6_0 = "7762b4366ea20eb680f7cf9e6766be4cb196731aaf3ffdf906f30db34c6ac2ea"


def _sha256(a: np.ndarray) -> str:  # type: ignore[type-arg]
    h = hashlib.sha256()
    for i in range(0, len(a), 1 << 22):
        h.update(np.ascontiguousarray(a[i : i + (1 << 22)], dtype=np.int64).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize(
    ("order", "want"), [("torch-legacy", SHA256_TORCH_2_5_1), ("torch", SHA256_TORCH_2_6_0)]
)
def test_each_generation_equals_its_torch_release_past_the_limit(order: str, want: str) -> None:
    a = _core.randperm(PAST_LIMIT, 0, order)
    assert a.dtype == np.uint32 and len(a) == PAST_LIMIT
    assert _sha256(a) == want


@pytest.mark.parametrize("n", [0, 1, 2, 1000, 65537, 10**6, 1_500_007])
def test_the_generations_agree_below_the_limit(n: int) -> None:
    for seed in (0, 2**64 - 1):
        np.testing.assert_array_equal(
            _core.randperm(n, seed, "torch"), _core.randperm(n, seed, "torch-legacy")
        )
    legacy = _core.Epoch(n, 3, 1, 0, False, "torch-legacy", 4, 2).array()
    current = _core.Epoch(n, 3, 1, 0, False, "torch", 4, 2).array()
    np.testing.assert_array_equal(legacy, current)
    assert same_order("torch", "torch-legacy", n)


def test_a_legacy_epoch_is_the_legacy_permutation_sharded() -> None:
    n, w, r = 2**20 + 7, 3, 1  # streamed
    perm = _core.randperm(n, 9, "torch-legacy")
    epoch = _core.Epoch(n, w, r, 0, False, "torch-legacy", 4, 5)
    want = perm[(r + w * np.arange(len(epoch))) % n]
    np.testing.assert_array_equal(epoch.array(), want)
    assert list(epoch.reader(len(epoch) - 5)) == want[-5:].tolist()


def test_same_order() -> None:
    assert same_order("torch", "torch-legacy", SWAP_LIMIT - 1)
    assert not same_order("torch", "torch-legacy", SWAP_LIMIT)
    assert same_order("torch-legacy", "torch-legacy", 2**40)
    assert not same_order("torch", "lazy", 10)
    assert _core.SWAP_REGIME_LIMIT == SWAP_LIMIT
    assert set(_core.ORDER_NAMES) == {"torch", "torch-legacy", "lazy", "identity"}
    with pytest.raises(ValueError, match="torch-legacy"):
        same_order("torch", "numpy", 10)


def test_the_limits_are_the_cores() -> None:
    """The core exports its limits; the samplers, the state check and the command line take
    them from there."""
    import torch

    from resumable_samplers import _checks, _cli, mixture

    assert _core.MAX_LEN == torch.iinfo(torch.int64).max == _checks.MAX_LEN == _cli.MAX_LEN
    g = torch.Generator()
    for seed in (_core.SEED_MIN, _core.SEED_END - 1):
        g.manual_seed(seed)  # torch's own range, both ends
    for seed in (_core.SEED_MIN - 1, _core.SEED_END):
        with pytest.raises((RuntimeError, ValueError)):
            g.manual_seed(seed)
    assert (_checks.SEED_MIN, _checks.SEED_END) == (_core.SEED_MIN, _core.SEED_END)
    assert mixture.MAX_WEIGHT_SUM == _core.MAX_WEIGHT_SUM == 2**62
    assert rs.PERMUTATIONS == ("torch", "lazy")
    assert set(rs.PERMUTATIONS) | set(mixture.MIXTURE_PERMUTATIONS) <= set(_core.ORDER_NAMES)
    # transformers' megabatches hold megabatch_mult * batch_size samples, all of them at most.
    assert [_core.megabatch_size(10, 3, m) for m in (1, 3, 4)] == [3, 9, 10]
    s = rs.ResumableLengthGroupedSampler(list(range(10)), 3, megabatch_mult=4)
    assert s.megabatch_size == 10


@pytest.mark.parametrize(
    ("torch_version", "order"),
    [
        ("2.1.0", "torch-legacy"),
        ("2.5.1+cu124", "torch-legacy"),
        ("2.6.0", "torch"),
        ("2.6.0rc1", "torch"),
        ("2.7.0+cpu", "torch"),
        ("2.15.0+cu132", "torch"),
        ("3.0", "torch"),
        ("10.1.0", "torch"),
        ("1.13.1", "torch-legacy"),
    ],
)
def test_order_for_version(torch_version: str, order: str) -> None:
    assert _torch_version.order_for_version(torch_version) == order


def test_order_for_an_unreadable_version_is_an_error() -> None:
    with pytest.raises(ValueError, match="torch version"):
        _torch_version.order_for_version("nightly")


def test_torch_follows_the_installed_torch() -> None:
    installed = version("torch")
    assert torch.__version__.startswith(installed.split("+")[0])
    assert core_order("torch") == _torch_version.order_for_version(installed)
    assert core_order("lazy") == "lazy"
    with pytest.raises(ValueError, match="permutation"):
        core_order("torch-legacy")  # a core name, not a public choice


def test_choosing_the_generation_does_not_import_torch() -> None:
    path = _torch_version.__file__
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('tv', {path!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print(m.torch_order(), 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [core_order("torch"), "False"]
    assert importlib.util.find_spec("torch") is not None


def _other_generation() -> str:
    return "torch-legacy" if core_order("torch") == "torch" else "torch"


@pytest.mark.parametrize(
    ("sources", "num_samples", "refused"),
    [
        ([SWAP_LIMIT, 10], 20, True),  # a short epoch of a long source
        ([10, 3 * 10**8, 5], 30, True),
        ([SWAP_LIMIT - 1, 10], 20, False),
        ([SWAP_LIMIT - 1, SWAP_LIMIT - 1], 3 * 10**8, False),  # a long epoch of short sources
        ([1, 1], 2**40, False),  # sources of one item: any order is the identity
    ],
)
def test_a_mixture_state_of_the_other_generation_is_refused_by_its_sources(
    sources: list[int], num_samples: int, refused: bool
) -> None:
    """Each source of a torch-ordered mixture is permuted by ``randperm(len(source))``: the two
    generations order it alike only if every source is below the limit, whatever num_samples."""
    s = rs.ResumableMixtureSampler(
        sources,
        [1] * len(sources),
        num_samples=num_samples,
        permutation="torch",
        seed=2,
        num_replicas=1,
        rank=0,
    )  # no source is materialised: lengths only, nothing iterated
    state = {**s.state_dict(), "permutation": _other_generation(), "offset": 3}
    if refused:
        with pytest.raises(ValueError, match="'permutation'"):
            s.load_state_dict(state)
        assert s.state_dict()["offset"] == 0
    else:
        s.load_state_dict(state)
        assert s.state_dict()["offset"] == 3


@pytest.mark.parametrize(("n", "refused"), [(SWAP_LIMIT, True), (SWAP_LIMIT - 1, False)])
def test_a_token_budget_state_of_the_other_generation_is_refused_by_its_sample_count(
    n: int, refused: bool
) -> None:
    """The samples are permuted by ``randperm(len(lengths))`` before they are batched, so the
    number of samples decides, not the (smaller) number of batches. The sampler is built over a
    few samples and then told it has ``n`` (its epoch stays the one built), so that no array of
    ``n`` lengths is needed."""
    s = rs.ResumableTokenBudgetBatchSampler([5, 1, 3, 2] * 10, 12, seed=4, num_replicas=1, rank=0)
    state = {**s.state_dict(), "permutation": _other_generation(), "offset": 2}
    assert state["dataset_length"] < 40
    s._lengths.n = n
    if refused:
        with pytest.raises(ValueError, match="'permutation'"):
            s.load_state_dict(state)
    else:
        s.load_state_dict(state)
        assert s.state_dict()["offset"] == 2

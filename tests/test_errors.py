"""Bad input raises a Python exception that names the argument and what is accepted."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import resumable_samplers as rs
from conftest import Sized

DS = Sized(10)


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (
            lambda: rs.ResumableRandomSampler(DS, batch_size=0),
            ValueError,
            r"batch_size.*positive.*0",
        ),
        (lambda: rs.ResumableRandomSampler(DS, batch_size=-3), ValueError, r"batch_size.*-3"),
        (lambda: rs.ResumableRandomSampler(DS, batch_size=2.0), TypeError, r"batch_size.*float"),
        (lambda: rs.ResumableRandomSampler(DS, batch_size=True), TypeError, r"batch_size.*bool"),
        (lambda: rs.ResumableSequentialSampler(DS, batch_size="4"), TypeError, r"batch_size.*str"),
        (lambda: rs.ResumableSampler(0), ValueError, r"batch_size"),
        (lambda: rs.ResumableDistributedSampler(DS, 2, 0, batch_size=0), ValueError, r"batch_size"),
        (lambda: rs.ResumableDistributedSampler(DS, 0, 0), ValueError, r"num_replicas.*positive"),
        (lambda: rs.ResumableDistributedSampler(DS, -2, 0), ValueError, r"num_replicas.*-2"),
        (
            lambda: rs.ResumableDistributedSampler(DS, 2, 2),
            ValueError,
            r"^Invalid rank 2, rank should be in the interval \[0, 1\]$",
        ),
        (lambda: rs.ResumableDistributedSampler(DS, 2, -1), ValueError, r"rank.*-1"),
        (lambda: rs.ResumableDistributedSampler(DS, 2.5, 0), TypeError, r"num_replicas.*float"),
        (lambda: rs.ResumableDistributedSampler(DS, 2, 0, shuffle=1), TypeError, r"shuffle.*bool"),
        (lambda: rs.ResumableDistributedSampler(DS, 2, 0, drop_last=None), TypeError, r"drop_last"),
        (lambda: rs.ResumableRandomSampler(DS, seed=2**64), ValueError, r"seed.*2\*\*64"),
        (lambda: rs.ResumableRandomSampler(DS, seed=-(2**63) - 1), ValueError, r"seed"),
        (lambda: rs.ResumableRandomSampler(DS, seed=1.5), TypeError, r"seed.*float"),
        (lambda: rs.ResumableDistributedSampler(DS, 2, 0, seed=2**64), ValueError, r"seed"),
        (lambda: rs.ResumableRandomSampler(object()), TypeError, r"data_source.*__len__"),
        (lambda: rs.ResumableSequentialSampler(iter([1])), TypeError, r"data_source.*__len__"),
        (lambda: rs.ResumableDistributedSampler(object(), 2, 0), TypeError, r"dataset.*__len__"),
        (lambda: rs.ResumableRandomSampler(DS, permutation="fast"), ValueError, r"'torch'.*'fast'"),
        (lambda: rs.ResumableDistributedSampler(DS, 2, 0, permutation=1), ValueError, r"permut"),
        (lambda: rs.randperm(-1), ValueError, r"n should be a non-negative integer, got -1"),
        (lambda: rs.randperm(2**63), ValueError, r"n should be in \[0, 2\*\*63 - 1\]"),
        (lambda: rs.randperm(3.0), TypeError, r"n should be an integer"),
        (lambda: rs.randperm(5, seed=2**64), ValueError, r"seed"),
        (lambda: rs.randperm(5, permutation="numpy"), ValueError, r"permutation"),
        (lambda: rs.create_sampler("NoSuchSampler", DS), KeyError, r"ResumableRandomSampler"),
    ],
)
def test_bad_arguments(make: Any, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        make()


def test_start_iter_must_be_a_non_negative_int() -> None:
    for s in (rs.ResumableRandomSampler(DS), rs.ResumableDistributedSampler(DS, 2, 0)):
        with pytest.raises(ValueError, match=r"start_iter.*non-negative.*-1"):
            s.start_iter = -1
        with pytest.raises(TypeError, match=r"start_iter.*bool"):
            s.start_iter = True
        s.start_iter = np.int64(1)  # integer-likes are fine
        assert s.start_iter == 1 and type(s.start_iter) is int


def test_seed_plus_epoch_out_of_range_is_refused_at_iteration() -> None:
    s = rs.ResumableRandomSampler(DS, seed=2**64 - 1)
    assert list(s) == list(rs.randperm(10, -1))  # 2**64 - 1 is torch's seed -1
    s.set_epoch(1)  # seed + epoch = 2**64: torch.Generator refuses it, so do we
    with pytest.raises(ValueError, match=r"seed \+ epoch.*2\*\*64"):
        iter(s)
    d = rs.ResumableDistributedSampler(DS, 2, 0, seed=-(2**63))
    d.set_epoch(-1)
    with pytest.raises(ValueError, match=r"seed \+ epoch"):
        list(d)


def test_set_epoch_needs_an_int() -> None:
    with pytest.raises(TypeError, match="epoch"):
        rs.ResumableRandomSampler(DS).set_epoch(1.0)  # type: ignore[arg-type]
    d = rs.ResumableDistributedSampler(DS, 2, 0)
    d.set_epoch("1")  # torch's set_epoch stores anything; iteration then refuses it
    with pytest.raises(TypeError, match="epoch"):
        iter(d)


def test_numpy_integers_are_accepted() -> None:
    s = rs.ResumableDistributedSampler(DS, np.int32(2), np.int64(1), seed=np.uint64(3))
    assert list(s) == list(rs.ResumableDistributedSampler(DS, 2, 1, seed=3))


def test_no_num_replicas_without_a_process_group_is_torchs_error() -> None:
    with pytest.raises((RuntimeError, ValueError)):
        rs.ResumableDistributedSampler(DS)


def _mixture(**kw: Any) -> rs.ResumableMixtureSampler:
    return rs.ResumableMixtureSampler([10, 20], [1, 2], num_replicas=1, rank=0, **kw)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"weights": [[-1, 2]]}, "weights"),
        ({"weights": [[2**64, 2]]}, "weights"),
        ({"weights": [[1, 2**70]]}, "weights"),
        ({"weight_starts": [-1]}, "weight_starts"),
        ({"weight_starts": [2**64]}, "weight_starts"),
        ({"source_lengths": [10, -20]}, "source_lengths"),
        ({"source_lengths": [10, 2**64]}, "source_lengths"),
    ],
)
def test_mixture_state_integers_out_of_range_name_the_field(
    change: dict[str, Any], field: str
) -> None:
    s = _mixture()
    state = {**s.state_dict(), **change}
    with pytest.raises(ValueError, match=f"'{field}'"):
        s.load_state_dict(state, reweight=True)
    assert list(s) == list(_mixture())


@pytest.mark.parametrize("epoch", [-1, 2**62, 2**64 // 30, 2**64])
def test_mixture_state_epoch_past_the_stream_is_refused_at_load(epoch: int) -> None:
    """The stream positions of epoch ``e`` are ``[e * n, (e + 1) * n)``, which must lie below
    2**64 - 1: a state past that is refused when loaded, not at the first ``next()``."""
    s = _mixture()  # num_samples = 30
    state = {**s.state_dict(), "epoch": epoch}
    with pytest.raises(ValueError, match=r"state field 'epoch'"):
        s.load_state_dict(state)
    assert s.epoch == 0 and list(s) == list(_mixture())


def test_mixture_epoch_bound_is_the_one_checked() -> None:
    """``(epoch + 1) * num_samples`` is the bound, and the message says so."""
    last = (2**64 - 2) // 30 - 1  # (last + 1) * 30 <= 2**64 - 2
    s = _mixture()
    s.set_epoch(last)
    t = _mixture()
    t.load_state_dict(s.state_dict())
    assert t.epoch == last
    epoch = list(s)
    assert len(epoch) == 30 and list(t) == epoch
    s.set_epoch(last + 1)  # epoch * 30 < 2**64 - 1, (epoch + 1) * 30 is not
    with pytest.raises(ValueError, match=r"\(epoch \+ 1\) \* num_samples.*2\*\*64 - 1"):
        list(s)


@pytest.mark.parametrize("w", [2**63, 2**64, 2**70])
@pytest.mark.parametrize("kind", ["mixture", "grouped", "budget", "shard", "distributed"])
def test_huge_num_replicas_is_a_value_error(kind: str, w: int) -> None:
    make = {
        "mixture": lambda: rs.ResumableMixtureSampler([10, 20], [1, 2], num_replicas=w, rank=0),
        "grouped": lambda: rs.ResumableLengthGroupedSampler([3, 1, 2], 2, num_replicas=w, rank=0),
        "budget": lambda: rs.ResumableTokenBudgetBatchSampler([3, 1, 2], 8, num_replicas=w, rank=0),
        "shard": lambda: rs.ResumableShardSampler([3, 1, 2], num_replicas=w, rank=0),
        "distributed": lambda: rs.ResumableDistributedSampler(DS, w, 0),
    }[kind]
    with pytest.raises(ValueError, match=r"num_replicas should be at most 2\*\*63 - 1"):
        len(make())


@pytest.mark.parametrize("b", [2**64, 2**64 + 5, 2**100])
def test_length_grouped_batch_size_from_2_pow_64(b: int) -> None:
    """transformers' default megabatch multiplier is then its minimum, 1: megabatches of the
    whole dataset, the order of ``get_length_grouped_indices`` with one megabatch."""
    lengths = [3, 9, 1, 4, 4, 7]
    s = rs.ResumableLengthGroupedSampler(lengths, b, seed=5, num_replicas=1, rank=0)
    t = rs.ResumableLengthGroupedSampler(lengths, 6, seed=5, megabatch_mult=1)
    assert len(s) == 6 and s.megabatch_size == 6
    assert list(s) == list(t)


@pytest.mark.parametrize("m", [2**64, 2**70])
def test_token_budget_max_batch_size_from_2_pow_64_is_refused_at_construction(m: int) -> None:
    with pytest.raises(ValueError, match=r"max_batch_size should be at most 2\*\*64 - 1"):
        rs.ResumableTokenBudgetBatchSampler([3, 1, 2], 8, max_batch_size=m)
    s = rs.ResumableTokenBudgetBatchSampler([3, 1, 2], 8, max_batch_size=2**64 - 1)
    assert sorted(i for b in s for i in b) == [0, 1, 2]


@pytest.mark.parametrize(("drop_last", "end"), [(False, 12), (True, 8)])
def test_a_state_offset_past_the_end_of_its_epoch_is_refused(drop_last: bool, end: int) -> None:
    """10 items over 4 ranks: torch's epoch ends at 12 (padded) or 8 (``drop_last``)."""
    s = rs.ResumableDistributedSampler(DS, 4, 1, drop_last=drop_last)
    state = {**s.state_dict(), "offset": end + 1}
    with pytest.raises(ValueError, match=rf"state field 'offset' should be in \[0, {end}\]"):
        s.load_state_dict(state)
    s.load_state_dict({**state, "offset": end})
    assert list(s) == []


@pytest.mark.parametrize("rank", [-1, -(2**70), 2, 2**64, 10**40])
@pytest.mark.parametrize(
    "make",
    [
        lambda ds, r: rs.ResumableDistributedSampler(ds, num_replicas=2, rank=r),
        lambda ds, r: rs.ResumableMixtureSampler([3, 2], [1, 1], num_replicas=2, rank=r),
        lambda ds, r: rs.ResumableShardSampler([3, 2], num_replicas=2, rank=r),
    ],
    ids=["distributed", "mixture", "shard"],
)
def test_a_rank_outside_the_ranks_gets_torchs_message(make: Any, rank: int) -> None:
    """Any rank outside ``[0, num_replicas)``, negative or beyond 64 bits, is refused in the
    words of torch's own ``DistributedSampler``."""
    with pytest.raises(ValueError) as want:
        torch.utils.data.DistributedSampler(list(range(5)), num_replicas=2, rank=rank)
    with pytest.raises(ValueError) as got:
        make(list(range(5)), rank)
    assert str(got.value) == str(want.value)

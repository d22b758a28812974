"""Every sampler yields exactly what torch (and helios-ml, which uses torch's rules) yields."""

from __future__ import annotations

import pickle
import random
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.utils.data as tud

import resumable_samplers as rs
from conftest import Sized, torch_perm


@dataclass(frozen=True)
class Config:
    n: int
    seed: int
    epoch: int
    replicas: int
    shuffle: bool
    drop_last: bool
    batch_size: int
    start_iter: int


def generate_configs(count: int) -> list[Config]:
    rng = random.Random(20261122)
    out = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.6:
            n = rng.randint(0, 200)
        elif kind < 0.9:
            n = rng.randint(200, 20_000)
        else:
            n = rng.choice([10**5, 10**6 - 1, 10**6])
        replicas = rng.choice([1, 2, 3, 4, 7, 8, 16, 64]) if n <= 20_000 else rng.choice([1, 2, 3])
        batch_size = rng.choice([1, 2, 3, 8, 32])
        per_rank = -(-n // replicas) if n else 0
        start_iter = rng.choice([0, 0, 1, rng.randint(0, per_rank // batch_size + 2)])
        seed = rng.choice([0, 1, 42, rng.randint(-(2**40), 2**40), 2**63 + 7])
        out.append(
            Config(
                n=n,
                seed=seed,
                epoch=rng.randint(0, 5),
                replicas=replicas,
                shuffle=rng.random() < 0.8,
                drop_last=rng.random() < 0.4,
                batch_size=batch_size,
                start_iter=start_iter,
            )
        )
    return out


CONFIGS = generate_configs(240)


@pytest.mark.parametrize("c", CONFIGS, ids=str)
def test_distributed_equals_torch_on_every_rank(c: Config) -> None:
    ds = Sized(c.n)
    for rank in range(c.replicas):
        ref = tud.DistributedSampler(
            ds, num_replicas=c.replicas, rank=rank, shuffle=c.shuffle, seed=c.seed,
            drop_last=c.drop_last,
        )  # fmt: skip
        ref.set_epoch(c.epoch)
        ours = rs.ResumableDistributedSampler(
            ds, num_replicas=c.replicas, rank=rank, shuffle=c.shuffle, seed=c.seed,
            drop_last=c.drop_last, batch_size=c.batch_size,
        )  # fmt: skip
        ours.set_epoch(c.epoch)
        expected = list(ref)
        assert len(ours) == len(ref) == len(expected)
        ours.start_iter = c.start_iter
        skip = c.start_iter * c.batch_size
        np.testing.assert_array_equal(ours.indices(), np.array(expected[skip:], dtype=np.int64))
        got = list(ours)
        assert got == expected[skip:]
        assert all(type(i) is int for i in got)
        assert ours.start_iter == 0  # the resumed epoch is over
        assert list(ours) == expected  # the same epoch again is whole


@pytest.mark.parametrize("drop_last", [False, True])
def test_the_epoch_end_is_torchs_total_size(drop_last: bool) -> None:
    """The core's end of an epoch (``T``, which states are checked against and samplers report
    as ``total_size``) is torch's ``DistributedSampler.total_size``."""
    from resumable_samplers import _core

    for n in (0, 1, 7, 10, 64):
        for w in (1, 2, 3, 8, 11):
            want = tud.DistributedSampler(range(n), w, 0, shuffle=False, drop_last=drop_last)
            assert _core.epoch_end(n, w, drop_last) == want.total_size, (n, w)
            ours = rs.ResumableDistributedSampler(range(n), w, 0, drop_last=drop_last)
            assert ours.total_size == want.total_size


@pytest.mark.parametrize("c", CONFIGS[:120], ids=str)
def test_random_equals_torch_randperm(c: Config) -> None:
    ours = rs.ResumableRandomSampler(Sized(c.n), seed=c.seed, batch_size=c.batch_size)
    ours.set_epoch(c.epoch)
    ours.start_iter = c.start_iter
    expected = torch_perm(c.n, c.seed + c.epoch)
    got = list(ours)
    assert got == expected[c.start_iter * c.batch_size :]
    assert all(type(i) is int for i in got)
    assert len(ours) == c.n
    assert ours.start_iter == 0


@pytest.mark.parametrize("c", CONFIGS[:60], ids=str)
def test_sequential_equals_torch(c: Config) -> None:
    ours = rs.ResumableSequentialSampler(Sized(c.n), batch_size=c.batch_size)
    ours.start_iter = c.start_iter
    expected = list(tud.SequentialSampler(range(c.n)))
    assert list(ours) == expected[c.start_iter * c.batch_size :]
    assert len(ours) == c.n


def test_default_arguments_match_torch_and_helios() -> None:
    ds = Sized(101)
    d = rs.ResumableDistributedSampler(ds, num_replicas=4, rank=2)
    ref = tud.DistributedSampler(ds, num_replicas=4, rank=2)
    assert (d.shuffle, d.seed, d.drop_last, d.epoch) == (ref.shuffle, ref.seed, ref.drop_last, 0)
    assert (d.num_samples, d.total_size) == (ref.num_samples, ref.total_size)
    assert d.start_iter == 0
    r = rs.ResumableRandomSampler(ds)
    assert list(r) == torch_perm(101, 0)
    assert isinstance(r, rs.ResumableSampler) and isinstance(r, tud.Sampler)
    assert isinstance(d, tud.DistributedSampler)


def test_start_iter_applies_to_the_next_iterator_whatever_its_epoch() -> None:
    s = rs.ResumableRandomSampler(Sized(50), seed=3, batch_size=5)
    s.start_iter = 2
    s.set_epoch(1)  # helios's trainer: start_iter, then set_epoch(resumed epoch), then iterate
    assert s.start_iter == 2
    it = iter(s)
    assert s.start_iter == 2  # an iterator starts at its first next()
    assert next(it) == torch_perm(50, 4)[10]
    assert s.start_iter == 0  # consumed
    assert list(it) == torch_perm(50, 4)[11:]
    assert list(s) == torch_perm(50, 4)


def test_start_iter_past_the_end_yields_nothing() -> None:
    s = rs.ResumableDistributedSampler(Sized(10), num_replicas=2, rank=1, batch_size=4)
    s.start_iter = 100
    assert s.indices().size == 0
    assert list(s) == []
    assert len(s) == 5
    assert s.start_iter == 0


def test_empty_dataset_yields_nothing() -> None:
    for s in (
        rs.ResumableRandomSampler(Sized(0)),
        rs.ResumableSequentialSampler(Sized(0)),
        rs.ResumableDistributedSampler(Sized(0), num_replicas=3, rank=2),
    ):
        assert list(s) == []
        assert len(s) == 0


def test_repeated_iter_in_an_epoch_reuses_the_epoch_buffer() -> None:
    s = rs.ResumableDistributedSampler(Sized(10_000), num_replicas=4, rank=1, seed=5)
    a = s.indices()
    iter(s)
    iter(s)
    b = s.indices()
    assert np.shares_memory(a, b)  # not regenerated
    s.set_epoch(1)
    c = s.indices()
    assert not np.shares_memory(a, c)
    ref = tud.DistributedSampler(Sized(10_000), num_replicas=4, rank=1, seed=5)
    ref.set_epoch(1)
    assert c.tolist() == list(ref)


def test_indices_is_a_read_only_view_of_the_rust_buffer() -> None:
    s = rs.ResumableRandomSampler(Sized(1000), seed=1, batch_size=10)
    s.start_iter = 3
    a = s.indices()
    assert a.dtype == np.uint32
    assert not a.flags.owndata and not a.flags.writeable
    assert type(a.base).__name__ == "Epoch"
    with pytest.raises(ValueError):
        a[0] = 1
    assert a.tolist() == torch_perm(1000, 1)[30:]


def test_int64_indices_for_more_than_2_pow_32_items() -> None:
    # Reference: torch's DistributedSampler rule without shuffling, indices[rank::num_replicas]
    # over range(n) padded by wrapping; computed arithmetically because the list would not fit.
    n, w, r = 2**32 + 10, 2**21, 5
    s = rs.ResumableDistributedSampler(Sized(n), num_replicas=w, rank=r, shuffle=False)
    a = s.indices()
    assert a.dtype == np.int64
    expected = [(r + j * w) % n for j in range(-(-n // w))]
    assert a.tolist() == expected
    assert list(s)[-3:] == expected[-3:]


def test_changing_attributes_like_torch_users_do() -> None:
    ds = Sized(37)
    s = rs.ResumableDistributedSampler(ds, num_replicas=2, rank=0)
    s.epoch = 3  # torch users sometimes set the attribute directly
    ref = tud.DistributedSampler(ds, num_replicas=2, rank=0)
    ref.epoch = 3
    assert list(s) == list(ref)


@pytest.mark.parametrize(
    "make",
    [
        lambda: rs.ResumableRandomSampler(Sized(300), seed=8, batch_size=4),
        lambda: rs.ResumableSequentialSampler(Sized(300), batch_size=4),
        lambda: rs.ResumableDistributedSampler(Sized(300), num_replicas=3, rank=1, batch_size=4),
    ],
)
def test_pickle_round_trip_gives_an_equal_sampler(make: object) -> None:
    s = make()  # type: ignore[operator]
    s.set_epoch(2)
    s.start_iter = 5
    list(s.indices())  # fill the epoch cache; it must not be pickled
    clone = pickle.loads(pickle.dumps(s))
    assert clone.start_iter == 5 and len(clone) == len(s)
    assert list(clone) == list(s)


class Growing:
    """A dataset whose length the test changes, like a dataset that grows between epochs."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def test_random_and_sequential_samplers_read_the_length_when_an_epoch_starts() -> None:
    # As torch's RandomSampler and SequentialSampler: len(data_source) at each epoch's start.
    data = Growing(20)
    r = rs.ResumableRandomSampler(data, seed=4)
    q = rs.ResumableSequentialSampler(data)
    it_r, it_q = iter(r), iter(q)
    head_r, head_q = [next(it_r) for _ in range(5)], [next(it_q) for _ in range(5)]
    data.n = 30  # grows while an epoch runs: the running epoch keeps its length
    assert head_r + list(it_r) == torch_perm(20, 4)
    assert head_q + list(it_q) == list(range(20))
    assert len(r) == len(q) == 30
    r.set_epoch(1)
    assert list(r) == torch_perm(30, 5)  # the next epoch has the new length
    assert list(q) == list(range(30))
    ref = tud.RandomSampler(data, generator=torch.Generator().manual_seed(0))
    assert len(ref) == len(r)


def _set(s: object, change: dict[str, object]) -> None:
    for name, value in change.items():
        setattr(s, name, value)


CHANGES = [
    {"rank": 2},
    {"num_replicas": 5},
    {"num_replicas": 2, "rank": 1},
    {"drop_last": True},
    {"num_replicas": 4, "drop_last": True},
]


@pytest.mark.parametrize("change", CHANGES, ids=str)
def test_len_follows_attributes_set_after_construction_like_torch(change: dict) -> None:
    """As with torch's ``DistributedSampler``, users set ``rank``, ``num_replicas`` or
    ``drop_last`` after construction: ``len()`` is then what the iteration yields. torch's own
    sampler supports a changed ``rank`` (its ``__iter__`` fails its assertions after another
    ``num_replicas`` or ``drop_last``), so the reference for those is a torch sampler built with
    the new values."""
    ds = Sized(23)
    d = rs.ResumableDistributedSampler(ds, num_replicas=3, rank=0, seed=4)
    _set(d, change)
    if set(change) == {"rank"}:
        ref = tud.DistributedSampler(ds, num_replicas=3, rank=0, seed=4)
        _set(ref, change)
    else:
        kw = {"num_replicas": 3, "rank": 0, "drop_last": False, **change}
        ref = tud.DistributedSampler(ds, seed=4, **kw)  # type: ignore[arg-type]
    want = list(ref)
    assert list(d) == want and len(d) == len(want) == len(ref)


@pytest.mark.parametrize("change", CHANGES, ids=str)
@pytest.mark.parametrize("kind", ["grouped", "budget", "mixture", "shard"])
def test_len_of_the_other_samplers_follows_their_attributes(kind: str, change: dict) -> None:
    """Every rank's count is torch's ``DistributedSampler`` count for the epoch's length (the
    number of batches for token-budget batches) and the current attributes."""
    lengths = [1 + (i * 7) % 13 for i in range(23)]
    s: rs.ResumableLengthGroupedSampler | rs.ResumableTokenBudgetBatchSampler
    s2: object
    if kind == "grouped":
        s = rs.ResumableLengthGroupedSampler(lengths, 2, seed=1, num_replicas=3, rank=0)
        n = 23
    elif kind == "budget":
        s = rs.ResumableTokenBudgetBatchSampler(lengths, 20, seed=1, num_replicas=3, rank=0)
        n = s.num_batches()
    elif kind == "shard":
        s2 = rs.ResumableShardSampler([4, 0, 9, 3, 7], window=2, seed=1, num_replicas=3, rank=0)
        s = s2  # type: ignore[assignment]
        n = 23
    else:
        s2 = rs.ResumableMixtureSampler([10, 13], [1, 2], seed=1, num_replicas=3, rank=0)
        s = s2  # type: ignore[assignment]
        n = 23
    _set(s, change)
    kw = {"num_replicas": 3, "rank": 0, "drop_last": False, **change}
    ref = tud.DistributedSampler(Sized(n), shuffle=False, **kw)  # type: ignore[arg-type]
    got = list(s)
    assert len(s) == len(got) == len(ref) == len(list(ref))
    if kind == "grouped":
        assert s.num_samples == len(ref) and s.total_size == ref.total_size  # type: ignore[union-attr]
        fresh = rs.ResumableLengthGroupedSampler(lengths, 2, seed=1, **kw)  # type: ignore[arg-type]
        assert got == list(fresh)


def test_an_invalid_rank_set_later_is_refused_by_len_and_iter() -> None:
    for s in (
        rs.ResumableDistributedSampler(Sized(10), 2, 0),
        rs.ResumableLengthGroupedSampler([3, 1, 2], 1, num_replicas=2, rank=0),
        rs.ResumableMixtureSampler([3, 4], [1, 1], num_replicas=2, rank=0),
        rs.ResumableShardSampler([3, 4], num_replicas=2, rank=0),
    ):
        s.rank = 2
        with pytest.raises(ValueError, match=r"Invalid rank 2"):
            len(s)
        with pytest.raises(ValueError, match=r"Invalid rank 2"):
            iter(s)

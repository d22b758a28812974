"""ResumableMixtureSampler: proportions at every prefix, cycles, resume, elastic, reweighting.

The references are the definitions themselves, evaluated independently of the sampler's
iteration path: the per-position source and draw number from the core's ``draw`` (one walk of
the schedule tree), the prefix counts from ``counts`` (one pass down it), and the exact
proportions ``m * w_k / sum(w)`` in rational arithmetic; plus the uninterrupted run, torchdata's
``StatefulDataLoader`` and a real gloo group.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import torch.utils.data as tud
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torchdata.stateful_dataloader import StatefulDataLoader

import resumable_samplers as rs
from resumable_samplers import _core
from resumable_samplers.mixture import integer_weights

sys.path.insert(0, os.path.dirname(__file__))
import _workers

LENGTHS = [7, 3, 12, 1]
WEIGHTS = [3.0, 1.0, 5.5, 0.5]


def make(**kw: Any) -> rs.ResumableMixtureSampler:
    args: dict[str, Any] = {"seed": 11, "batch_size": 3}
    args.update(kw)
    sources = args.pop("sources", LENGTHS)
    weights = args.pop("weights", WEIGHTS)
    return rs.ResumableMixtureSampler(sources, weights, **args)


def source_of(index: int, lengths: list[int]) -> tuple[int, int]:
    """ConcatDataset's numbering: (source, item) of a concatenated index."""
    for k, n in enumerate(lengths):
        if index < n:
            return k, index
        index -= n
    raise AssertionError("index out of range")


def stream(s: rs.ResumableMixtureSampler, epochs: int) -> list[int]:
    """The global stream of a one-replica sampler over ``epochs`` epochs."""
    out: list[int] = []
    for e in range(epochs):
        s.set_epoch(e)
        out += list(s)
    return out


# -- the schedule ------------------------------------------------------------------------------

WEIGHT = st.one_of(
    st.just(0),
    st.integers(1, 10**6),
    st.floats(1e-6, 1.0, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=200, deadline=None)
@given(
    weights=st.lists(WEIGHT, min_size=1, max_size=1000),
    m=st.one_of(st.integers(0, 10_000), st.integers(0, 2**62)),
)
def test_every_prefix_is_within_the_stated_bound(weights: list[Any], m: int) -> None:
    assume(any(w > 0 for w in weights))
    ints = integer_weights(weights)
    mix = _core.Mixture([1] * len(ints), [0], [ints], "identity", 0)
    counts = mix.counts(m)
    assert sum(counts) == m
    total = sum(ints)
    bound = Fraction(mix.depth, 2)
    assert mix.depth == (len(ints) - 1).bit_length()  # ceil(log2 K)
    for k, w in enumerate(ints):
        assert abs(counts[k] - Fraction(m * w, total)) <= bound, (k, counts[k], m, w, total)
        if w == 0:
            assert counts[k] == 0


@pytest.mark.parametrize("k", [2, 3, 4])
def test_up_to_four_sources_are_within_one_at_every_prefix(k: int) -> None:
    weights = [1, 2, 3, 5][:k]
    mix = _core.Mixture([1] * k, [0], [weights], "identity", 0)
    seen = [0] * k
    for m in range(2000):
        assert mix.counts(m) == seen
        assert all(abs(seen[j] - Fraction(m * weights[j], sum(weights))) <= 1 for j in range(k))
        seen[mix.draw(m)[0]] += 1


def test_integer_weights_keep_proportions_exactly_or_scale_floats() -> None:
    assert integer_weights([3, 0, 2]) == [3, 0, 2]
    a, b, c = integer_weights([0.5, 0.25, 0.25])  # floats: scaled exactly, then rounded down
    assert b == c and abs(a - 2 * b) <= 1 and 2**62 - 4 <= a + b + c <= 2**62
    tiny = integer_weights([1.0, 1e-300])
    assert tiny[1] == 1 and tiny[0] > 2**61  # a positive weight never becomes 0
    for bad, exc, match in [
        ([0, 0], ValueError, "all be zero"),
        ([1, -1], ValueError, r"weights\[1\].*non-negative"),
        ([1, float("nan")], ValueError, r"weights\[1\].*finite"),
        ([1, True], TypeError, r"weights\[1\]"),
        ([1, "2"], TypeError, r"weights\[1\]"),
        ("12", TypeError, "weights"),
    ]:
        with pytest.raises(exc, match=match):
            integer_weights(bad)  # type: ignore[arg-type]


def test_the_stream_matches_the_schedule_and_concat_numbering() -> None:
    s = make(permutation="lazy")
    mix = _core.Mixture(LENGTHS, [0], [integer_weights(WEIGHTS)], "lazy", 11)
    got = stream(s, 3)
    n = sum(LENGTHS)
    assert len(got) == 3 * n
    for p, index in enumerate(got):
        k, _ = mix.draw(p)
        assert source_of(index, LENGTHS)[0] == k, p


def test_each_source_cycle_is_a_permutation_and_cycles_carry_over_epochs() -> None:
    s = make()
    got = stream(s, 6)
    per_source: dict[int, list[int]] = {k: [] for k in range(len(LENGTHS))}
    for index in got:
        k, item = source_of(index, LENGTHS)
        per_source[k].append(item)
    for k, items in per_source.items():
        n = LENGTHS[k]
        cycles = [items[i : i + n] for i in range(0, len(items), n)]
        for c, cycle in enumerate(cycles):
            assert len(set(cycle)) == len(cycle), (k, c)  # no repeat within a cycle
            if len(cycle) == n:
                assert sorted(cycle) == list(range(n)), (k, c)  # every item once
        if len(cycles) > 2:
            assert cycles[0] != cycles[1] or n == 1  # a fresh permutation per cycle
    total = sum(LENGTHS)
    # the counts the core reports for a prefix are the stream's own
    assert Counter(source_of(i, LENGTHS)[0] for i in got[: total * 2]) == dict(
        enumerate(s.counts(total * 2))
    )


def test_identity_order_takes_each_source_in_its_own_order() -> None:
    got = stream(make(permutation="identity"), 2)
    items: dict[int, list[int]] = {}
    for index in got:
        k, item = source_of(index, LENGTHS)
        items.setdefault(k, []).append(item)
    for k, seq in items.items():
        assert seq == [j % LENGTHS[k] for j in range(len(seq))]


def test_torch_order_is_torch_randperm_per_source_and_cycle() -> None:
    import torch

    got = stream(make(permutation="torch"), 6)
    items: dict[int, list[int]] = {}
    for index in got:
        k, item = source_of(index, LENGTHS)
        items.setdefault(k, []).append(item)
    for k, seq in items.items():
        n = LENGTHS[k]
        for c in range(len(seq) // n):
            g = torch.Generator().manual_seed(11 + c)
            assert seq[c * n : (c + 1) * n] == torch.randperm(n, generator=g).tolist(), (k, c)


def test_determinism_and_keys() -> None:
    assert stream(make(), 2) == stream(make(), 2)
    assert stream(make(), 2) != stream(make(seed=12), 2)
    a = make(num_samples=50)
    assert len(a) == 50 and len(list(a)) == 50


def test_zero_weight_sources_are_never_drawn_and_empty_ones_need_weight_zero() -> None:
    s = rs.ResumableMixtureSampler([5, 0, 5], [1, 0, 0], seed=1)
    assert all(i < 5 for i in s)
    with pytest.raises(ValueError, match=r"sources\[1\] is empty but weights\[1\]"):
        rs.ResumableMixtureSampler([5, 0], [1, 1])
    with pytest.raises(ValueError, match="one entry per source"):
        rs.ResumableMixtureSampler([5, 5], [1])
    with pytest.raises(ValueError, match="sources should not be empty"):
        rs.ResumableMixtureSampler([], [])
    with pytest.raises(TypeError, match=r"sources\[0\]"):
        rs.ResumableMixtureSampler([1.5], [1])
    with pytest.raises(ValueError, match="permutation"):
        rs.ResumableMixtureSampler([3], [1], permutation="torch-ish")
    with pytest.raises(ValueError, match="Invalid rank 2"):
        rs.ResumableMixtureSampler([3], [1], num_replicas=2, rank=2)


def test_datasets_as_sources_index_their_concat_dataset() -> None:
    a, b = list(range(4)), list(range(100, 106))
    s = rs.ResumableMixtureSampler([a, b], [1, 1], seed=3)
    concat = tud.ConcatDataset([a, b])
    values = [concat[i] for i in s]
    assert len(values) == 10
    assert {v for v in values if v < 100} == {0, 1, 2, 3}  # source 0: a whole cycle, then more
    assert len({v for v in values if v >= 100}) == 5  # source 1: 5 of its 6 items, no repeat


def test_seek_is_o_of_k_at_any_position() -> None:
    # A stream of 2**62 positions per epoch: resuming deep into epoch 1 needs no O(N) anything.
    n = 2**62
    s = rs.ResumableMixtureSampler([2**40, 3, 2**50], [1, 2, 3], num_samples=n, seed=5)
    s.seek(1, (n - 10) // 3)
    state = s.state_dict()
    head = list(itertools.islice(iter(s), 5))
    mix = _core.Mixture([2**40, 3, 2**50], [0], [[1, 2, 3]], "lazy", 5)
    start = n + state["offset"]
    kinds = [mix.draw(start + j)[0] for j in range(5)]
    assert [source_of(i, [2**40, 3, 2**50])[0] for i in head] == kinds
    assert s.counts(2**63 - 1) == mix.counts(2**63 - 1)


# -- resume ------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 1, 9, 22, 23])
def test_resume_equals_the_uninterrupted_suffix(k: int) -> None:
    full = stream(make(), 2)
    s = make()
    s.set_epoch(0)
    it = iter(s)
    head = list(itertools.islice(it, k))
    saved = json.loads(json.dumps(s.state_dict()))
    fresh = make()
    fresh.load_state_dict(saved)
    rest = []
    for e in range(saved["epoch"], 2):
        fresh.set_epoch(e)
        rest += list(fresh)
    assert head + rest == full


def test_copies_keep_the_position() -> None:
    s = make()
    s.set_epoch(1)
    it = iter(s)
    head = list(itertools.islice(it, 8))
    clone = copy.deepcopy(s)
    assert head + list(clone) == stream_epoch(make(), 1)


def stream_epoch(s: rs.ResumableMixtureSampler, e: int) -> list[int]:
    s.set_epoch(e)
    return list(s)


@settings(max_examples=60, deadline=None)
@given(
    old=st.integers(1, 4),
    new=st.integers(1, 4),
    per_rank=st.integers(0, 8),
    drop_last=st.booleans(),
)
def test_elastic_union_is_the_uninterrupted_global_stream(
    old: int, new: int, per_rank: int, drop_last: bool
) -> None:
    n = sum(LENGTHS)

    def ranks(world: int) -> list[rs.ResumableMixtureSampler]:
        out = [make(num_replicas=world, rank=r, drop_last=drop_last) for r in range(world)]
        for s in out:
            s.set_epoch(2)
        return out

    first = ranks(old)
    its = [iter(s) for s in first]
    taken = [list(itertools.islice(it, per_rank)) for it in its]
    states = [s.state_dict() for s in first]
    assert all(st_ == states[0] for st_ in states)
    consumed = [taken[p % old][p // old] for p in range(sum(map(len, taken)))]
    second = ranks(new)
    for s in second:
        s.load_state_dict(states[0])
    rest = [list(s) for s in second]
    assert len({len(r) for r in rest}) == 1
    resumed = [rest[p % new][p // new] for p in range(sum(map(len, rest)))]
    single = make()
    epoch = stream_epoch(single, 2)
    combined = consumed + resumed
    c = states[0]["offset"]
    if drop_last:
        assert combined == epoch[: len(combined)]
        assert len(combined) == c + max(0, n - c) // new * new
    else:
        assert combined == [epoch[p % n] for p in range(len(combined))]  # torch's padding
        assert len(combined) >= n


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [0, 2])
def test_stateful_dataloader_resumes_exactly(workers: int) -> None:
    ds = _workers.IndexDataset(sum(LENGTHS))
    kw: dict[str, Any] = {"multiprocessing_context": "fork", "timeout": 60} if workers else {}

    def loop(sampler: Any, loader: Any, first: int, record: list[Any] | None) -> list[list[int]]:
        out = []
        for epoch in range(first, 3):
            sampler.set_epoch(epoch)
            for batch in loader:
                out.append(batch.tolist())
                if record is not None:
                    record.append({"epoch": epoch, "loader": copy.deepcopy(loader.state_dict())})
        return out

    sampler = make()
    loader = StatefulDataLoader(ds, batch_size=3, sampler=sampler, num_workers=workers, **kw)
    record: list[Any] = []
    full = loop(sampler, loader, 0, record)
    for i in (0, 4, 7, 8, 12):
        sampler = make()
        loader = StatefulDataLoader(ds, batch_size=3, sampler=sampler, num_workers=workers, **kw)
        loader.load_state_dict(record[i]["loader"])
        assert loop(sampler, loader, record[i]["epoch"], None) == full[i + 1 :], i


# -- reweighting at a resume -------------------------------------------------------------------


def test_reweight_on_resume_continues_every_cycle() -> None:
    base = make(permutation="lazy")
    base.set_epoch(1)
    it = iter(base)
    head = list(itertools.islice(it, 10))
    state = base.state_dict()

    new_weights = [0, 2, 1, 1]  # source 0 paused
    refused = make(weights=new_weights)
    with pytest.raises(ValueError, match=r"'weights'.*reweight=True"):
        refused.load_state_dict(state)
    s = make(weights=new_weights)
    s.load_state_dict(state, reweight=True)
    rest = list(s)
    # Up to the saved position, the stream is what it was.
    n = sum(LENGTHS)
    at = n + state["offset"]
    old = _core.Mixture(LENGTHS, [0], [integer_weights(WEIGHTS)], "lazy", 11)
    new = _core.Mixture(LENGTHS, [0, at], [integer_weights(WEIGHTS), [0, 2, 1, 1]], "lazy", 11)
    assert old.counts(at) == new.counts(at)
    assert head == stream_epoch(make(), 1)[:10]
    # After it, the schedule follows the new weights and every source continues its draws.
    before = new.counts(at)
    draws = list(before)
    for p in range(at, 2 * n):
        k, j = new.draw(p)
        assert k != 0
        assert j == draws[k]  # the next draw of that source: its cycle goes on, no repeat
        draws[k] += 1
    assert [source_of(i, LENGTHS)[0] for i in rest] == [new.draw(p)[0] for p in range(at, 2 * n)]
    # The state records the history: small, JSON-safe, and reloadable without reweighting.
    saved = s.state_dict()
    assert saved["weight_starts"] == [0, at] and json.loads(json.dumps(saved)) == saved
    again = make(weights=new_weights)
    again.load_state_dict(saved)
    assert list(again) == []  # the epoch was finished
    again.set_epoch(2)
    s.set_epoch(2)
    assert list(again) == list(s)
    # A source paused by weight 0 resumes its cycle where it stopped when it gets weight again.
    back = make()
    back.load_state_dict(saved, reweight=True)
    back.set_epoch(2)
    mixed = _core.Mixture(
        LENGTHS,
        [0, at, 2 * n],
        [integer_weights(WEIGHTS), [0, 2, 1, 1], integer_weights(WEIGHTS)],
        "lazy",
        11,
    )
    assert (
        mixed.draw(2 * n + next(p for p in range(n) if mixed.draw(2 * n + p)[0] == 0))[1]
        == before[0]
    )
    assert [source_of(i, LENGTHS)[0] for i in back] == [
        mixed.draw(p)[0] for p in range(2 * n, 3 * n)
    ]


def test_reweight_through_stateful_dataloader_with_the_attribute() -> None:
    ds = _workers.IndexDataset(sum(LENGTHS))
    sampler = make()
    loader = StatefulDataLoader(ds, batch_size=3, sampler=sampler)
    it = iter(loader)
    next(it)
    state = copy.deepcopy(loader.state_dict())
    sampler = make(weights=[1, 1, 1, 1])
    sampler.reweight = True
    loader = StatefulDataLoader(ds, batch_size=3, sampler=sampler)
    loader.load_state_dict(state)
    rest = [i for b in loader for i in b.tolist()]
    assert len(rest) == sum(LENGTHS) - 3
    assert sampler.state_dict()["weight_starts"] == [0, 3]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"source_lengths": [7, 3, 12, 2]}, "source_lengths"),
        ({"weights": [[1, 2]]}, "weights"),
        ({"weight_starts": [0, 1]}, "weights"),
        ({"weight_starts": [5], "weights": [[1, 1, 1, 1]]}, "weight"),
        ({"dataset_length": 99}, "dataset_length"),
        ({"seed": 3}, "seed"),
    ],
)
def test_bad_mixture_states_are_refused_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    state = {**make().state_dict(), **change}
    s = make()
    with pytest.raises(ValueError, match=field):
        s.load_state_dict(state, reweight=True)
    assert list(s) == stream_epoch(make(), 0)


# -- a real gloo group -------------------------------------------------------------------------


def test_four_process_gloo_job_resumes_exactly(tmp_path: Path) -> None:
    preload = ["torch", "torch.distributed", "resumable_samplers", "_workers"]
    results = _workers.run_gloo_job(4, tmp_path, _workers.mixture_results, preload, 90)
    # Every rank got the process group's world size and rank, and rank r's stream is the global
    # stream's positions r, r + 4, ...; the resumed job (2 ranks) continues it.
    single = make()
    epoch = stream_epoch(single, 1)
    n = len(epoch)
    whole = [results[p % 4]["whole"][p // 4] for p in range(4 * len(results[0]["whole"]))]
    assert whole == [epoch[p % n] for p in range(len(whole))]
    head = [results[p % 4]["head"][p // 4] for p in range(4 * len(results[0]["head"]))]
    state = results[0]["state"]
    assert all(r["state"] == state for r in results)
    rest = []
    for r in range(2):
        s = make(num_replicas=2, rank=r)
        s.load_state_dict(state)
        rest.append(list(s))
    resumed = [rest[p % 2][p // 2] for p in range(2 * len(rest[0]))]
    combined = head + resumed
    assert combined == [epoch[p % n] for p in range(len(combined))]

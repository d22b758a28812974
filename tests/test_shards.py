"""ResumableShardSampler: every index once per epoch, open shards, shard loads, mixing, exact and
elastic resume (nested), copies, errors, DataLoader, StatefulDataLoader, a gloo group and the
docs recipe.

The references: torch's ``DistributedSampler`` for every rank's count, ``ConcatDataset``'s
numbering for the shard of an index, the uninterrupted run for what a resume yields (what each
rank of the stopped job had left), a real ``DataLoader``/``StatefulDataLoader`` and a real gloo
group.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import pickle
import sys
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.utils.data as tud
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torchdata.stateful_dataloader import StatefulDataLoader

import resumable_samplers as rs

sys.path.insert(0, os.path.dirname(__file__))
import _shard_workers
import _workers

pytestmark = pytest.mark.filterwarnings("ignore:'set_vital' is deprecated")

SIZES = [13, 0, 7, 21, 4, 9, 30, 2, 11, 16]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

sizes_st = st.lists(
    st.one_of(st.just(0), st.integers(1, 12), st.integers(20, 60)), min_size=1, max_size=20
)


def make(sizes: Any = SIZES, **kw: Any) -> rs.ResumableShardSampler:
    args: dict[str, Any] = {"window": 3, "seed": 5, "num_replicas": 1, "rank": 0}
    args.update(kw)
    return rs.ResumableShardSampler(sizes, **args)


def epoch_of(sampler: rs.ResumableShardSampler, epoch: int) -> list[int]:
    sampler.set_epoch(epoch)
    return list(sampler)


def shard_of(sizes: list[int], index: int) -> int:
    """ConcatDataset's numbering: the shard that holds ``index``."""
    return int(np.searchsorted(np.cumsum(sizes), index, side="right"))


def open_and_loads(sizes: list[int], seq: list[int]) -> tuple[int, int]:
    """The most shards open at once in ``seq`` (a shard is open from its first to its last
    sample) and how many shards it reads."""
    spans: dict[int, list[int]] = {}
    for t, i in enumerate(seq):
        spans.setdefault(shard_of(sizes, i), [t, t])[1] = t
    delta = [0] * (len(seq) + 1)
    for a, b in spans.values():
        delta[a] += 1
        delta[b + 1] -= 1
    most = run = 0
    for d in delta:
        run += d
        most = max(most, run)
    return most, len(spans)


def lru_loads(sizes: list[int], seq: list[int], cache: int) -> int:
    """The shards a reader of ``seq`` loads with a least-recently-used cache of ``cache``."""
    held: OrderedDict[int, None] = OrderedDict()
    loads = 0
    for i in seq:
        k = shard_of(sizes, i)
        if k in held:
            held.move_to_end(k)
        else:
            loads += 1
            held[k] = None
            if len(held) > cache:
                held.popitem(last=False)
    return loads


def job(sizes: list[int], world: int, epoch: int, **kw: Any) -> list[rs.ResumableShardSampler]:
    out = []
    for r in range(world):
        s = make(sizes, num_replicas=world, rank=r, **kw)
        s.set_epoch(epoch)
        out.append(s)
    return out


# -- one epoch ---------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    sizes=sizes_st,
    window=st.integers(1, 5),
    world=st.integers(1, 6),
    seed=st.integers(-(2**63), 2**64 - 1),
    epoch=st.integers(0, 3),
    drop_last=st.booleans(),
)
def test_every_index_once_per_epoch_with_distributed_padding_and_few_open_shards(
    sizes: list[int], window: int, world: int, seed: int, epoch: int, drop_last: bool
) -> None:
    n = sum(sizes)
    counts: Counter[int] = Counter()
    loads = 0
    for r, s in enumerate(job(sizes, world, epoch, window=window, seed=seed, drop_last=drop_last)):
        remaining = s.indices().tolist()
        got = list(s)
        assert remaining == got
        ref = tud.DistributedSampler(
            range(n), num_replicas=world, rank=r, shuffle=False, drop_last=drop_last
        )
        assert len(got) == len(s) == len(ref)
        counts.update(got)
        most, read = open_and_loads(sizes, got)
        assert most <= window
        assert lru_loads(sizes, got, window) == read  # an LRU cache of window shards
        loads += read
    assert loads <= sum(z > 0 for z in sizes) + 2 * world
    per_rank = len(tud.DistributedSampler(range(n), world, 0, False, drop_last=drop_last))
    assert sum(counts.values()) == per_rank * world
    if drop_last:
        assert max(counts.values(), default=1) == 1
    else:
        assert set(counts) == set(range(n))


def test_an_epoch_is_a_pure_function_of_its_arguments() -> None:
    a = make(num_replicas=3, rank=1)
    b = make(np.array(SIZES, dtype=np.uint16), num_replicas=3, rank=1)
    with_empty = [0, *SIZES[:4], 0, 0, *SIZES[4:], 0]
    c = make(with_empty, num_replicas=3, rank=1)  # empty shards move no index
    for e in range(3):
        assert epoch_of(a, e) == epoch_of(b, e) == epoch_of(c, e)
    assert epoch_of(a, 0) != epoch_of(make(num_replicas=3, rank=1, seed=6), 0)
    assert epoch_of(a, 0) != epoch_of(make(num_replicas=3, rank=1, window=2), 0)


def test_shard_order_and_each_ranks_shards_change_every_epoch() -> None:
    sizes = [10] * 64
    s = make(sizes, num_replicas=4, rank=2, window=4)
    firsts = {shard_of(sizes, epoch_of(s, e)[0]) for e in range(8)}
    assert len(firsts) > 4
    shards = [{shard_of(sizes, i) for i in epoch_of(s, e)} for e in range(4)]
    assert all(shards[e] != shards[e + 1] for e in range(3))


@pytest.mark.parametrize("window", [2, 4, 8, 16])
def test_adjacent_samples_share_a_shard_about_once_per_window(window: int) -> None:
    sizes = [200] * 400
    seq = epoch_of(make(sizes, window=window, seed=1), 3)
    shard = np.array(seq) // 200
    same = float(np.mean(shard[1:] == shard[:-1]))
    assert abs(same - 1 / window) < 0.1 / window


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    size=st.integers(100, 300),
    window=st.integers(2, 8),
    world=st.integers(1, 4),
    per_rank=st.integers(2, 4),
    seed=st.integers(-(2**63), 2**64 - 1),
    epoch=st.integers(0, 5),
)
def test_adjacent_samples_share_a_shard_once_per_window_on_every_rank(
    size: int, window: int, world: int, per_rank: int, seed: int, epoch: int
) -> None:
    """Equal shards, ``per_rank`` whole windows on each of ``world`` ranks (the cuts fall between
    shards). A window's ``window * size`` samples in a uniform random order have ``size - 1``
    adjacent same-shard pairs on average (about ``1 / window`` of its pairs) and about as much
    variance; pairs across windows share no shard. The count over all ranks stays within 5
    standard deviations (plus one) of that mean: about 1e-6 per example, and the examples are
    fixed (``derandomize``). Mixing over twice the window (half as many pairs), or none, is
    far outside."""
    sizes = [size] * (world * per_rank * window)
    same = pairs = 0
    for s in job(sizes, world, epoch, window=window, seed=seed):
        shard = s.indices() // size
        same += int(np.count_nonzero(shard[1:] == shard[:-1]))
        pairs += len(shard) - 1
    mean = world * per_rank * (size - 1)
    assert abs(same - mean) <= 5 * mean**0.5 + 1, (same, mean, same / pairs, 1 / window)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    data=st.data(),
    world=st.integers(2, 6),
    window=st.integers(1, 5),
    seed=st.integers(-(2**63), 2**64 - 1),
    epoch=st.integers(0, 2**20),
)
def test_every_epoch_changes_the_shard_order_and_the_shards_of_some_rank(
    data: st.DataObject, world: int, window: int, seed: int, epoch: int
) -> None:
    """Over random sizes with K >= 4W shards (and at least 20, so that two keyed orders of the
    shards agree with probability under 1e-5): the order in which the epoch's stream reads the
    shards, and the set of shards of at least one rank, differ between epochs ``e`` and
    ``e + 1``."""
    k = data.draw(st.integers(max(20, 4 * world), 48), label="shards")
    sizes = data.draw(st.lists(st.integers(1, 30), min_size=k, max_size=k), label="sizes")

    def read(e: int) -> tuple[list[int], list[set[int]]]:
        ranks = [
            [shard_of(sizes, i) for i in s.indices().tolist()]
            for s in job(sizes, world, e, window=window, seed=seed)
        ]
        order = list(dict.fromkeys(k for rank in ranks for k in rank))  # first reads, in order
        return order, [set(rank) for rank in ranks]

    order, shards = read(epoch)
    next_order, next_shards = read(epoch + 1)
    assert sorted(order) == sorted(next_order) == list(range(k))
    assert order != next_order
    assert shards != next_shards


def test_a_large_dataset_builds_and_reads_anywhere() -> None:
    sizes = np.full(1_000_000, 1_000, dtype=np.int64)  # 1e6 shards, 1e9 samples
    s = make(sizes, window=8, num_replicas=8, rank=5, batch_size=4)
    s.set_epoch(3)
    s.start_iter = 10_000_000
    first = next(iter(s))
    assert 0 <= first < 10**9
    assert s.state_dict()["offset"] == 10_000_000 * 4 * 8 + 8


# -- resume ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    sizes=sizes_st,
    world=st.integers(1, 5),
    drop_last=st.booleans(),
    frac=st.floats(0, 1),
    batch=st.integers(1, 3),
)
def test_a_resume_with_as_many_ranks_continues_each_rank(
    sizes: list[int], world: int, drop_last: bool, frac: float, batch: int
) -> None:
    for r in range(world):
        full = epoch_of(make(sizes, num_replicas=world, rank=r, drop_last=drop_last), 2)
        k = int(frac * len(full))
        stopped = make(sizes, num_replicas=world, rank=r, drop_last=drop_last)
        stopped.set_epoch(2)
        it = iter(stopped)
        assert [next(it) for _ in range(k)] == full[:k]
        state = json.loads(json.dumps(stopped.state_dict()))
        resumed = make(sizes, num_replicas=world, rank=r, drop_last=drop_last, batch_size=batch)
        resumed.load_state_dict(state)
        assert resumed.indices().tolist() == full[k:]
        assert epoch_of(resumed, 2) == full[k:]
        assert epoch_of(resumed, 3) == epoch_of(
            make(sizes, num_replicas=world, rank=r, drop_last=drop_last), 3
        )
        copied = pickle.loads(pickle.dumps(stopped))
        assert list(copied) == full[k:]
        skipped = make(sizes, num_replicas=world, rank=r, drop_last=drop_last, batch_size=batch)
        skipped.start_iter = k // batch
        assert epoch_of(skipped, 2) == full[k // batch * batch :]


def _stop(
    jobs: list[rs.ResumableShardSampler], k: int
) -> tuple[dict[str, Any], list[int], list[int]]:
    """Every rank of a job reads ``k`` indices (fewer if its epoch is shorter): the job's state
    (the same on every rank), what the ranks read and what the uninterrupted run had left."""
    read: list[int] = []
    left: list[int] = []
    states = []
    for s in jobs:
        full = list(copy.deepcopy(s))
        it = iter(s)
        read += [next(it) for _ in range(min(k, len(full)))]
        left += full[k:]
        states.append(s.state_dict())
    assert all(state == states[0] for state in states)
    return states[0], read, left


@settings(max_examples=150, deadline=None)
@given(
    sizes=sizes_st,
    window=st.integers(1, 4),
    worlds=st.lists(st.integers(1, 5), min_size=2, max_size=4),
    fracs=st.lists(st.floats(0, 1), min_size=4, max_size=4),
    drop_last=st.booleans(),
)
@example(  # a same-size job continues a rank whose padding repeats what it read
    sizes=[1, 1, 1, 1, 1, 20, 38],
    window=1,
    worlds=[1, 1, 2, 2],
    fracs=[0.0, 0.0, 0.96875, 0.0],
    drop_last=False,
)
def test_elastic_resumes_read_what_the_stopped_ranks_had_left(
    sizes: list[int], window: int, worlds: list[int], fracs: list[float], drop_last: bool
) -> None:
    kw = {"window": window, "drop_last": drop_last}
    jobs = job(sizes, worlds[0], 1, **kw)
    done: set[int] = set()
    previous = worlds[0]
    for world, frac in zip(worlds[1:], fracs, strict=False):
        k = int(frac * (len(list(copy.deepcopy(jobs[0]))) + 1))
        state, read, tails = _stop(jobs, k)
        done |= set(read)
        # What is left: the tails without the padding, which repeats what was read or is left.
        left = set(tails) - done
        jobs = job(sizes, world, 0, **kw)
        for s in jobs:
            s.load_state_dict(state)
            assert s.epoch == 1
        got = [list(copy.deepcopy(s)) for s in jobs]
        assert len({len(g) for g in got}) == 1  # the same count on every rank
        if world != previous:
            # len() is what the resumed epoch yields (positions restart at the new level), so
            # len(loader) counts the batches that come out.
            assert [len(s) for s in jobs] == [len(g) for g in got]
        union = Counter(i for g in got for i in g)
        if drop_last:
            assert set(union) <= left and max(union.values(), default=1) == 1
            assert len(left) - len(union) < world
        elif world != previous:
            assert set(union) == left  # the new ranks' padding repeats what is left
            assert sum(union.values()) - len(left) < world
        else:
            # Every rank continues its own part, padding included (a repeat of what it read).
            assert left <= set(union) <= left | done
            assert sum(union.values()) - len(left) < world
        for g in got:
            most, read = open_and_loads(sizes, g)
            assert most <= window
            # An LRU cache reloads at most the shard two old ranks share, once per junction.
            assert lru_loads(sizes, g, window) <= read + sum(worlds)
        previous = world


def test_the_next_epoch_after_an_elastic_resume_is_the_new_jobs_own() -> None:
    state, _, _ = _stop(job(SIZES, 3, 4), 6)
    fresh = job(SIZES, 2, 5)
    for s, f in zip(job(SIZES, 2, 0), fresh, strict=True):
        s.load_state_dict(state)
        assert s.state_dict()["levels"] == [[3, 6]]
        list(s)
        assert epoch_of(s, 5) == list(f)
        assert s.state_dict()["levels"] == []


def test_a_state_names_the_shards_and_is_json_safe() -> None:
    s = make(num_replicas=2, rank=1)
    state = s.state_dict()
    assert json.loads(json.dumps(state)) == state
    assert state["format"] == "resumable-samplers" and state["version"] == 1
    assert state["window"] == 3 and state["shard_count"] == 9 and state["levels"] == []
    torch.save(state, buf := __import__("io").BytesIO())
    buf.seek(0)
    assert torch.load(buf, weights_only=True) == state


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("window", 4, "'window'"),
        ("shard_digest", 1, "'shard_digest'"),
        ("shard_count", 8, "'shard_count'"),
        ("levels", [[0, 1]], "'levels'"),
        ("levels", [[2]], "'levels'"),
        ("levels", [[2, 10**6]], "'levels'"),
        ("levels", "x", "'levels'"),
        ("dataset_length", 5, "'dataset_length'"),
        ("seed", 6, "'seed'"),
        ("version", 2, "'version'"),
    ],
)
def test_a_state_of_another_order_is_refused_naming_the_field(
    field: str, value: Any, match: str
) -> None:
    state = make(num_replicas=2, rank=0).state_dict()
    state[field] = value
    s = make(num_replicas=2, rank=0)
    s.set_epoch(7)
    with pytest.raises(ValueError, match=match):
        s.load_state_dict(state)
    assert s.epoch == 7 and epoch_of(s, 7) == epoch_of(make(num_replicas=2, rank=0), 7)


def test_an_elastic_state_must_be_a_whole_number_of_indices_per_rank() -> None:
    state = make(num_replicas=2, rank=0).state_dict()
    state["offset"] = 3
    with pytest.raises(ValueError, match="'offset'"):
        make(num_replicas=3, rank=0).load_state_dict(state)


# -- arguments ---------------------------------------------------------------------------------


def test_shard_sizes_from_any_container(tmp_path: Path) -> None:
    path = tmp_path / "sizes.npy"
    np.save(path, np.array(SIZES, dtype=np.int32))
    want = epoch_of(make(), 1)
    for sizes in (tuple(SIZES), np.array(SIZES, dtype=np.uint64), path, str(path)):
        assert epoch_of(make(sizes), 1) == want
    assert epoch_of(make(range(0)), 1) == []


@pytest.mark.parametrize(
    ("sizes", "kw", "exc", "match"),
    [
        ("missing.npy", {}, ValueError, "shard_sizes"),
        (3.5, {}, TypeError, "shard_sizes"),
        ({1: 2}, {}, TypeError, "shard_sizes"),
        ([1, -2], {}, ValueError, r"shard_sizes\[1\]"),
        ([True, 2], {}, TypeError, r"shard_sizes\[0\]"),
        ([1.0, 2.0], {}, TypeError, r"shard_sizes\[0\]"),
        (np.array([1.0]), {}, TypeError, "shard_sizes"),
        (np.zeros((2, 2), dtype=int), {}, ValueError, "shard_sizes"),
        (np.array([-1], dtype=np.int8), {}, ValueError, r"shard_sizes\[0\]"),
        ([2**63], {}, ValueError, r"shard_sizes\[0\]"),
        (np.array([2**64 - 1], dtype=np.uint64), {}, ValueError, r"shard_sizes\[0\]"),
        ([2**62, 2**62], {}, ValueError, "shard_sizes"),
        (SIZES, {"window": 0}, ValueError, "window"),
        (SIZES, {"window": True}, TypeError, "window"),
        (SIZES, {"num_replicas": 0}, ValueError, "num_replicas"),
        (SIZES, {"num_replicas": 2, "rank": 2}, ValueError, "Invalid rank 2"),
        (SIZES, {"seed": 2**64}, ValueError, "seed"),
        (SIZES, {"batch_size": 0}, ValueError, "batch_size"),
        (SIZES, {"drop_last": 1}, TypeError, "drop_last"),
    ],
)
def test_bad_arguments_are_refused_naming_them(
    sizes: Any, kw: dict[str, Any], exc: type[Exception], match: str
) -> None:
    with pytest.raises(exc, match=match):
        make(sizes, **kw)


def test_it_is_registered_and_exported() -> None:
    assert "ResumableShardSampler" in rs.__all__
    s = rs.create_sampler("ResumableShardSampler", SIZES, num_replicas=1, rank=0, seed=5, window=3)
    assert list(s) == list(make())


# -- loaders -----------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 2])
def test_a_dataloader_with_workers_reads_the_sampler_order(workers: int) -> None:
    s = make(num_replicas=2, rank=1)
    s.set_epoch(2)
    kw: dict[str, Any] = {"multiprocessing_context": "fork", "timeout": 60} if workers else {}
    loader = tud.DataLoader(
        _workers.IndexDataset(sum(SIZES)), batch_size=4, sampler=s, num_workers=workers, **kw
    )
    assert [i for b in loader for i in b.tolist()] == list(s)


@pytest.mark.parametrize("workers", [0, 2])
def test_stateful_dataloader_resumes_exactly(workers: int) -> None:
    ds = _workers.IndexDataset(sum(SIZES))
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

    sampler = make(batch_size=5)
    loader = StatefulDataLoader(ds, batch_size=5, sampler=sampler, num_workers=workers, **kw)
    record: list[Any] = []
    full = loop(sampler, loader, 0, record)
    for i in (0, 6, 12, 13, 20):
        sampler = make(batch_size=5)
        loader = StatefulDataLoader(ds, batch_size=5, sampler=sampler, num_workers=workers, **kw)
        loader.load_state_dict(record[i]["loader"])
        assert loop(sampler, loader, record[i]["epoch"], None) == full[i + 1 :], i


def _recipe() -> Any:
    spec = importlib.util.spec_from_file_location("shard_dataset", EXAMPLES / "shard_dataset.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("workers", [0, 2])
def test_the_recipe_dataset_reads_each_shard_about_once_per_epoch(
    tmp_path: Path, workers: int
) -> None:
    recipe = _recipe()
    sizes = [30, 12, 50, 8, 25, 40, 6, 29, 17, 33, 1, 44]
    dataset = recipe.NpyShards(recipe.write_shards(tmp_path, sizes), cache=3)
    assert dataset.sizes.tolist() == sizes
    sampler = rs.ResumableShardSampler(dataset.sizes, window=3, seed=2, batch_size=8)
    kw: dict[str, Any] = {"multiprocessing_context": "fork", "timeout": 60} if workers else {}
    loader = tud.DataLoader(dataset, batch_size=8, sampler=sampler, num_workers=workers, **kw)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        before = dataset.loads
        rows = torch.cat(list(loader))
        assert rows[:, 0].long().tolist() == list(sampler)  # ConcatDataset numbering
        if not workers:
            assert dataset.loads - before <= len(sizes)


# -- a real gloo group -------------------------------------------------------------------------


def test_a_gloo_job_takes_its_ranks_from_the_group_and_resumes_elastically(
    tmp_path: Path,
) -> None:
    world = 3
    preload = ["torch", "torch.distributed", "resumable_samplers", "_workers", "_shard_workers"]
    results = _workers.run_gloo_job(world, tmp_path, _shard_workers.shard_results, preload, 90)
    sizes, stop = _shard_workers.SIZES, _shard_workers.STOP
    assert [r["replicas"] for r in results] == [(world, r) for r in range(world)]
    for r, res in enumerate(results):
        assert res["whole"] == epoch_of(make(sizes, num_replicas=world, rank=r), 1)
        assert res["head"] == res["whole"][:stop]
    assert set().union(*(r["whole"] for r in results)) == set(range(sum(sizes)))
    state = results[0]["state"]
    assert all(r["state"] == state for r in results)
    left = [i for r in results for i in r["whole"][stop:]]
    resumed = []
    for s in job(sizes, 2, 0):
        s.load_state_dict(state)
        resumed += list(s)
    assert set(resumed) == set(left)


# -- the benchmark section ---------------------------------------------------------------------


def test_bench_section_s_plans_mosaic_up_to_its_size_limit() -> None:
    from resumable_samplers.bench import shard_cases

    impls = ["ours", "py1e", "py1br"]
    specs = [(s.case, s.impl, s.n) for s in shard_cases.plan_shards([10**9], 0, None, impls)]
    first = [(c, i, n) for c, i, n in specs if c == "shard_first"]
    assert first == [
        ("shard_first", impl, n)
        for n in shard_cases.FIRST_NS
        for impl in impls
        if impl == "ours" or n <= shard_cases.PEER_MAX_N
    ]
    assert [(i, n) for c, i, n in specs if c == "shard_locality"] == [
        (i, shard_cases.LOCALITY_N) for i in impls
    ]
    small = shard_cases.plan_shards([10**5], 0, 1, ["ours"])
    assert [(s.case, s.n, s.repeat) for s in small] == [
        ("shard_first", 10**5, 1),
        ("shard_locality", 10**5, 1),
    ]


def test_bench_shard_sizes_and_cached_loads() -> None:
    from collections import OrderedDict

    from resumable_samplers.bench import shard_cases

    sizes = shard_cases.shard_sizes(123_457, 3)
    assert int(sizes.sum()) == 123_457 and len(sizes) == 12
    rng = np.random.default_rng(0)
    seq = rng.integers(0, 12, 5000)
    seq = np.repeat(seq, rng.integers(1, 4, 5000))
    for cache in (1, 3, 8):
        held: OrderedDict[int, None] = OrderedDict()  # an LRU cache, item by item
        loads = 0
        for k in seq.tolist():
            if k in held:
                held.move_to_end(k)
            else:
                loads += 1
                held[k] = None
                if len(held) > cache:
                    held.popitem(last=False)
        assert shard_cases.cached_loads(seq, cache) == loads


def test_bench_measures_our_locality_within_its_bounds() -> None:
    from resumable_samplers.bench import child
    from resumable_samplers.bench.spec import Spec

    report = child.measure(Spec("s", "shard_locality", "ours", 200_000))
    assert report["status"] == "ok", report
    m = report["metrics"]
    assert m["max_open"] <= m["window"]
    assert m["loads"] == m["cached_loads"] <= m["load_bound"]
    report = child.measure(Spec("s", "shard_first", "ours", 200_000))
    assert report["status"] == "ok", report
    assert {"first_index_s", "resume_s", "elastic_s"} <= set(report["metrics"])


def test_bench_reports_mosaic_as_not_measured_when_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    from resumable_samplers.bench import child, shard_cases
    from resumable_samplers.bench.spec import Spec

    real = shard_cases.importlib.import_module

    def no_streaming(name: str, package: str | None = None) -> Any:
        if name.startswith("streaming"):
            raise ImportError("No module named 'streaming'")
        return real(name, package)

    monkeypatch.setattr(shard_cases.importlib, "import_module", no_streaming)
    monkeypatch.delenv(shard_cases.STREAMING_SHUFFLE_ENV, raising=False)
    report = child.measure(Spec("s", "shard_first", "py1e", 100_000))
    assert report["status"] == "unavailable"
    assert "mosaicml-streaming" in report["reason"]


def test_an_elastic_state_replaces_an_epoch_already_read() -> None:
    state, _, left = _stop(job(SIZES, 3, 1), 4)
    for s in job(SIZES, 2, 1):
        list(s)  # epoch 1 of the new job, read (and kept) before the state is loaded
        fresh = job(SIZES, 2, 0)[s.rank]
        fresh.load_state_dict(state)
        s.load_state_dict(state)
        assert list(s) == list(fresh)
        assert set(s.indices().tolist()) <= set(left)


def test_an_elastic_level_past_the_cores_limit_is_refused() -> None:
    from resumable_samplers import _core, shards

    assert shards.MAX_LEVEL_REPLICAS == _core.MAX_LEVEL_REPLICAS == 2**20
    state = make(num_replicas=2, rank=0).state_dict()
    state["levels"] = [[2**20 + 1, 0]]
    with pytest.raises(ValueError, match=r"'levels'.*2\*\*20"):
        make(num_replicas=2, rank=0).load_state_dict(state)


def test_len_after_an_elastic_resume_counts_the_batches_a_dataloader_gives() -> None:
    state, _, _ = _stop(job(SIZES, 3, 1), 10)
    for s in job(SIZES, 2, 0, batch_size=4):
        s.load_state_dict(state)
        assert len(s) == len(list(copy.deepcopy(s)))
        loader = tud.DataLoader(range(sum(SIZES)), batch_size=4, sampler=s)
        assert len(loader) == sum(1 for _ in loader)
        s.set_epoch(2)  # the next epoch is the new job's own, at full length
        assert len(s) == len(tud.DistributedSampler(range(sum(SIZES)), num_replicas=2, rank=0))


def test_an_offset_past_the_end_of_a_resumed_level_is_refused() -> None:
    state, _, _ = _stop(job(SIZES, 3, 1), 10)
    resumed = job(SIZES, 2, 0)[0]
    resumed.load_state_dict(state)
    saved = resumed.state_dict()
    end = 2 * len(resumed)
    fine = job(SIZES, 2, 0)[0]
    fine.load_state_dict({**saved, "offset": end})
    assert list(fine) == []
    for offset in (end + 2, end + 16):
        again = job(SIZES, 2, 0)[0]
        with pytest.raises(ValueError, match=r"state field 'offset' \(\d+\) is past the end"):
            again.load_state_dict({**saved, "offset": offset})


def test_levels_from_other_serialisers_are_read() -> None:
    """YAML, msgpack or OmegaConf may give tuples and NumPy integers for the levels."""
    state, _, _ = _stop(job(SIZES, 3, 1), 10)
    resumed = job(SIZES, 2, 0)[0]
    resumed.load_state_dict(state)
    saved = resumed.state_dict()
    want = list(copy.deepcopy(resumed))
    for levels in ([(3, 10)], ((np.int64(3), np.uint8(10)),)):
        other = job(SIZES, 2, 0)[0]
        other.load_state_dict({**saved, "levels": levels})
        assert list(other) == want
    for bad in ([[True, 10]], [[3]], [[3, -1]], "levels"):
        with pytest.raises(ValueError, match="state field 'levels'"):
            job(SIZES, 2, 0)[0].load_state_dict({**saved, "levels": bad})

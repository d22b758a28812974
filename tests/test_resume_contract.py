"""The resume contract: an epoch and at most one pending start, consumed by the next iterator.

Checked against torchdata's ``StatefulDistributedSampler`` (whose rule this is) in random
programs of sampler operations and in the training loops people write with
``StatefulDataLoader``; and against the uninterrupted run, which a resumed run must reproduce.
Our additions on top of torchdata's rule are modelled explicitly in :class:`Reference`: the state
restores the epoch, a restored start is dropped if the loop has moved to another epoch by the
time the next iterator starts, and the state reports the position of the current epoch only.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.utils.data as tud
from hypothesis import given, settings
from hypothesis import strategies as st
from torchdata.stateful_dataloader import StatefulDataLoader
from torchdata.stateful_dataloader.sampler import StatefulDistributedSampler

import resumable_samplers as rs
from conftest import Sized, torch_perm
from resumable_samplers import _core, _state
from resumable_samplers._resume import EpochKey
from resumable_samplers.samplers import _ResumableOrder

sys.path.insert(0, str(Path(__file__).parent))
from _workers import IndexDataset

# -- named rules -------------------------------------------------------------------------------


def test_start_iter_does_not_leak_into_next_epoch() -> None:
    # A loop that takes the epoch's last batch and never asks the sampler for more (what
    # Lightning does at len(loader), and BatchSampler when the length divides evenly).
    ds = IndexDataset(100)
    sampler = rs.ResumableRandomSampler(ds, seed=0, batch_size=10)
    loader = tud.DataLoader(ds, batch_size=10, sampler=sampler, num_workers=0)
    sampler.start_iter = 3
    sampler.set_epoch(0)
    got = [i for b in itertools.islice(loader, 7) for i in b.tolist()]  # the 7 batches left
    assert got == torch_perm(100, 0)[30:]
    sampler.set_epoch(1)
    assert [i for b in loader for i in b.tolist()] == torch_perm(100, 1)  # epoch 1 is whole


def test_helios_trainer_order_start_iter_then_set_epoch_then_iterate() -> None:
    s = rs.ResumableDistributedSampler(Sized(50), 2, 1, seed=3, batch_size=4)
    s.start_iter = 2
    s.set_epoch(5)
    ref = tud.DistributedSampler(Sized(50), 2, 1, seed=3)
    ref.set_epoch(5)
    assert list(s) == list(ref)[8:]
    s.set_epoch(6)
    ref.set_epoch(6)
    assert list(s) == list(ref)


def test_a_restored_start_is_dropped_when_the_loop_moved_to_another_epoch() -> None:
    saver = rs.ResumableRandomSampler(Sized(40), seed=1)
    saver.set_epoch(3)
    list(itertools.islice(saver, 15))
    s = rs.ResumableRandomSampler(Sized(40), seed=1)
    s.load_state_dict(saver.state_dict())
    assert s.epoch == 3 and s.state_dict()["offset"] == 15
    s.set_epoch(4)  # the trainer moved on before iterating
    assert s.state_dict()["offset"] == 0
    assert list(s) == torch_perm(40, 5)
    s.set_epoch(3)  # and back: the start was dropped when epoch 4 started
    assert list(s) == torch_perm(40, 4)


def test_a_restored_start_survives_set_epoch_to_the_same_epoch() -> None:
    saver = rs.ResumableRandomSampler(Sized(40), seed=1)
    saver.set_epoch(3)
    list(itertools.islice(saver, 15))
    s = rs.ResumableRandomSampler(Sized(40), seed=1)
    s.load_state_dict(saver.state_dict())
    s.set_epoch(4)
    s.set_epoch(3)  # moved away and back before any iterator started: still epoch 3, at 15
    assert list(s) == torch_perm(40, 4)[15:]


def test_an_iterator_consumes_the_pending_start_at_its_first_next() -> None:
    # torchdata's samplers are generators: an iterator that never starts consumes nothing.
    s = rs.ResumableRandomSampler(Sized(30), seed=2, batch_size=5)
    s.start_iter = 2
    unused = iter(s)
    assert s.start_iter == 2 and s.state_dict()["offset"] == 10
    assert list(s) == torch_perm(30, 2)[10:]
    assert list(unused) == torch_perm(30, 2)  # started later: a new iteration of the epoch


def test_state_after_the_last_index_never_names_the_next_epoch() -> None:
    s = rs.ResumableDistributedSampler(Sized(103), 4, 2, seed=9)
    s.set_epoch(7)
    assert len(list(s)) == 26
    state = s.state_dict()
    assert (state["epoch"], state["offset"]) == (7, 104)
    s.set_epoch(8)  # the loop moved on: the new epoch has consumed nothing yet
    assert (s.state_dict()["epoch"], s.state_dict()["offset"]) == (8, 0)


def test_seek_places_the_sampler_at_an_epoch_and_batches_done() -> None:
    s = rs.ResumableDistributedSampler(Sized(100), 4, 3, seed=2, batch_size=5)
    s.seek(6, 2)
    assert s.epoch == 6 and s.batch_size == 5
    assert (s.state_dict()["epoch"], s.state_dict()["offset"]) == (6, 2 * 5 * 4)
    ref = tud.DistributedSampler(Sized(100), 4, 3, seed=2)
    ref.set_epoch(6)
    assert list(s) == list(ref)[10:]
    s.seek(6, 1)
    s.set_epoch(7)  # bound to epoch 6: dropped
    ref.set_epoch(7)
    assert list(s) == list(ref)
    with pytest.raises(ValueError, match="batches"):
        s.seek(1, -1)
    with pytest.raises(TypeError, match="epoch"):
        s.seek(1.5, 0)  # type: ignore[arg-type]


# -- copies ------------------------------------------------------------------------------------


def _torch_round_trip(obj: Any) -> Any:
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


COPIES = {
    "deepcopy": copy.deepcopy,
    "pickle": lambda s: pickle.loads(pickle.dumps(s)),
    "torch.save": _torch_round_trip,
}
KINDS = {
    "random": lambda: rs.ResumableRandomSampler(Sized(80), seed=4, batch_size=5),
    "random-lazy": lambda: rs.ResumableRandomSampler(
        Sized(80), seed=4, batch_size=5, permutation="lazy"
    ),
    "sequential": lambda: rs.ResumableSequentialSampler(Sized(80), batch_size=5),
    "distributed": lambda: rs.ResumableDistributedSampler(Sized(80), 3, 1, seed=4, batch_size=5),
}


@pytest.mark.parametrize("how", COPIES)
@pytest.mark.parametrize("kind", KINDS)
def test_copies_keep_the_position(kind: str, how: str) -> None:
    s = KINDS[kind]()
    s.set_epoch(2)
    full = list(s)
    it = iter(s)
    assert list(itertools.islice(it, 25)) == full[:25]
    clone = COPIES[how](s)
    assert clone.epoch == 2
    assert clone.state_dict() == s.state_dict()
    assert list(clone) == full[25:]  # the copy continues at index 25
    assert list(it) == full[25:]  # and the original is untouched by the copy
    clone.set_epoch(3)
    s.set_epoch(3)
    assert list(clone) == list(s)


# -- subclasses --------------------------------------------------------------------------------


class TorchStyleSubclass(rs.ResumableDistributedSampler):
    """A subclass whose ``set_epoch`` sets the attribute, as torch's own code does."""

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


def test_a_subclass_whose_set_epoch_skips_super_resumes_exactly() -> None:
    full = {}
    for e in (4, 5):
        ref = tud.DistributedSampler(Sized(60), 2, 0, seed=1)
        ref.set_epoch(e)
        full[e] = list(ref)
    saver = TorchStyleSubclass(Sized(60), 2, 0, seed=1)
    saver.set_epoch(4)
    head = list(itertools.islice(saver, 11))
    s = TorchStyleSubclass(Sized(60), 2, 0, seed=1)
    s.load_state_dict(saver.state_dict())
    got = []
    for e in (4, 5):
        s.set_epoch(e)
        got.append(list(s))
    assert head + got[0] == full[4]  # epoch 4 once, not twice
    assert got[1] == full[5]


class HeliosPatternSampler(rs.ResumableSampler):
    """A subclass that implements only ``__iter__``/``__len__``, as helios's users write them."""

    def __init__(self, n: int, batch_size: int) -> None:
        super().__init__(batch_size)
        self.n = n

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(100 + self.epoch)
        return iter(self._adjust_to_start_iter(torch.randperm(self.n, generator=g).tolist()))

    def __len__(self) -> int:
        return self.n


def _helios_pattern(base: type) -> Any:
    class Sampler(base):  # type: ignore[misc, valid-type]
        def __init__(self, n: int, batch_size: int) -> None:
            super().__init__(batch_size)
            self.n = n

        def __iter__(self) -> Iterator[int]:
            g = torch.Generator().manual_seed(100 + self._epoch)
            indices = torch.randperm(self.n, generator=g).tolist()
            return iter(self._adjust_to_start_iter(indices))

        def __len__(self) -> int:
            return self.n

    return Sampler


def test_a_helios_pattern_subclass_works_in_stateful_dataloader_as_with_helios() -> None:
    helios_samplers = pytest.importorskip("helios.data.samplers")
    runs = []
    for base in (rs.ResumableSampler, helios_samplers.ResumableSampler):
        cls = _helios_pattern(base)
        ds = IndexDataset(23)
        sampler = cls(23, 4)
        loader = StatefulDataLoader(ds, batch_size=4, sampler=sampler)
        sampler.set_epoch(1)
        it = iter(loader)
        head = [b.tolist() for b in itertools.islice(it, 3)]
        state = copy.deepcopy(loader.state_dict())
        sampler = cls(23, 4)
        loader = StatefulDataLoader(ds, batch_size=4, sampler=sampler)
        loader.load_state_dict(state)
        sampler.set_epoch(1)
        rest = [b.tolist() for b in loader]
        sampler.set_epoch(2)
        runs.append((head, rest, [b.tolist() for b in loader]))
    assert runs[0] == runs[1]
    head, rest, nxt = runs[0]
    assert [i for b in head + rest for i in b] == torch_perm(23, 101)
    assert [i for b in nxt for i in b] == torch_perm(23, 102)


def test_helios_pattern_start_iter_applies_once() -> None:
    s = HeliosPatternSampler(20, 3)
    s.start_iter = 2
    s.set_epoch(1)
    assert list(s) == torch_perm(20, 101)[6:]
    assert s.start_iter == 0
    assert list(s) == torch_perm(20, 101)


# -- equal orders and normalised attributes ----------------------------------------------------


def test_states_that_describe_the_same_order_are_accepted() -> None:
    saved = rs.ResumableDistributedSampler(Sized(50), 2, 0, shuffle=False, seed=1, batch_size=2)
    list(itertools.islice(saved, 6))
    s = rs.ResumableDistributedSampler(Sized(50), 2, 0, shuffle=False, seed=99)
    s.load_state_dict(saved.state_dict())  # unshuffled: the seed does not matter
    assert list(s) == list(range(12, 50, 2))
    lazy = rs.ResumableDistributedSampler(Sized(50), 2, 0, shuffle=False, permutation="lazy")
    lazy.load_state_dict(saved.state_dict())  # neither does the permutation
    seq = rs.ResumableSequentialSampler(Sized(50))
    seq.load_state_dict(
        rs.ResumableDistributedSampler(Sized(50), 1, 0, shuffle=False, seed=3).state_dict()
    )
    one = rs.ResumableRandomSampler(Sized(1), seed=5)
    one.load_state_dict(rs.ResumableSequentialSampler(Sized(1)).state_dict())  # n = 1
    # -1 and 2**64 - 1 seed torch's generator identically
    minus = rs.ResumableRandomSampler(Sized(30), seed=-1)
    list(itertools.islice(minus, 4))
    wrapped = rs.ResumableRandomSampler(Sized(30), seed=2**64 - 1)
    wrapped.load_state_dict(minus.state_dict())
    assert list(wrapped) == torch_perm(30, -1)[4:]


@pytest.mark.parametrize(
    ("change", "field"),
    [({"seed": 2}, "seed"), ({"permutation": "lazy"}, "permutation"), ({"shuffle": False}, "")],
)
def test_states_that_change_the_order_are_refused(change: dict[str, Any], field: str) -> None:
    state = {**rs.ResumableRandomSampler(Sized(30), seed=1).state_dict(), **change}
    with pytest.raises(ValueError, match=field or "shuffle"):
        rs.ResumableRandomSampler(Sized(30), seed=1).load_state_dict(state)


def test_attributes_set_directly_are_normalised_in_the_state() -> None:
    s = rs.ResumableDistributedSampler(Sized(40), 2, 1)
    s.seed = np.int64(5)  # type: ignore[assignment]
    s.epoch = np.int32(3)  # type: ignore[assignment]
    s.shuffle = np.bool_(True)  # type: ignore[assignment]
    state = s.state_dict()
    assert json.loads(json.dumps(state)) == state
    assert type(state["seed"]) is int and type(state["epoch"]) is int
    assert type(state["shuffle"]) is bool
    ref = tud.DistributedSampler(Sized(40), 2, 1, seed=5)
    ref.set_epoch(3)
    assert list(s) == list(ref)


# -- differential: random programs against torchdata's StatefulDistributedSampler ------------


class Reference:
    """torchdata's ``StatefulDistributedSampler`` with our documented additions on top.

    Additions: ``load_state_dict`` restores the epoch; a restored start is dropped if the
    sampler is in another epoch when the next iterator starts; the state reports the pending
    start, else the position of the current epoch's most recent iterator (torchdata's
    ``yielded`` can be stale: an earlier epoch's count, or 0 right after a load).
    """

    def __init__(self, n: int, world: int, rank: int, seed: int, batch: int) -> None:
        self.sampler = StatefulDistributedSampler(Sized(n), world, rank, seed=seed)
        self.batch = batch
        self.bound: int | None = None  # the epoch a restored start belongs to
        self.run_epoch: int | None = None  # the epoch of the most recently started iterator

    def __iter__(self) -> Iterator[int]:
        s = self.sampler
        if self.bound is not None and s.epoch != self.bound:
            s.next_yielded = None
        self.bound = None
        it = iter(s)
        first = next(it, None)  # the generator starts: torchdata consumes next_yielded
        self.run_epoch = s.epoch
        if first is not None:
            yield first
            yield from it

    def position(self) -> int:
        s = self.sampler
        if s.next_yielded is not None and self.bound in (None, s.epoch):
            return min(s.next_yielded, s.num_samples)
        return s.yielded if self.run_epoch == s.epoch else 0


@st.composite
def programs(draw: st.DrawFn) -> tuple[int, int, int, int, list[tuple[str, int]]]:
    n = draw(st.integers(0, 40))
    world = draw(st.integers(1, 4))
    rank = draw(st.integers(0, world - 1))
    batch = draw(st.integers(1, 5))
    ops = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("set_epoch"), st.integers(0, 3)),
                st.tuples(st.just("iter"), st.just(0)),
                st.tuples(st.just("take"), st.integers(0, 15)),
                st.tuples(st.just("start_iter"), st.integers(0, 6)),
                st.tuples(st.just("save_load"), st.integers(-1, 3)),
                st.tuples(st.just("load_set_epoch"), st.integers(0, 3)),
            ),
            max_size=14,
        )
    )
    return n, world, rank, batch, ops


@settings(max_examples=300, deadline=None)
@given(programs())
def test_random_programs_match_torchdata(program: tuple[int, int, int, int, list[Any]]) -> None:
    n, world, rank, batch, ops = program
    seed = 3

    def ours_new() -> rs.ResumableDistributedSampler:
        return rs.ResumableDistributedSampler(Sized(n), world, rank, seed=seed, batch_size=batch)

    ours = ours_new()
    ref = Reference(n, world, rank, seed, batch)
    it_ours: Iterator[int] = iter(())
    it_ref: Iterator[int] = iter(())
    for op, arg in ops:
        if op == "set_epoch":
            ours.set_epoch(arg)
            ref.sampler.set_epoch(arg)
        elif op == "iter":
            it_ours, it_ref = iter(ours), iter(ref)
        elif op == "take":
            got = list(itertools.islice(it_ours, arg))
            assert got == list(itertools.islice(it_ref, arg)), (op, arg)
        elif op == "start_iter":
            ours.start_iter = arg
            ref.sampler.load_state_dict({"yielded": arg * batch})  # applies to the next iter
            ref.bound = None
        else:  # a new process loads the state, with set_epoch before (arg >= 0) or after it
            state = ours.state_dict()
            assert state["offset"] == min(ref.position() * world, n and -(-n // world) * world)
            saved_epoch = ref.sampler.epoch
            ours = ours_new()
            ref = Reference(n, world, rank, seed, batch)
            if op == "save_load" and arg >= 0:
                ours.set_epoch(arg)
                ref.sampler.set_epoch(arg)
            ours.load_state_dict(state)
            ref.sampler.set_epoch(saved_epoch)
            ref.sampler.load_state_dict({"yielded": state["offset"] // world})
            ref.bound = saved_epoch
            if op == "load_set_epoch":
                ours.set_epoch(arg)
                ref.sampler.set_epoch(arg)
            it_ours, it_ref = iter(()), iter(())
        assert ours.epoch == ref.sampler.epoch
    assert list(it_ours) == list(it_ref)
    assert list(ours) == list(ref)


# -- the training loops people write, with StatefulDataLoader ---------------------------------

EPOCHS = 3
BATCH = 10


def _loop(
    loader: StatefulDataLoader,
    sampler: Any,
    first_epoch: int,
    with_set_epoch: bool,
    record: list[dict[str, Any]] | None = None,
) -> list[list[int]]:
    """The loop: ``for epoch: [set_epoch]; for batch in loader: train, maybe checkpoint``.

    With ``record``, saves ``{"epoch": epoch, "loader": loader.state_dict()}`` after every batch
    and once more after each epoch's loop ended.
    """
    batches = []
    for epoch in range(first_epoch, EPOCHS):
        if with_set_epoch:
            sampler.set_epoch(epoch)
        for batch in loader:
            batches.append(batch.tolist())
            if record is not None:
                record.append({"epoch": epoch, "loader": copy.deepcopy(loader.state_dict())})
        if record is not None:
            record.append({"epoch": epoch, "loader": copy.deepcopy(loader.state_dict())})
    return batches


def _make(kind: str, n: int, workers: int, drop_last: bool) -> tuple[Any, StatefulDataLoader]:
    ds = IndexDataset(n)
    if kind == "ours":
        sampler: Any = rs.ResumableRandomSampler(ds, seed=7, batch_size=BATCH)
    elif kind == "subclass":
        sampler = TorchStyleSubclass(ds, 1, 0, seed=7, batch_size=BATCH)
    else:
        sampler = StatefulDistributedSampler(ds, num_replicas=1, rank=0, seed=7)
    kw: dict[str, Any] = {"multiprocessing_context": "fork", "timeout": 60} if workers else {}
    loader = StatefulDataLoader(
        ds, batch_size=BATCH, sampler=sampler, num_workers=workers, drop_last=drop_last, **kw
    )
    return sampler, loader


@pytest.mark.timeout(300)
@pytest.mark.parametrize("with_set_epoch", [True, False], ids=["set_epoch", "no-set_epoch"])
@pytest.mark.parametrize("drop_last", [False, True], ids=["keep-last", "drop-last"])
@pytest.mark.parametrize("n", [100, 103])
@pytest.mark.parametrize("workers", [0, 2])
def test_loops_resume_exactly_and_as_torchdata(
    workers: int, n: int, drop_last: bool, with_set_epoch: bool
) -> None:
    runs = {}
    for kind in ("ours", "torchdata"):
        sampler, loader = _make(kind, n, workers, drop_last)
        record: list[dict[str, Any]] = []
        runs[kind] = (_loop(loader, sampler, 0, with_set_epoch, record), record)
    full, record = runs["ours"]
    assert full == runs["torchdata"][0]  # the same uninterrupted run
    per_epoch = n // BATCH if drop_last else -(-n // BATCH)
    assert len(full) == EPOCHS * per_epoch
    # record[i] for i < per_epoch: after batch i + 1 of epoch 0; record[per_epoch]: after the
    # loop of epoch 0 ended; then epoch 1 likewise.
    points = {
        "first batch": 0,
        "middle": per_epoch // 2,
        "last batch": per_epoch - 1,
        "after the loop": per_epoch,
        "first batch of the next epoch": per_epoch + 1,
    }
    for where, i in points.items():
        done = i + 1 - (i > per_epoch - 1)  # batches trained before the checkpoint
        resumed = {}
        for kind in ("ours", "torchdata"):
            saved = runs[kind][1][i]
            sampler, loader = _make(kind, n, workers, drop_last)
            loader.load_state_dict(saved["loader"])
            resumed[kind] = _loop(loader, sampler, saved["epoch"], with_set_epoch)
        assert resumed["ours"] == resumed["torchdata"], where  # step for step
        if where == "after the loop" and workers:
            # torchdata replaces a restored finished multi-worker iterator by a fresh one: the
            # saved epoch runs again (see docs/resume.md); ours does what torchdata does.
            assert resumed["ours"] == full[done - per_epoch :], where
        else:
            assert resumed["ours"] == full[done:], where


@pytest.mark.parametrize("workers", [0, 2])
def test_a_subclass_whose_set_epoch_skips_super_resumes_in_stateful_dataloader(
    workers: int,
) -> None:
    sampler, loader = _make("subclass", 103, workers, False)
    record: list[dict[str, Any]] = []
    full = _loop(loader, sampler, 0, True, record)
    for i in (5, 10, 11, 12):  # middle, last batch, after the loop, first batch of epoch 1
        sampler, loader = _make("subclass", 103, workers, False)
        loader.load_state_dict(record[i]["loader"])
        done = i + 1 - (i > 10)
        resumed = _loop(loader, sampler, record[i]["epoch"], True)
        if i == 11 and workers:  # torchdata runs a finished multi-worker epoch again
            done -= 11
        assert resumed == full[done:], i


# A sampler over an order is its settings, its epoch builder and its extra state: the resume
# object gives it state_dict, load_state_dict, seek, start_iter, indices() and copies.


class _Tagged(_ResumableOrder, rs.ResumableSampler):
    """The lazy order of ``n`` items over ``num_replicas`` ranks, with one field of its own."""

    def __init__(self, n: int, tag: int, batch_size: int = 1, num_replicas: int = 1, rank: int = 0):
        super().__init__(batch_size)
        self.n, self.tag, self.num_replicas, self.rank, self.seed = n, tag, num_replicas, rank, 9

    def __len__(self) -> int:
        return self._rank_len()

    def _settings(self) -> _state.Settings:
        return _state.Settings.of(
            self.n, self.num_replicas, self.rank, True, False, "lazy", self.seed, self.epoch
        )

    def _build_epoch(self, key: EpochKey) -> _core.Epoch:
        return _core.Epoch(
            key.n,
            key.num_replicas,
            key.rank,
            key.offset,
            key.drop_last,
            "lazy",
            key.seed,
            key.epoch,
        )

    def _extra_state(self) -> dict[str, Any]:
        return {"tag": self.tag}


def test_a_sampler_written_on_the_interface_resumes_exactly() -> None:
    lazy = rs.randperm(20, 9, permutation="lazy").tolist()  # epoch 0 of a lazy sampler, seed 9
    s = _Tagged(20, tag=7, batch_size=2)
    it = iter(s)
    assert [next(it) for _ in range(6)] == lazy[:6]
    state = s.state_dict()
    assert state["tag"] == 7 and state["offset"] == 6
    assert s.indices().tolist() == lazy[6:]
    copied = pickle.loads(pickle.dumps(s))
    assert list(copied) == lazy[6:]
    # Loaded by two ranks: the rest of the epoch, dealt as DistributedSampler deals it.
    ranks = [_Tagged(20, tag=7, num_replicas=2, rank=r) for r in range(2)]
    for r in ranks:
        r.load_state_dict(state)
    assert sorted(list(ranks[0]) + list(ranks[1])) == sorted(lazy[6:])
    with pytest.raises(ValueError, match="state field 'tag' is 7 but this sampler has 8"):
        _Tagged(20, tag=8).load_state_dict(state)
    s.seek(0, 3)
    assert list(s) == lazy[6:]
    s.start_iter = 1
    assert list(s) == lazy[2:]

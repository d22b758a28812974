"""The core's reader: the iterator every sampler hands out, for every order, from any start,
with the next chunk of a lazy epoch computed on a helper thread or not, and across ``fork``."""

from __future__ import annotations

import gc
import itertools
import operator
import pickle
import sys
import weakref

import numpy as np
import pytest
import torch
from _workers import fork_and_check

from conftest import Sized
from resumable_samplers import ResumableDistributedSampler, _core

# Chunks hold 1024, 2048, ... 65536 indices: these starts and lengths straddle their edges.
STARTS = [0, 1, 1023, 1024, 1025, 3071, 3072, 70_000]


def _epoch(n: int, order: str, w: int = 1, r: int = 0, seed: int = 7) -> _core.Epoch:
    return _core.Epoch(n, w, r, 0, False, order, seed, 3)


@pytest.mark.parametrize("order", ["torch", "lazy", "identity"])
@pytest.mark.parametrize("ahead", [True, False])
def test_reader_yields_the_epoch_from_any_start(order: str, ahead: bool) -> None:
    for n, w, r in [(0, 1, 0), (1, 1, 0), (3000, 3, 2), (300_007, 2, 1)]:
        epoch = _epoch(n, order, w, r)
        want = epoch.array(0).tolist()
        for start in [*STARTS, len(epoch), len(epoch) + 10]:
            reader = epoch.reader(start, ahead=ahead)
            got = list(reader)
            assert got == want[start:], (order, n, w, r, start)
            assert all(type(i) is int for i in got[:3])
            assert reader.position() == len(epoch)
            assert next(reader, None) is None  # stays exhausted


def test_lazy_reader_equals_torch_free_reference_at_chunk_edges() -> None:
    """The values a helper thread computed are the ones computed in place, chunk by chunk."""
    epoch = _epoch(10**9, "lazy", 8, 3)
    ahead = list(itertools.islice(epoch.reader(5), 300_000))
    alone = list(itertools.islice(epoch.reader(5, ahead=False), 300_000))
    assert ahead == alone == epoch.array(5)[:300_000].tolist()


def test_position_and_length_hint_follow_every_index() -> None:
    epoch = _epoch(5000, "lazy")
    reader = epoch.reader(17)
    for k in range(5000 - 17):
        assert reader.position() == 17 + k
        assert operator.length_hint(reader) == 5000 - 17 - k
        next(reader)
    assert reader.position() == 5000 and operator.length_hint(reader) == 0


def test_reader_keeps_its_epoch_alive_and_is_not_constructible_or_picklable() -> None:
    epoch = _epoch(100_000, "torch")
    want = epoch.array(0).tolist()
    reader = epoch.reader(0)
    del epoch
    assert list(reader) == want
    with pytest.raises(TypeError):
        _core.Reader()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        pickle.dumps(_epoch(10, "lazy").reader(0))


def test_reader_over_a_huge_lazy_epoch_allocates_nothing_of_its_size() -> None:
    epoch = _epoch(2**63 - 1, "lazy", 8, 5)
    start = 2**59
    head = list(itertools.islice(epoch.reader(start), 200_000))
    assert head == list(itertools.islice(epoch.reader(start, ahead=False), 200_000))
    for k in (0, 1023, 1024, 70_000, 199_999):  # each position computed on its own
        assert head[k] == next(epoch.reader(start + k, ahead=False))
    assert len(set(head)) == len(head) and all(0 <= i < 2**63 - 1 for i in head)


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_forked_child_continues_a_reader_whose_helper_stayed_in_the_parent() -> None:
    """Fork while a helper thread computes the next chunk: the child has no such thread and
    must compute the chunk itself, with the same values, and must not hang."""
    epoch = _epoch(8 * 10**6, "lazy", 4, 1)  # 2M per rank: chunks are computed ahead
    want = epoch.array(0)[:1_000_000].tolist()
    reader = epoch.reader(0)
    head = list(itertools.islice(reader, 40_000))  # chunks of 32768+ are computed ahead

    def child() -> bool:
        rest = list(itertools.islice(reader, 1_000_000 - 40_000))
        return head + rest == want

    def parent() -> None:
        rest = list(itertools.islice(reader, 1_000_000 - 40_000))
        assert head + rest == want

    fork_and_check(child, parent)


def test_sampler_iteration_is_the_reader_and_matches_torch() -> None:
    """End to end: the distributed sampler's iterator (a reader started at its first next())
    yields torch's DistributedSampler order, and its state position follows the reader."""
    data = Sized(50_000)
    ours = ResumableDistributedSampler(data, num_replicas=3, rank=2, seed=4)
    theirs = torch.utils.data.DistributedSampler(data, num_replicas=3, rank=2, seed=4)
    it = iter(ours)
    head = list(itertools.islice(it, 4097))
    assert ours.state_dict()["offset"] == 4097 * 3
    assert head + list(it) == list(theirs)
    assert ours.state_dict()["epoch"] == 0 and ours.state_dict()["offset"] == 50_001


def test_np_ints_are_not_needed_to_read() -> None:
    # The reader yields Python ints, never NumPy scalars, whatever the buffer type.
    for n in (10, 2**33):
        first = next(_epoch(n, "lazy").reader(0))
        assert type(first) is int and not isinstance(first, np.integer)


class _CountedStart:
    """A deferred reader's start that counts its calls."""

    def __init__(self, epoch: _core.Epoch, start: int) -> None:
        self.epoch, self.start, self.calls = epoch, start, 0

    def __call__(self) -> _core.Reader:
        self.calls += 1
        return self.epoch.reader(self.start)


@pytest.mark.parametrize("order", ["torch", "lazy"])
def test_deferred_reader_starts_once_at_its_first_next(order: str) -> None:
    epoch = _epoch(300_007, order, 2, 1)
    start = _CountedStart(epoch, 1025)
    reader = _core.Reader.deferred(start)
    assert iter(reader) is reader
    assert start.calls == 0 and reader.position() == 0 and operator.length_hint(reader) == 0
    first = next(reader)
    assert start.calls == 1
    assert reader.position() == 1026 and operator.length_hint(reader) == len(epoch) - 1026
    assert [first, *reader] == epoch.array(0)[1025:].tolist()
    assert start.calls == 1 and next(reader, None) is None


def test_the_started_reader_answers_for_the_deferred_one() -> None:
    """What ``start`` returned (a sampler's state keeps it) follows the deferred reader."""
    epoch = _epoch(5000, "lazy")
    started: list[_core.Reader] = []

    def start() -> _core.Reader:
        started.append(epoch.reader(10))
        return started[0]

    reader = _core.Reader.deferred(start)
    head = list(itertools.islice(reader, 7))
    assert started[0].position() == reader.position() == 17
    assert operator.length_hint(started[0]) == 5000 - 17
    assert next(started[0]) == epoch.array(0)[17]  # reads on from the same place
    assert reader.position() == 18
    assert [*head, int(epoch.array(0)[17]), *reader] == epoch.array(0)[10:].tolist()


def test_deferred_reader_raises_the_start_error_then_stops() -> None:
    calls = []

    def start() -> _core.Reader:
        calls.append(1)
        raise ValueError("epoch should be ...")

    reader = _core.Reader.deferred(start)
    with pytest.raises(ValueError, match="epoch should be"):
        next(reader)
    assert next(reader, None) is None and list(reader) == []  # as a generator would
    assert len(calls) == 1


def test_deferred_reader_refuses_what_is_not_a_start() -> None:
    with pytest.raises(TypeError, match="start should be a callable returning a Reader, got int"):
        _core.Reader.deferred(3)  # type: ignore[arg-type]
    reader = _core.Reader.deferred(lambda: iter([1, 2]))  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="should return a Reader"):
        next(reader)
    taken = _epoch(10, "lazy").reader(0)
    _ = next(_core.Reader.deferred(lambda: taken))
    with pytest.raises(TypeError, match="should return a Reader"):
        next(_core.Reader.deferred(lambda: taken))  # its indices belong to another reader now
    with pytest.raises(TypeError):
        pickle.dumps(_core.Reader.deferred(lambda: taken))


def test_next_inside_the_start_of_a_deferred_reader_is_refused() -> None:
    epoch = _epoch(100, "identity")
    nested: list[BaseException] = []

    def start() -> _core.Reader:
        try:
            next(reader)
        except RuntimeError as e:
            nested.append(e)
        return epoch.reader(0)

    reader = _core.Reader.deferred(start)
    assert list(reader) == list(range(100))
    assert len(nested) == 1 and "busy" in str(nested[0])


def test_a_deferred_reader_in_a_reference_cycle_is_collected() -> None:
    class Owner:
        def start(self) -> _core.Reader:
            raise AssertionError("never started")

    owner = Owner()
    owner.it = _core.Reader.deferred(owner.start)  # type: ignore[attr-defined]
    ref = weakref.ref(owner)
    del owner
    gc.collect()
    assert ref() is None


def test_sampler_iterator_is_a_reader_started_at_its_first_next() -> None:
    """The sampler hands out a C reader (no Python layer per index) that takes the pending
    start at its first ``next()``, and yields torch's DistributedSampler order."""
    data = Sized(20_000)
    ours = ResumableDistributedSampler(data, num_replicas=4, rank=1, seed=9, batch_size=10)
    theirs = list(torch.utils.data.DistributedSampler(data, num_replicas=4, rank=1, seed=9))
    ours.start_iter = 3
    it = iter(ours)
    assert type(it) is _core.Reader
    assert ours.state_dict()["offset"] == 3 * 10 * 4  # still pending: nothing started
    assert list(it) == theirs[30:]
    assert list(ours) == theirs  # consumed by the first iterator

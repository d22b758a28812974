"""Samplers inside torchdata's ``StatefulDataLoader``: save after k batches, resume in a new one.

The dataset returns its index, so a batch is the list of indices the sampler chose. The
uninterrupted reference is a plain in-process ``StatefulDataLoader`` run over epochs ``e``,
``e + 1`` and ``e + 2`` (``sampler.set_epoch`` before each), checked against torch's order where
one exists (multi-worker runs must equal it). The
resumed run builds fresh dataset, sampler and loader objects, calls ``loader.load_state_dict``
and then runs the loop a trainer writes::

    sampler.set_epoch(e)
    for batch in loader: ...
    sampler.set_epoch(e + 1)
    for batch in loader: ...

What torchdata 0.11 does with it (stateful_dataloader.py): ``load_state_dict`` only stores the
state; the next ``__iter__`` builds the iterator from it. With a ``batch_size`` the loader wraps
our sampler in torchdata's ``BatchSampler``, whose iterator saves ``sampler.state_dict()`` under
``"sampler_state"`` and, on load, calls our ``load_state_dict`` and then ``iter(sampler)``; since
our sampler is ``Stateful`` nothing is fast-forwarded, so the resume point comes from our state
alone. With workers, the main process draws batches ahead and the sampler state is taken from the
snapshot of the step being yielded; with ``snapshot_every_n_steps = s`` the state holds the last
snapshot (a multiple of ``s`` steps) plus ``_steps_since_snapshot``, which the resumed iterator
fetches again and drops before yielding, so the next batch is still batch ``k``.
"""

from __future__ import annotations

import copy
import functools
import itertools
import os
import sys
from typing import Any

import pytest
import torch
import torch.utils.data as tud
from torchdata.stateful_dataloader import StatefulDataLoader

from resumable_samplers import ResumableDistributedSampler, ResumableRandomSampler

sys.path.insert(0, os.path.dirname(__file__))
from _workers import IndexDataset

N = 27
B = 3
W = 2
SEED = 5
EPOCH = 2
LOADER_TIMEOUT = 60  # seconds a multi-process loader may wait for a batch before raising

# name -> (kind, permutation, rank, drop_last). The random sampler has 9 full batches; a rank of
# the distributed one has 14 indices (13 with drop_last), 5 batches with a partial last one.
SAMPLERS: dict[str, tuple[str, str, int, bool]] = {
    "random-torch": ("random", "torch", 0, False),
    "random-lazy": ("random", "lazy", 0, False),
    "dist-r0": ("distributed", "torch", 0, False),
    "dist-r1": ("distributed", "torch", 1, False),
    "dist-drop-r0": ("distributed", "torch", 0, True),
    "dist-drop-r1": ("distributed", "torch", 1, True),
}


def make_sampler(name: str, ds: IndexDataset) -> Any:
    kind, permutation, rank, drop_last = SAMPLERS[name]
    if kind == "random":
        return ResumableRandomSampler(ds, seed=SEED, batch_size=B, permutation=permutation)
    return ResumableDistributedSampler(
        ds, num_replicas=W, rank=rank, seed=SEED, drop_last=drop_last, batch_size=B
    )


def replicas(name: str) -> int:
    return W if SAMPLERS[name][0] == "distributed" else 1


def torch_order(name: str, epoch: int) -> list[int] | None:
    """torch's own order for this sampler and epoch (None for the lazy order)."""
    kind, permutation, rank, drop_last = SAMPLERS[name]
    if permutation == "lazy":
        return None
    if kind == "random":
        g = torch.Generator().manual_seed(SEED + epoch)
        return torch.randperm(N, generator=g).tolist()  # type: ignore[no-any-return]
    ref = tud.DistributedSampler(IndexDataset(N), W, rank, seed=SEED, drop_last=drop_last)
    ref.set_epoch(epoch)
    return list(ref)


def make_loader(sampler: Any, ds: IndexDataset, num_workers: int, **kw: Any) -> StatefulDataLoader:
    if num_workers:
        kw.setdefault("multiprocessing_context", "fork")
        kw.setdefault("timeout", LOADER_TIMEOUT)
    return StatefulDataLoader(ds, batch_size=B, sampler=sampler, num_workers=num_workers, **kw)


def run(loader: StatefulDataLoader) -> list[list[int]]:
    return [batch.tolist() for batch in loader]


def chunks(order: list[int]) -> list[list[int]]:
    return [order[i : i + B] for i in range(0, len(order), B)]


@functools.cache
def reference(name: str) -> list[list[list[int]]]:
    """The uninterrupted run: a plain in-process loader over epochs EPOCH to EPOCH + 2."""
    ds = IndexDataset(N)
    sampler = make_sampler(name, ds)
    loader = make_loader(sampler, ds, 0)
    epochs = []
    for e in range(EPOCH, EPOCH + 3):
        sampler.set_epoch(e)
        epochs.append(run(loader))
        expected = torch_order(name, e)
        if expected is not None:
            assert epochs[-1] == chunks(expected), (name, e)
    if SAMPLERS[name][0] == "random":  # the lazy order too: a permutation, new every epoch
        assert sorted(i for b in epochs[0] for i in b) == list(range(N))
        assert epochs[0] != epochs[1]
    return epochs


def save_after(
    name: str, k: int, num_workers: int, **kw: Any
) -> tuple[list[list[int]], dict[str, Any]]:
    """Run epoch EPOCH for k batches, then stop and return them with the loader's state."""
    ds = IndexDataset(N)
    sampler = make_sampler(name, ds)
    loader = make_loader(sampler, ds, num_workers, **kw)
    sampler.set_epoch(EPOCH)
    it = iter(loader)
    got = [b.tolist() for b in itertools.islice(it, k)]
    state = copy.deepcopy(loader.state_dict())
    del it, loader  # the job stops here
    return got, state


@functools.cache
def recorded(name: str, num_workers: int, snapshot: int = 1) -> list[dict[str, Any]]:
    """The loader state after each of 0..L batches of epoch EPOCH, from one multi-worker run.

    Starting workers costs ~0.2 s here, so instead of one stopped job per k, one run records
    ``state_dict()`` (a read-only snapshot) after every batch; its batches must still equal the
    uninterrupted run's.
    """
    ds = IndexDataset(N)
    sampler = make_sampler(name, ds)
    loader = make_loader(sampler, ds, num_workers, snapshot_every_n_steps=snapshot)
    sampler.set_epoch(EPOCH)
    it = iter(loader)
    states, got = [copy.deepcopy(loader.state_dict())], []
    for batch in it:
        got.append(batch.tolist())
        states.append(copy.deepcopy(loader.state_dict()))
    assert got == reference(name)[0]
    return states


def resume(
    name: str, state: dict[str, Any], num_workers: int, start_iter: int | None = None, **kw: Any
) -> list[list[list[int]]]:
    """A new job: fresh objects, load the loader state, then the trainer loop over 2 epochs."""
    ds = IndexDataset(N)
    sampler = make_sampler(name, ds)
    loader = make_loader(sampler, ds, num_workers, **kw)
    loader.load_state_dict(state)
    out = []
    for e in (EPOCH, EPOCH + 1):
        if start_iter is not None and e == EPOCH:
            sampler.start_iter = start_iter  # a helios-style trainer also counts batches
        sampler.set_epoch(e)
        out.append(run(loader))
    assert sampler.start_iter == 0
    return out


def sampler_state(state: dict[str, Any], num_workers: int) -> dict[str, Any]:
    """Our sampler's state inside the loader state, under the batch sampler's iterator state."""
    main = state if num_workers == 0 else state["_snapshot"]["_main_snapshot"]
    assert main["_index_sampler_state"] is None  # torchdata's BatchSampler itself keeps nothing
    batch_iter = main["_sampler_iter_state"]
    # Our iterator is not Stateful, so the position is nowhere else than in our state.
    assert set(batch_iter) == {"samples_yielded", "sampler_state"}
    return batch_iter["sampler_state"]  # type: ignore[no-any-return]


def assert_sampler_state(name: str, got: dict[str, Any], step: int, num_batches: int) -> None:
    """The state of our sampler after ``step`` batches of epoch EPOCH."""
    assert got["format"] == "resumable-samplers"
    assert got["dataset_length"] == N and got["seed"] == SEED
    assert got["permutation"] == SAMPLERS[name][1]
    assert got["num_replicas"] == replicas(name)
    total = len(make_sampler(name, IndexDataset(N))) * replicas(name)
    # After the last batch the state is the end of epoch EPOCH: it never names the next epoch.
    offset = min(step * B * replicas(name), total)
    assert (got["epoch"], got["offset"]) == (EPOCH, offset), step


def resume_points(name: str, num_workers: int) -> list[int]:
    """0, 1, the middle, the last but one and the last batch; fewer with (slow) workers."""
    num_batches = len(reference(name)[0])
    if num_workers == 0:
        return sorted({0, 1, num_batches // 2, num_batches - 1, num_batches})
    if SAMPLERS[name][0] == "random":
        # 9 batches, 4 drawn ahead: the sampler is exhausted in the main process from k = 5
        return [0, num_batches // 2, num_batches - 1, num_batches]
    return [0, num_batches // 2, num_batches]  # 5 batches: exhausted from k = 1 already


@pytest.mark.timeout(120)
@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("name", SAMPLERS)
def test_resume_equals_the_uninterrupted_run(name: str, num_workers: int) -> None:
    full, full_next, _ = reference(name)
    num_batches = len(full)
    for k in resume_points(name, num_workers):
        if num_workers == 0:
            got, state = save_after(name, k, num_workers)
            assert got == full[:k], k
        else:
            state = recorded(name, num_workers)[k]
        assert state["_iterator_finished"] is False
        assert_sampler_state(name, sampler_state(state, num_workers), k, num_batches)
        first, second = resume(name, state, num_workers)
        # The next batch and the rest of the epoch, then the whole following epoch, exactly
        # once. Stopped right after the last batch (the loop had not yet seen StopIteration),
        # the state is the end of EPOCH: the resumed loop finds nothing left of it, and
        # set_epoch(EPOCH + 1) then gives the next epoch whole.
        assert first == full[k:], k
        assert second == full_next, k


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("name", "num_workers", "persistent"),
    [
        ("random-torch", 0, False),
        ("dist-drop-r1", 0, False),
        ("dist-drop-r1", 2, False),
        ("random-torch", 2, True),
    ],
)
def test_state_saved_after_the_loop_ended(name: str, num_workers: int, persistent: bool) -> None:
    full, full_next, full_after = reference(name)
    kw: dict[str, Any] = {"persistent_workers": True} if persistent else {}
    ds = IndexDataset(N)
    sampler = make_sampler(name, ds)
    loader = make_loader(sampler, ds, num_workers, **kw)
    sampler.set_epoch(EPOCH)
    assert run(loader) == full
    state = copy.deepcopy(loader.state_dict())
    assert state["_iterator_finished"] is True
    assert_sampler_state(name, sampler_state(state, num_workers), len(full), len(full))
    # The loaded iterator is finished, so __iter__ replaces it by a fresh one. In-process, the
    # fresh iterator's first next() consumes the restored end of EPOCH: the loop resumed in the
    # epoch it saved finds nothing left of it. With workers, torchdata's restore primes the
    # workers from the restored iterator (which consumes the end of EPOCH and yields nothing)
    # and then starts a fresh one: the saved epoch runs again, exactly as it does with
    # torchdata's own StatefulDistributedSampler (test_resume_contract.py checks the parity).
    again = full if num_workers else []
    assert resume(name, state, num_workers, **kw) == [again, full_next]
    ds = IndexDataset(N)
    sampler = make_sampler(name, ds)
    loader = make_loader(sampler, ds, num_workers, **kw)
    loader.load_state_dict(state)
    for e, expected in ((EPOCH, again), (EPOCH + 1, full_next), (EPOCH + 2, full_after)):
        sampler.set_epoch(e)
        assert run(loader) == expected, e


@pytest.mark.timeout(120)
@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("name", ["random-lazy", "dist-r1"])
def test_start_iter_set_by_the_trainer_does_not_double_skip(name: str, num_workers: int) -> None:
    full, full_next, _ = reference(name)
    for k in (1, len(full) - 1):
        if num_workers == 0:
            _, state = save_after(name, k, num_workers)
        else:
            state = recorded(name, num_workers)[k]
        # The loaded state and start_iter = k both say "batch k": absolute, never added.
        assert resume(name, state, num_workers, start_iter=k) == [full[k:], full_next], k


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ["random-torch", "dist-drop-r0"])
def test_persistent_workers(name: str) -> None:
    full, full_next, full_after = reference(name)
    for k in (len(full) // 2, len(full) - 1):
        got, state = save_after(name, k, 2, persistent_workers=True)
        assert got == full[:k], k
        assert_sampler_state(name, sampler_state(state, 2), k, len(full))
        ds = IndexDataset(N)
        sampler = make_sampler(name, ds)
        loader = make_loader(sampler, ds, 2, persistent_workers=True)
        loader.load_state_dict(state)
        got = []
        for e in range(EPOCH, EPOCH + 3):
            sampler.set_epoch(e)
            got.append(run(loader))  # the same workers serve all three epochs
        assert got == [full[k:], full_next, full_after], k


SNAPSHOT = 3


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("name", "num_workers", "persistent", "ks"),
    [
        # 9 batches: snapshots at steps 0, 3, 6 and 9 (the last batch)
        ("random-torch", 2, False, [1, 3, 4, 8, 9]),
        # 5 batches: the last snapshot is at step 3
        ("dist-r1", 2, False, [2, 3, 5]),
        ("dist-drop-r0", 2, True, [4, 5]),
        # in-process the state is always the current one: snapshot_every_n_steps is unused
        ("random-lazy", 0, False, list(range(10))),
    ],
)
def test_snapshot_every_n_steps(
    name: str, num_workers: int, persistent: bool, ks: list[int]
) -> None:
    full, full_next, _ = reference(name)
    num_batches = len(full)
    kw = {"snapshot_every_n_steps": SNAPSHOT, "persistent_workers": persistent}
    for k in ks:
        if num_workers and not persistent:
            state = recorded(name, num_workers, SNAPSHOT)[k]
        else:
            got, state = save_after(name, k, num_workers, **kw)
            assert got == full[:k], k
        if num_workers:
            # The state holds the last snapshot, taken after a multiple of SNAPSHOT steps, and
            # the number of steps yielded since; our sampler's state is the snapshot's.
            snap = k - k % SNAPSHOT
            assert state["_snapshot"]["_snapshot_step"] == snap, k
            assert state["_steps_since_snapshot"] == k - snap, k
        else:
            snap = k
        assert_sampler_state(name, sampler_state(state, num_workers), snap, num_batches)
        first, second = resume(name, state, num_workers, **kw)
        # Resumed at the snapshot, the steps since it replayed and dropped: batch k is next.
        # After the last batch nothing of the epoch is left, whether the snapshot lies inside
        # the epoch (the replay consumes its last batches) or at its end.
        assert first == full[k:], k
        assert second == full_next, k

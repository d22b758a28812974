"""A run started on torchdata's ``StatefulDistributedSampler`` continues on ours.

torchdata 0.11's ``StatefulDistributedSampler.state_dict()`` is ``{"yielded": k}`` (this rank's
indices handed out by the epoch's iterator), and a ``StatefulDataLoader`` keeps it under
``_sampler_iter_state["sampler_state"]``. The run is interrupted after some batches of an epoch on
torchdata's sampler; the resumed run builds a fresh ``StatefulDataLoader`` around our sampler with
the same order, loads the saved loader state, and must train on exactly what torchdata's own
loader trains on from there (the rest of the epoch, then the next one).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest
import torch.utils.data as tud

pytest.importorskip("torchdata")
from torchdata.stateful_dataloader import StatefulDataLoader
from torchdata.stateful_dataloader.sampler import StatefulDistributedSampler

from resumable_samplers import (
    ResumableDistributedSampler,
    ResumableRandomSampler,
    ResumableSequentialSampler,
)

sys.path.insert(0, os.path.dirname(__file__))
from _workers import IndexDataset

N = 27
B = 3
SEED = 5
EPOCH = 2
LOADER_TIMEOUT = 60


def loader(sampler: Any, workers: int) -> StatefulDataLoader:
    timeout = LOADER_TIMEOUT if workers else 0
    return StatefulDataLoader(
        IndexDataset(N), batch_size=B, sampler=sampler, num_workers=workers, timeout=timeout
    )


def batches(it: Any, count: int | None = None) -> list[list[int]]:
    out = []
    for batch in it:
        out.append(batch.tolist())
        if count is not None and len(out) == count:
            break
    return out


def continued(dl: Any, sampler: Any) -> list[list[int]]:
    """The rest of epoch ``EPOCH`` from the loader's state, then epoch ``EPOCH + 1``."""
    sampler.set_epoch(EPOCH)
    rest = batches(dl)
    sampler.set_epoch(EPOCH + 1)
    return rest + batches(dl)


# (num_replicas, rank, shuffle, drop_last) of torchdata's sampler, loader workers, batches
# trained before the switch
CASES = [
    ((2, 0, True, False), 0, 1),
    ((2, 1, True, True), 0, 3),
    ((3, 2, False, False), 0, 2),
    ((1, 0, True, False), 0, 5),
    ((2, 1, True, False), 2, 3),
    ((1, 0, True, False), 2, 1),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("settings", "workers", "stop"), CASES)
def test_a_torchdata_loader_state_continues_on_our_sampler(
    settings: tuple[int, int, bool, bool], workers: int, stop: int
) -> None:
    replicas, rank, shuffle, drop_last = settings
    data = IndexDataset(N)

    def theirs() -> StatefulDistributedSampler:
        return StatefulDistributedSampler(data, replicas, rank, shuffle, SEED, drop_last)

    sampler = theirs()
    dl = loader(sampler, workers)
    sampler.set_epoch(EPOCH)
    assert len(batches(dl, stop)) == stop
    state = dl.state_dict()
    main = state["_snapshot"]["_main_snapshot"] if workers else state
    assert main["_sampler_iter_state"]["sampler_state"] == {"yielded": stop * B}
    # torchdata's own resume: the reference
    ref_sampler = theirs()
    ref = loader(ref_sampler, workers)
    ref.load_state_dict(state)
    want = continued(ref, ref_sampler)
    assert len(want) > B  # the rest of the epoch and the next one
    ours = ResumableDistributedSampler(data, replicas, rank, shuffle, SEED, drop_last, batch_size=B)
    dl = loader(ours, workers)
    dl.load_state_dict(state)
    assert continued(dl, ours) == want


@pytest.mark.parametrize("shuffle", [True, False])
def test_a_torchdata_sampler_state_loads_into_a_one_process_sampler(shuffle: bool) -> None:
    data = IndexDataset(N)
    theirs = StatefulDistributedSampler(data, num_replicas=1, rank=0, shuffle=shuffle, seed=SEED)
    theirs.set_epoch(EPOCH)
    it = iter(theirs)
    head = [next(it) for _ in range(10)]
    state = theirs.state_dict()
    assert state == {"yielded": 10}
    rest = list(it)
    ours: Any = (
        ResumableRandomSampler(data, seed=SEED) if shuffle else ResumableSequentialSampler(data)
    )
    ours.set_epoch(EPOCH)
    ours.load_state_dict(state)
    assert head + list(ours) == head + rest
    assert list(ours) == head + rest  # the next epoch iterated is whole again
    # the state says where the run is, in our format, from then on
    ours.load_state_dict(state)
    assert ours.state_dict()["offset"] == 10


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3", None])
def test_a_malformed_torchdata_state_names_the_field(bad: object) -> None:
    sampler = ResumableDistributedSampler(IndexDataset(N), num_replicas=2, rank=0)
    with pytest.raises(ValueError, match="'yielded'"):
        sampler.load_state_dict({"yielded": bad})


def test_a_torchdata_state_past_the_epoch_leaves_nothing_of_it() -> None:
    data = IndexDataset(N)
    theirs = StatefulDistributedSampler(data, num_replicas=2, rank=1, seed=SEED)
    list(theirs)
    ours = ResumableDistributedSampler(data, num_replicas=2, rank=1, seed=SEED)
    ours.load_state_dict(theirs.state_dict())
    theirs.load_state_dict(theirs.state_dict())
    assert list(ours) == list(theirs) == []
    assert list(ours) == list(tud.DistributedSampler(data, num_replicas=2, rank=1, seed=SEED))

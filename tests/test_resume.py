"""Resume state: state_dict/load_state_dict, twice in an epoch, end of epoch, elastic world size."""

from __future__ import annotations

import io
import itertools
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.utils.data as tud

import resumable_samplers as rs
from conftest import Sized, torch_perm

N = 103

Make = Callable[[], Any]
SAMPLERS: dict[str, Make] = {
    "random": lambda: rs.ResumableRandomSampler(Sized(N), seed=7, batch_size=4),
    "random-lazy": lambda: rs.ResumableRandomSampler(
        Sized(N), seed=7, batch_size=4, permutation="lazy"
    ),
    "sequential": lambda: rs.ResumableSequentialSampler(Sized(N), batch_size=4),
    "distributed": lambda: rs.ResumableDistributedSampler(Sized(N), 4, 1, seed=7, batch_size=4),
    "distributed-drop": lambda: rs.ResumableDistributedSampler(
        Sized(N), 4, 3, seed=7, drop_last=True, batch_size=4
    ),
    "distributed-lazy": lambda: rs.ResumableDistributedSampler(
        Sized(N), 3, 2, seed=7, permutation="lazy", batch_size=4
    ),
    "distributed-noshuffle": lambda: rs.ResumableDistributedSampler(
        Sized(N), 4, 0, shuffle=False, batch_size=4
    ),
}


def take(it: Any, k: int) -> list[int]:
    return list(itertools.islice(it, k))


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("k", [0, 1, 10, 25])
def test_resume_mid_epoch_continues_with_the_uninterrupted_suffix(name: str, k: int) -> None:
    make = SAMPLERS[name]
    ref = make()
    ref.set_epoch(2)
    full = list(ref)
    nxt = make()
    nxt.set_epoch(3)
    next_epoch = list(nxt)

    s = make()
    s.set_epoch(2)
    it = iter(s)
    assert take(it, k) == full[:k]
    state = s.state_dict()
    fresh = make()  # a new process: default epoch 0, the state restores the epoch
    fresh.load_state_dict(state)
    assert state["epoch"] == 2  # the epoch in progress, also after its last index
    assert list(fresh) == full[k:]
    fresh.set_epoch(3)
    assert list(fresh) == next_epoch  # the epoch after the resumed one is whole


@pytest.mark.parametrize("name", SAMPLERS)
def test_resume_twice_in_one_epoch(name: str) -> None:
    make = SAMPLERS[name]
    full = list(make())
    a = make()
    first = take(iter(a), 7)
    b = make()
    b.load_state_dict(a.state_dict())
    second = take(iter(b), 11)
    c = make()
    c.load_state_dict(b.state_dict())
    assert first + second + list(c) == full


@pytest.mark.parametrize("name", SAMPLERS)
def test_state_after_the_last_batch_is_the_end_of_that_epoch(name: str) -> None:
    make = SAMPLERS[name]
    s = make()
    s.set_epoch(4)
    it = iter(s)
    take(it, len(s))  # every index consumed, the iterator not yet asked for more
    state = s.state_dict()
    replicas = state["num_replicas"]
    assert (state["epoch"], state["offset"]) == (4, len(s) * replicas)  # never epoch 5
    assert list(it) == []
    assert s.state_dict() == state
    ref = make()
    ref.set_epoch(5)
    fresh = make()
    fresh.load_state_dict(state)
    assert fresh.epoch == 4  # the state restores the epoch
    assert list(fresh) == []  # nothing left of epoch 4
    fresh.set_epoch(5)
    assert list(fresh) == list(ref)


@pytest.mark.parametrize("order", ["set_epoch then load", "load then set_epoch"])
def test_a_trainer_resuming_a_finished_epoch_repeats_nothing(order: str) -> None:
    # The state was saved after the last batch of epoch 4, inside the trainer's epoch-4 loop.
    saver = rs.ResumableRandomSampler(Sized(N), seed=2)
    saver.set_epoch(4)
    it = iter(saver)
    take(it, N)
    state = saver.state_dict()

    s = rs.ResumableRandomSampler(Sized(N), seed=2)
    if order == "set_epoch then load":  # as torchdata's StatefulDataLoader restores
        s.set_epoch(4)
        s.load_state_dict(state)
    else:
        s.load_state_dict(state)
        s.set_epoch(4)
    assert list(s) == []  # the rest of epoch 4: nothing
    s.set_epoch(5)
    assert list(s) == torch_perm(N, 7)  # epoch 5 whole, exactly once
    s.set_epoch(6)
    assert list(s) == torch_perm(N, 8)


def test_a_pending_start_is_consumed_by_one_iterator() -> None:
    # As torchdata's samplers: the restored position applies to the next iterator only.
    saver = rs.ResumableRandomSampler(Sized(N), seed=2)
    take(iter(saver), N)
    s = rs.ResumableRandomSampler(Sized(N), seed=2)
    s.set_epoch(0)
    s.load_state_dict(saver.state_dict())
    assert list(s) == []
    assert list(s) == torch_perm(N, 2)  # the same epoch again, whole: a new iteration
    s.set_epoch(1)
    assert list(s) == torch_perm(N, 3)


def test_state_after_finishing_a_resumed_epoch_is_its_end() -> None:
    saver = rs.ResumableRandomSampler(Sized(N), seed=2)
    take(iter(saver), 40)
    s = rs.ResumableRandomSampler(Sized(N), seed=2)
    s.load_state_dict(saver.state_dict())
    assert list(s) == torch_perm(N, 2)[40:]
    assert (s.state_dict()["epoch"], s.state_dict()["offset"]) == (0, N)


def test_state_before_any_iteration_and_with_start_iter() -> None:
    s = rs.ResumableDistributedSampler(Sized(50), 2, 1, seed=3, batch_size=5)
    assert s.state_dict()["offset"] == 0
    s.start_iter = 2  # 10 indices of this rank = 20 global positions
    assert s.state_dict()["offset"] == 20
    full = list(rs.ResumableDistributedSampler(Sized(50), 2, 1, seed=3))
    fresh = rs.ResumableDistributedSampler(Sized(50), 2, 1, seed=3, batch_size=5)
    fresh.load_state_dict(s.state_dict())
    assert list(fresh) == full[10:]


def test_start_iter_and_state_never_double_skip() -> None:
    full = list(rs.ResumableRandomSampler(Sized(N), seed=1))
    saver = rs.ResumableRandomSampler(Sized(N), seed=1, batch_size=4)
    take(iter(saver), 12)
    state = saver.state_dict()

    # A trainer that counts batches sets start_iter, then a loader restores the state.
    s = rs.ResumableRandomSampler(Sized(N), seed=1, batch_size=4)
    s.start_iter = 3
    s.load_state_dict(state)
    assert list(s) == full[12:]
    # The other order: the last one set wins; both are absolute, never added.
    s = rs.ResumableRandomSampler(Sized(N), seed=1, batch_size=4)
    s.load_state_dict(state)
    s.start_iter = 3
    assert list(s) == full[12:]


def test_a_restored_position_applies_only_to_its_epoch() -> None:
    saver = rs.ResumableRandomSampler(Sized(N), seed=1)
    saver.set_epoch(6)
    take(iter(saver), 30)
    state = saver.state_dict()
    s = rs.ResumableRandomSampler(Sized(N), seed=1)
    s.load_state_dict(state)
    s.set_epoch(6)  # the same epoch: the position stays
    assert list(s) == torch_perm(N, 7)[30:]
    s.load_state_dict(state)
    s.set_epoch(7)  # another epoch: a whole epoch
    assert list(s) == torch_perm(N, 8)


def test_state_dict_is_cheap_even_when_the_epoch_could_not_be_built() -> None:
    # A torch-order epoch of 2**40 items cannot be allocated; state_dict must not try.
    s = rs.ResumableDistributedSampler(Sized(2**40), 8, 3, seed=1, batch_size=16)
    s.start_iter = 5
    state = s.state_dict()
    assert state["offset"] == 5 * 16 * 8 and state["dataset_length"] == 2**40


@pytest.mark.parametrize("permutation", ["torch", "lazy"])
@pytest.mark.parametrize(("n", "consumed"), [(103, 9), (100, 25), (7, 1), (64, 0), (50, 12)])
@pytest.mark.parametrize("new_world", [2, 3, 5])
def test_elastic_resume_continues_the_global_sequence(
    permutation: str, n: int, consumed: int, new_world: int
) -> None:
    old_world, seed, epoch = 4, 11, 2

    def sampler(world: int, rank: int, batch: int) -> rs.ResumableDistributedSampler:
        s = rs.ResumableDistributedSampler(
            Sized(n), world, rank, seed=seed, permutation=permutation, batch_size=batch
        )
        s.set_epoch(epoch)
        return s

    # The uninterrupted 4-process run's global sequence: rank r's j-th index at r + 4j.
    shards = [list(sampler(old_world, r, 1)) for r in range(old_world)]
    total4 = len(shards[0]) * old_world
    uninterrupted = [shards[p % old_world][p // old_world] for p in range(total4)]
    perm = uninterrupted[:n]
    if permutation == "torch":
        assert perm == torch_perm(n, seed + epoch)

    # Job 1: every rank consumes `consumed` indices, then all save (their states agree).
    states = []
    consumed_global: list[int] = []
    iters = []
    for r in range(old_world):
        s = sampler(old_world, r, 2)
        it = iter(s)
        iters.append(take(it, consumed))
        states.append(s.state_dict())
    for j in range(consumed):
        consumed_global += [iters[r][j] for r in range(old_world) if j < len(iters[r])]
    assert all(st == states[0] for st in states[1:])  # every rank saved the same position

    # Job 2: another world size and per-rank batch size loads the state.
    rest = []
    for r in range(new_world):
        s = sampler(new_world, r, 3)
        s.load_state_dict(states[0])
        rest.append(list(s))
    assert len({len(x) for x in rest}) == 1
    resumed_global = [rest[p % new_world][p // new_world] for p in range(len(rest[0]) * new_world)]
    c = states[0]["offset"]
    assert states[0]["epoch"] == epoch  # also when job 1 finished the epoch
    if c >= n:
        # Job 1 finished the epoch. Job 2 resumes in that epoch: nothing is left of it, and
        # the next epoch is whole.
        assert c == total4
        assert consumed_global == uninterrupted
        assert rest == [[] for _ in range(new_world)]
        nxt = [sampler(new_world, r, 1) for r in range(new_world)]
        for s in nxt:
            s.set_epoch(epoch + 1)
        resumed = [sampler(new_world, r, 3) for r in range(new_world)]
        for s in resumed:
            s.load_state_dict(states[0])
            assert list(s) == []
            s.set_epoch(epoch + 1)
        assert [list(s) for s in resumed] == [list(s) for s in nxt]
        return
    combined = consumed_global + resumed_global
    # No sample lost or repeated beyond the padding rule: each index once, then the wrap-around.
    assert combined[:n] == perm
    assert combined[n:] == [perm[p % n] for p in range(n, len(combined))]
    assert c == consumed * old_world
    assert len(combined) == c + -(-(n - c) // new_world) * new_world


def test_state_round_trips_through_json_torch_and_pickle() -> None:
    s = rs.ResumableDistributedSampler(Sized(N), 4, 1, seed=2**64 - 1, batch_size=4)
    s.set_epoch(0)
    take(iter(s), 5)
    state = s.state_dict()
    assert all(type(v) in (int, str, bool) for v in state.values())
    assert json.loads(json.dumps(state)) == state
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=True) == state
    assert pickle.loads(pickle.dumps(state)) == state
    expected = list(rs.ResumableDistributedSampler(Sized(N), 4, 1, seed=2**64 - 1))[5:]
    for loaded in (json.loads(json.dumps(state)), pickle.loads(pickle.dumps(state))):
        fresh = rs.ResumableDistributedSampler(Sized(N), 4, 1, seed=2**64 - 1)
        fresh.load_state_dict(loaded)
        assert list(fresh) == expected


def test_a_pickled_sampler_keeps_its_restored_position() -> None:
    s = rs.ResumableRandomSampler(Sized(N), seed=4)
    saver = rs.ResumableRandomSampler(Sized(N), seed=4)
    take(iter(saver), 20)
    s.load_state_dict(saver.state_dict())
    clone = pickle.loads(pickle.dumps(s))
    assert list(clone) == torch_perm(N, 4)[20:]


def _valid_state() -> dict[str, Any]:
    s = rs.ResumableDistributedSampler(Sized(N), 4, 1, seed=7)
    take(iter(s), 3)
    return s.state_dict()


def _target() -> rs.ResumableDistributedSampler:
    return rs.ResumableDistributedSampler(Sized(N), 4, 1, seed=7)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"dataset_length": N + 1}, "dataset_length"),
        ({"seed": 8}, "seed"),
        ({"permutation": "lazy"}, "permutation"),
        ({"shuffle": False}, "shuffle"),
        ({"drop_last": True}, "drop_last"),
        ({"offset": -1}, "offset"),
        ({"offset": N + 4}, "offset"),  # the end of an epoch of 4 ranks is below N + 4
        ({"offset": "12"}, "offset"),
        ({"offset": 1.0}, "offset"),
        ({"epoch": None}, "epoch"),
        ({"epoch": 2**64}, "epoch"),
        ({"epoch": True}, "epoch"),
        ({"num_replicas": 0}, "num_replicas"),
        ({"shuffle": 1}, "shuffle"),
        ({"version": 2}, "version"),
        ({"version": 0}, "version"),
        ({"format": "helios"}, "format"),
        ({"extra": 1}, "extra"),
    ],
)
def test_mismatched_or_corrupted_state_raises_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    state = {**_valid_state(), **change}
    s = _target()
    with pytest.raises(ValueError, match=field):
        s.load_state_dict(state)
    assert list(s) == list(_target())  # nothing changed: no silent restart, no silent resume


@pytest.mark.parametrize("field", ["offset", "epoch", "seed", "format", "version"])
def test_missing_fields_raise(field: str) -> None:
    state = _valid_state()
    del state[field]
    with pytest.raises(ValueError, match=f"missing.*{field}"):
        _target().load_state_dict(state)


@pytest.mark.parametrize("bad", [None, [], "state", 3])
def test_a_non_dict_state_raises(bad: Any) -> None:
    with pytest.raises(ValueError, match="state should be a dict"):
        _target().load_state_dict(bad)


def test_states_of_other_sampler_kinds_are_refused() -> None:
    seq = rs.ResumableSequentialSampler(Sized(N))
    with pytest.raises(ValueError, match=r"shuffle|permutation|seed"):
        seq.load_state_dict(rs.ResumableRandomSampler(Sized(N), seed=0).state_dict())


def test_torch_distributed_sampler_attributes_follow_a_loaded_epoch() -> None:
    saver = rs.ResumableDistributedSampler(Sized(N), 4, 2, seed=7)
    saver.set_epoch(9)
    take(iter(saver), 4)
    s = rs.ResumableDistributedSampler(Sized(N), 4, 2, seed=7)
    s.load_state_dict(saver.state_dict())
    assert s.epoch == 9
    ref = tud.DistributedSampler(Sized(N), 4, 2, seed=7)
    ref.set_epoch(9)
    assert list(s) == list(ref)[4:]

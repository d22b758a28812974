"""Length grouping: parity with transformers and torch, invariants, resume and validation.

References: transformers' ``get_length_grouped_indices`` (the installed version) for the order;
torch's ``DistributedSampler`` logic (written out in :func:`torch_share`) applied to that order
for every rank; and, for token-budget batches, :func:`budget_reference`, the documented rule
written with torch and Python lists.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.utils.data as tud
from hypothesis import given, settings
from hypothesis import strategies as st

import resumable_samplers as rs

sys.path.insert(0, os.path.dirname(__file__))
from _workers import IndexDataset

transformers_pt_utils = pytest.importorskip("transformers.trainer_pt_utils")
get_length_grouped_indices = transformers_pt_utils.get_length_grouped_indices

# -- references --------------------------------------------------------------------------------


def hf_order(lengths: Any, batch_size: int, mult: int | None, seed: int, epoch: int) -> list[int]:
    """transformers' order for an epoch, with the generator our sampler documents."""
    g = torch.Generator().manual_seed(seed + epoch)
    out: list[int] = get_length_grouped_indices(
        [int(x) for x in lengths], batch_size, mult, generator=g
    )
    return out


def torch_share(order: list[Any], w: int, r: int, drop_last: bool) -> list[Any]:
    """torch's ``DistributedSampler.__iter__`` applied to ``order`` instead of a permutation."""
    n = len(order)
    ragged = drop_last and n % w != 0
    num_samples = math.ceil((n - w) / w) if ragged else math.ceil(n / w)
    total = num_samples * w
    indices = list(order)
    if not drop_last:
        pad = total - n
        if pad <= n:
            indices += indices[:pad]
        else:
            indices += (indices * math.ceil(pad / n))[:pad]
    else:
        indices = indices[:total]
    return indices[r:total:w]


def budget_reference(
    lengths: list[int], max_tokens: int, megabatch: int, max_batch_size: int | None, seed: int
) -> list[list[int]]:
    """Token-budget batches of one epoch, as documented, with torch and Python lists."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(lengths), generator=g).tolist()
    batches = []
    for s in range(0, len(lengths), megabatch):
        mb = sorted(perm[s : s + megabatch], key=lambda i: lengths[i], reverse=True)
        k = 0
        while k < len(mb):
            first = lengths[mb[k]]
            cap = max_tokens // first if first else len(mb)
            if max_batch_size is not None:
                cap = min(cap, max_batch_size)
            cap = max(cap, 1)
            batches.append(mb[k : k + cap])
            k += cap
    order = torch.randperm(len(batches), generator=g).tolist()
    return [batches[i] for i in order]


lengths_lists = st.lists(st.integers(0, 60), min_size=1, max_size=300)

# -- ResumableLengthGroupedSampler: parity -----------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    lengths=lengths_lists,
    batch_size=st.integers(1, 17),
    mult=st.none() | st.integers(1, 12),
    seed=st.integers(-(2**40), 2**40),
    epoch=st.integers(0, 6),
    dtype=st.sampled_from(["list", "uint16", "uint32", "int64"]),
)
def test_order_equals_transformers(
    lengths: list[int],
    batch_size: int,
    mult: int | None,
    seed: int,
    epoch: int,
    dtype: str,
) -> None:
    arg: Any = lengths if dtype == "list" else np.asarray(lengths, dtype=dtype)
    s = rs.ResumableLengthGroupedSampler(
        arg, batch_size, seed=seed, megabatch_mult=mult, num_replicas=1, rank=0
    )
    s.set_epoch(epoch)
    want = hf_order(lengths, batch_size, mult, seed, epoch)
    assert s.indices().tolist() == want
    assert list(s) == want
    assert len(s) == len(lengths)


@settings(max_examples=200, deadline=None)
@given(
    lengths=lengths_lists,
    batch_size=st.integers(1, 9),
    seed=st.integers(0, 2**32),
    epoch=st.integers(0, 3),
    w=st.integers(1, 9),
    drop_last=st.booleans(),
)
def test_every_rank_is_torchs_sharding_of_the_order(
    lengths: list[int], batch_size: int, seed: int, epoch: int, w: int, drop_last: bool
) -> None:
    order = hf_order(lengths, batch_size, None, seed, epoch)
    seen = []
    for r in range(w):
        s = rs.ResumableLengthGroupedSampler(
            lengths, batch_size, seed=seed, num_replicas=w, rank=r, drop_last=drop_last
        )
        s.set_epoch(epoch)
        got = list(s)
        assert got == torch_share(order, w, r, drop_last)
        assert len(s) == len(got)
        seen.append(got)
    # every index once per epoch across ranks, plus the padding
    flat = sorted(i for share in seen for i in share)
    if drop_last:
        assert len(set(flat)) == len(flat) == len(lengths) // w * w
    else:
        assert set(flat) == set(range(len(lengths)))
        assert len(flat) == math.ceil(len(lengths) / w) * w


def test_ranks_equal_transformers_distributed_sampler() -> None:
    lengths = np.random.default_rng(1).integers(1, 500, 1001).tolist()
    for w, drop_last in [(2, False), (3, False), (4, True), (8, False)]:
        for r in range(w):
            ref = transformers_pt_utils.DistributedLengthGroupedSampler(
                16, lengths=lengths, num_replicas=w, rank=r, seed=11, drop_last=drop_last
            )
            ref.set_epoch(4)
            s = rs.ResumableLengthGroupedSampler(
                lengths, 16, seed=11, num_replicas=w, rank=r, drop_last=drop_last
            )
            s.set_epoch(4)
            assert list(s) == list(ref)


def test_the_longest_sample_comes_first_and_large_epochs_match() -> None:
    # A swap-regime epoch of 200k items with heavy ties, against transformers itself.
    lengths = np.random.default_rng(2).integers(0, 30, 200_000, dtype=np.uint16)
    s = rs.ResumableLengthGroupedSampler(lengths, 32, seed=5, num_replicas=1, rank=0)
    s.set_epoch(1)
    got = s.indices()
    assert lengths[got[0]] == lengths.max()
    assert got.tolist() == hf_order(lengths.tolist(), 32, None, 5, 1)


# -- ResumableLengthGroupedSampler: resume -----------------------------------------------------


def _lg(n: int = 103, **kw: Any) -> rs.ResumableLengthGroupedSampler:
    lengths = [(i * 37) % 23 for i in range(n)]
    kw = {"seed": 3, "num_replicas": 1, "rank": 0, **kw}
    return rs.ResumableLengthGroupedSampler(lengths, 4, **kw)


@pytest.mark.parametrize("k", [0, 1, 17, 52, 53])
@pytest.mark.parametrize("w_r", [(1, 0), (2, 1), (3, 0)])
def test_state_dict_resumes_exactly_and_is_json(k: int, w_r: tuple[int, int]) -> None:
    w, r = w_r
    a = _lg(num_replicas=w, rank=r)
    a.set_epoch(2)
    ref = _lg(num_replicas=w, rank=r)
    ref.set_epoch(2)
    whole = list(ref)
    it = iter(a)
    head = list(itertools.islice(it, k))
    state = json.loads(json.dumps(a.state_dict()))
    b = _lg(num_replicas=w, rank=r)
    b.load_state_dict(state)
    assert b.epoch == 2
    assert head + list(b) == whole
    # the next epoch is whole
    b.set_epoch(3)
    a.set_epoch(3)
    assert list(b) == list(a)


def test_start_iter_and_seek_count_batches() -> None:
    a = _lg(num_replicas=2, rank=1)
    a.set_epoch(1)
    whole = list(a)
    a.start_iter = 3
    a.set_epoch(1)
    assert list(a) == whole[12:]
    assert list(a) == whole  # consumed
    a.seek(1, 2)
    assert list(a) == whole[8:]


@pytest.mark.parametrize("w2", [1, 2, 3, 5])
def test_elastic_resume_continues_the_global_order(w2: int) -> None:
    n, w, k, epoch = 103, 4, 9, 2
    order = hf_order([(i * 37) % 23 for i in range(n)], 4, None, 3, epoch)
    ranks = [_lg(num_replicas=w, rank=r) for r in range(w)]
    for s in ranks:
        s.set_epoch(epoch)
        list(itertools.islice(iter(s), k))
    state = ranks[0].state_dict()
    c = state["offset"]
    assert c == k * w
    rest = []
    for r in range(w2):
        s = _lg(num_replicas=w2, rank=r)
        s.load_state_dict(state)
        rest.append(list(s))
    total = c + math.ceil((n - c) / w2) * w2
    positions = {c + r + j * w2: i for r, got in enumerate(rest) for j, i in enumerate(got)}
    assert sorted(positions) == list(range(c, total))
    assert all(order[p % n] == i for p, i in positions.items())


def test_copies_keep_the_position() -> None:
    a = _lg()
    it = iter(a)
    list(itertools.islice(it, 10))
    b = pickle.loads(pickle.dumps(a))
    assert list(b) == list(it)


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("stop", [1, 5, 13])
def test_stateful_dataloader_resume_equals_the_uninterrupted_run(
    num_workers: int, stop: int
) -> None:
    from torchdata.stateful_dataloader import StatefulDataLoader

    n, b = 50, 4

    def loader() -> tuple[Any, Any]:
        lengths = [(i * 7) % 13 for i in range(n)]
        s = rs.ResumableLengthGroupedSampler(lengths, b, seed=1, num_replicas=2, rank=1)
        ds = IndexDataset(n)
        return s, StatefulDataLoader(ds, batch_size=b, sampler=s, num_workers=num_workers)

    def run(s: Any, dl: Any, epochs: range, stop_at: int | None = None) -> tuple[list[int], Any]:
        seen: list[int] = []
        for e in epochs:
            s.set_epoch(e)
            for step, batch in enumerate(dl):
                seen += batch.tolist()
                if stop_at is not None and e == epochs[0] and step + 1 == stop_at:
                    return seen, dl.state_dict()
        return seen, None

    whole, _ = run(*loader(), range(2, 4))
    head, state = run(*loader(), range(2, 4), stop_at=min(stop, 7))
    assert state is not None
    s, dl = loader()
    dl.load_state_dict(state)
    tail, _ = run(s, dl, range(2, 4))
    assert head + tail == whole


# -- ResumableTokenBudgetBatchSampler ----------------------------------------------------------


@settings(max_examples=250, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 60), min_size=1, max_size=300),
    max_tokens=st.integers(60, 400),
    mult=st.none() | st.integers(1, 10),
    max_batch_size=st.none() | st.integers(1, 12),
    seed=st.integers(0, 2**33),
    epoch=st.integers(0, 4),
)
def test_batches_equal_the_documented_rule(
    lengths: list[int],
    max_tokens: int,
    mult: int | None,
    max_batch_size: int | None,
    seed: int,
    epoch: int,
) -> None:
    s = rs.ResumableTokenBudgetBatchSampler(
        lengths,
        max_tokens,
        seed=seed,
        megabatch_mult=mult,
        max_batch_size=max_batch_size,
        num_replicas=1,
        rank=0,
    )
    s.set_epoch(epoch)
    got = list(s)
    want = budget_reference(lengths, max_tokens, s.megabatch_size, max_batch_size, seed + epoch)
    assert got == want
    assert len(s) == len(got) == s.num_batches()
    assert [s.batch(k) for k in s.indices().tolist()] == []  # the epoch is done
    s.seek(epoch, 0)
    assert [s.batch(k) for k in s.indices().tolist()] == want
    for batch in got:
        assert len(batch) * max(lengths[i] for i in batch) <= max_tokens
        assert max_batch_size is None or len(batch) <= max_batch_size
    assert sorted(i for batch in got for i in batch) == list(range(len(lengths)))


@settings(max_examples=150, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 40), min_size=1, max_size=200),
    max_tokens=st.integers(40, 200),
    w=st.integers(1, 7),
    drop_last=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_ranks_get_whole_batches_and_equal_counts(
    lengths: list[int], max_tokens: int, w: int, drop_last: bool, seed: int
) -> None:
    whole = list(rs.ResumableTokenBudgetBatchSampler(lengths, max_tokens, seed=seed, rank=0))
    shares = []
    for r in range(w):
        s = rs.ResumableTokenBudgetBatchSampler(
            lengths, max_tokens, seed=seed, num_replicas=w, rank=r, drop_last=drop_last
        )
        shares.append(list(s))
        assert shares[-1] == torch_share(whole, w, r, drop_last)
        assert len(s) == len(shares[-1])
    assert len({len(x) for x in shares}) == 1
    samples = [i for share in shares for batch in share for i in batch]
    if not drop_last:
        assert set(samples) == set(range(len(lengths)))
    else:
        assert len(samples) == len(set(samples))


def test_oversized_samples_raise_or_get_a_batch_of_their_own() -> None:
    lengths = [10, 500, 20, 30, 700]
    with pytest.raises(ValueError, match=r"lengths\[1\] = 500 is more than max_tokens=100"):
        rs.ResumableTokenBudgetBatchSampler(lengths, 100)
    s = rs.ResumableTokenBudgetBatchSampler(lengths, 100, oversized="alone", megabatch_mult=5)
    batches = list(s)
    assert [1] in batches and [4] in batches
    assert sorted(i for b in batches for i in b) == list(range(5))
    with pytest.raises(ValueError, match="oversized"):
        rs.ResumableTokenBudgetBatchSampler(lengths, 100, oversized="drop")


def _tb(**kw: Any) -> rs.ResumableTokenBudgetBatchSampler:
    lengths = [1 + (i * 37) % 50 for i in range(400)]
    kw = {"seed": 3, "num_replicas": 1, "rank": 0, **kw}
    return rs.ResumableTokenBudgetBatchSampler(lengths, 120, **kw)


def _tb_with(max_tokens: int) -> rs.ResumableTokenBudgetBatchSampler:
    return rs.ResumableTokenBudgetBatchSampler(
        [1 + (i * 37) % 50 for i in range(400)], max_tokens, seed=3
    )


@pytest.mark.parametrize("k", [0, 1, 20])
def test_budget_state_dict_resumes_at_the_next_batch(k: int) -> None:
    a = _tb(num_replicas=2, rank=1)
    a.set_epoch(5)
    ref = _tb(num_replicas=2, rank=1)
    ref.set_epoch(5)
    whole = list(ref)
    it = iter(a)
    head = list(itertools.islice(it, k))
    state = json.loads(json.dumps(a.state_dict()))
    assert state["offset"] == 2 * k and state["dataset_length"] == a.num_batches()
    b = _tb(num_replicas=2, rank=1)
    b.load_state_dict(state)
    assert b.epoch == 5
    assert head + list(b) == whole
    b.set_epoch(6)
    a.set_epoch(6)
    assert list(b) == list(a)
    b.start_iter = 2
    assert list(b) == list(a)[2:]


@pytest.mark.parametrize("w2", [1, 3])
def test_budget_elastic_resume_over_global_batch_positions(w2: int) -> None:
    whole = list(_tb())
    ranks = [_tb(num_replicas=2, rank=r) for r in range(2)]
    for s in ranks:
        list(itertools.islice(iter(s), 7))
    state = ranks[0].state_dict()
    c = state["offset"]
    firsts = [list(_tb(num_replicas=2, rank=r))[:7] for r in range(2)]
    assert whole[:c] == [b for pair in zip(*firsts, strict=True) for b in pair]
    positions = {}
    for r in range(w2):
        s = _tb(num_replicas=w2, rank=r)
        s.load_state_dict(state)
        for j, batch in enumerate(s):
            positions[c + r + j * w2] = batch
    assert sorted(positions)[0] == c
    assert all(whole[p % len(whole)] == b for p, b in positions.items())
    assert {p for p in positions if p < len(whole)} == set(range(c, len(whole)))


def _copies(s: Any) -> list[Any]:
    """``s`` copied by ``pickle``, ``copy.deepcopy`` and ``torch.save``/``torch.load``."""
    import copy
    import io

    buf = io.BytesIO()
    torch.save(s, buf)
    buf.seek(0)
    return [
        pickle.loads(pickle.dumps(s)),
        copy.deepcopy(s),
        torch.load(buf, weights_only=False),
    ]


@pytest.mark.parametrize("w_r", [(1, 0), (2, 1)])
@pytest.mark.parametrize(
    "when", ["new", "after len", "after state_dict", "after load", "mid-epoch", "epoch end"]
)
def test_budget_copies_continue_where_the_sampler_is(w_r: tuple[int, int], when: str) -> None:
    """A copy taken at any point (the epoch's batches built or not) yields what the original
    yields from there, which is the rest of the uninterrupted run."""
    w, r = w_r
    ref = _tb(num_replicas=w, rank=r)
    ref.set_epoch(2)
    whole = list(ref)
    s = _tb(num_replicas=w, rank=r)
    s.set_epoch(2)
    done: list[list[int]] = []
    it = None
    if when == "after len":
        assert len(s) == len(whole)
    elif when == "after state_dict":
        s.state_dict()
    elif when == "after load":
        donor = _tb(num_replicas=w, rank=r)
        donor.set_epoch(2)
        done = list(itertools.islice(iter(donor), 5))
        s.load_state_dict(donor.state_dict())
    elif when in ("mid-epoch", "epoch end"):
        it = iter(s)
        done = list(itertools.islice(it, 9 if when == "mid-epoch" else len(whole)))
    for c in _copies(s):
        assert c.epoch == 2 and c.state_dict() == s.state_dict()
        assert done + list(c) == whole
    rest = list(it) if it is not None else list(s)
    assert done + rest == whole


@pytest.mark.parametrize("num_workers", [0, 2])
def test_budget_stateful_dataloader_resume(num_workers: int) -> None:
    from torchdata.stateful_dataloader import StatefulDataLoader

    def loader() -> tuple[Any, Any]:
        s = _tb(num_replicas=2, rank=0)
        return s, StatefulDataLoader(IndexDataset(400), batch_sampler=s, num_workers=num_workers)

    s, dl = loader()
    whole = []
    for e in (1, 2):
        s.set_epoch(e)
        whole += [b.tolist() for b in dl]
    s, dl = loader()
    s.set_epoch(1)
    head = [b.tolist() for b in itertools.islice(dl, 6)]
    state = dl.state_dict()
    s, dl = loader()
    dl.load_state_dict(state)
    tail = []
    for e in (1, 2):
        s.set_epoch(e)
        tail += [b.tolist() for b in dl]
    assert head + tail == whole


def test_state_of_another_configuration_is_refused() -> None:
    a = _tb()
    list(itertools.islice(iter(a), 3))
    state = a.state_dict()
    with pytest.raises(ValueError, match="max_tokens"):
        rs.ResumableTokenBudgetBatchSampler(
            [1 + (i * 37) % 50 for i in range(400)], 121
        ).load_state_dict(state)
    changed = [1 + (i * 37) % 50 for i in range(400)]
    changed[17] += 1
    with pytest.raises(ValueError, match="lengths changed"):
        rs.ResumableTokenBudgetBatchSampler(changed, 120, seed=3).load_state_dict(state)
    with pytest.raises(ValueError, match="missing"):
        _lg().load_state_dict(rs.ResumableRandomSampler(range(103)).state_dict())
    with pytest.raises(ValueError, match="unknown"):
        rs.ResumableRandomSampler(range(103)).load_state_dict(_lg().state_dict())
    with pytest.raises(ValueError, match="lengths changed"):
        _lg(n=103).load_state_dict({**_lg(n=103).state_dict(), "lengths_fingerprint": 1})
    with pytest.raises(ValueError, match="megabatch_size"):
        _lg(megabatch_mult=3).load_state_dict(_lg(megabatch_mult=2).state_dict())


# -- lengths -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "int64"])
def test_memory_mapped_lengths_are_read_in_place(tmp_path: Path, dtype: str) -> None:
    lengths = np.random.default_rng(3).integers(0, 1000, 5000).astype(dtype)
    path = tmp_path / "lengths.npy"
    np.save(path, lengths)
    mm = np.load(path, mmap_mode="r")
    want = hf_order(lengths.tolist(), 8, None, 0, 0)
    for arg in (path, str(path), mm):
        s = rs.ResumableLengthGroupedSampler(arg, 8, num_replicas=1, rank=0)
        assert isinstance(s.lengths, np.memmap)
        blob = pickle.dumps(s)
        assert len(blob) < 2000  # the file's name, not its contents
        assert list(s) == want
        assert list(pickle.loads(blob)) == want
    part = rs.ResumableLengthGroupedSampler(mm[1000:], 8, num_replicas=1, rank=0)
    assert list(pickle.loads(pickle.dumps(part))) == hf_order(lengths[1000:], 8, None, 0, 0)
    t = rs.ResumableTokenBudgetBatchSampler(path, 4000, num_replicas=1, rank=0)
    assert list(pickle.loads(pickle.dumps(t))) == list(t)


def test_a_changed_file_is_detected_when_a_copy_reopens_it(tmp_path: Path) -> None:
    path = tmp_path / "lengths.npy"
    np.save(path, np.arange(100, dtype=np.uint16))
    blob = pickle.dumps(rs.ResumableLengthGroupedSampler(path, 4))
    np.save(path, np.arange(100, dtype=np.uint16)[::-1].copy())
    with pytest.raises(ValueError, match="lengths"):
        pickle.loads(blob)


@pytest.mark.parametrize(
    ("lengths", "error", "match"),
    [
        ([], ValueError, "lengths should not be empty"),
        (np.array([], dtype=np.int64), ValueError, "lengths should not be empty"),
        ([3, -1, 2], ValueError, r"lengths\[1\] = -1"),
        (np.array([5, 2, -7]), ValueError, r"lengths\[2\] = -7"),
        ([1.5, 2.0], TypeError, "lengths should hold integers"),
        (np.array([True, False]), TypeError, "lengths should hold integers"),
        (np.ones((2, 3), dtype=np.int64), ValueError, "1-D"),
        (["a", "b"], TypeError, "lengths should hold integers"),
        (5, TypeError, "lengths should be a sequence"),
        ([2**70], TypeError, "lengths should hold integers"),
    ],
)
def test_bad_lengths_are_named(lengths: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        rs.ResumableLengthGroupedSampler(lengths, 4)
    with pytest.raises(error, match=match):
        rs.ResumableTokenBudgetBatchSampler(lengths, 100)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lengths: cannot memory-map"):
        rs.ResumableLengthGroupedSampler(tmp_path / "nope.npy", 4)


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": True}, TypeError, "batch_size"),
        ({"megabatch_mult": 0}, ValueError, "megabatch_mult"),
        ({"num_replicas": 2, "rank": 2}, ValueError, "Invalid rank 2"),
        ({"seed": 2**64}, ValueError, "seed"),
    ],
)
def test_bad_arguments_are_named(kw: dict[str, Any], error: type[Exception], match: str) -> None:
    args = {"batch_size": 4, **kw}
    with pytest.raises(error, match=match):
        rs.ResumableLengthGroupedSampler([1, 2, 3], **args)


def test_non_contiguous_and_big_endian_arrays_are_accepted() -> None:
    base = np.random.default_rng(4).integers(0, 100, 400)
    for arg in (base[::2], base[::2].astype(">i8"), torch.tensor(base[::2])):
        s = rs.ResumableLengthGroupedSampler(arg, 4, num_replicas=1, rank=0)
        assert list(s) == hf_order(base[::2].tolist(), 4, None, 0, 0)


def test_dataloader_with_token_budget_batches() -> None:
    lengths = np.random.default_rng(5).integers(1, 64, 300).astype(np.uint16)
    s = rs.ResumableTokenBudgetBatchSampler(lengths, 256)
    dl = tud.DataLoader(IndexDataset(300), batch_sampler=s, num_workers=0)
    assert len(dl) == len(s)
    got = [b.tolist() for b in dl]
    assert got == list(s)


class _Interrupted(Exception):
    pass


def test_ctrl_c_interrupts_a_long_epoch_build() -> None:
    """SIGINT sent once the core's epoch build has started (a profile hook sees the call) is
    answered from inside the build: the handler runs while the call is still under way, and the
    sampler works afterwards. No delay is assumed: a build that happened to finish before the
    signal arrived does not count, and the next attempt sends it again."""
    import signal
    import threading

    lengths = np.random.default_rng(6).integers(0, 2000, 2_000_000, dtype=np.uint16)
    s = rs.ResumableLengthGroupedSampler(lengths, 32, num_replicas=1, rank=0)
    target = rs.length._core.length_grouped_epoch
    state = {"inside": False, "handled_inside": None}
    started = threading.Event()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if arg is target and event == "c_call":
            state["inside"] = True
            started.set()
        elif arg is target and event in ("c_return", "c_exception"):
            state["inside"] = False

    def handler(signum: int, frame: Any) -> None:
        state["handled_inside"] = state["inside"]
        raise _Interrupted

    main = threading.get_ident()
    previous = signal.signal(signal.SIGINT, handler)
    try:
        for _ in range(5):
            started.clear()
            sender = threading.Thread(
                target=lambda: started.wait(60) and signal.pthread_kill(main, signal.SIGINT)
            )
            sender.start()
            sys.setprofile(profile)
            try:
                with pytest.raises(_Interrupted):
                    s.indices()
                    while sender.is_alive():  # the build finished first: wait for the signal
                        sender.join(0.01)
            finally:
                sys.setprofile(None)
                sender.join()
            if state["handled_inside"]:
                break
            s = rs.ResumableLengthGroupedSampler(lengths, 32, num_replicas=1, rank=0)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert state["handled_inside"], "the build never ran long enough to be interrupted"
    first = s.indices()[:100].tolist()  # the sampler still works: the epoch is built afresh
    assert lengths[first[0]] == lengths.max()
    assert s.state_dict()["offset"] == 0


def _global(shares: list[list[Any]], w: int, c: int = 0) -> dict[int, Any]:
    """Rank ``r``'s ``j``-th item at its global position ``c + r + j * w``."""
    return {c + r + j * w: x for r, share in enumerate(shares) for j, x in enumerate(share)}


@settings(max_examples=120, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 50), min_size=1, max_size=150),
    budget=st.booleans(),
    w=st.integers(1, 5),
    w2=st.integers(1, 5),
    k_pct=st.integers(0, 110),
    drop_last=st.booleans(),
    epoch=st.integers(0, 3),
)
def test_resume_and_elastic_resume_continue_the_uninterrupted_epoch(
    lengths: list[int], budget: bool, w: int, w2: int, k_pct: int, drop_last: bool, epoch: int
) -> None:
    def make(world: int, rank: int) -> Any:
        kw = {"seed": 9, "num_replicas": world, "rank": rank, "drop_last": drop_last}
        if budget:
            return rs.ResumableTokenBudgetBatchSampler(lengths, 100, **kw)
        return rs.ResumableLengthGroupedSampler(lengths, 3, **kw)

    def shares(world: int, state: dict[str, Any] | None = None) -> list[list[Any]]:
        out = []
        for r in range(world):
            s = make(world, r)
            s.set_epoch(epoch)
            if state is not None:
                s.load_state_dict(state)
            out.append(list(s))
        return out

    whole = _global(shares(w), w)
    first = make(w, 0)
    first.set_epoch(epoch)
    k = len(first) * k_pct // 100
    for r in range(w):  # every rank takes k items
        s = make(w, r) if r else first
        s.set_epoch(epoch)
        list(itertools.islice(iter(s), k))
    state = first.state_dict()
    c = state["offset"]
    assert c == min(k, len(first)) * w
    # the same world size continues with the rest of each rank's share
    assert _global(shares(w, state), w, c) == {p: x for p, x in whole.items() if p >= c}
    # another world size continues with the global positions from c on
    rest = _global(shares(w2, state), w2, c)
    n = state["dataset_length"]
    for p, x in rest.items():
        assert p >= c
        if p in whole:
            assert whole[p] == x
    if not drop_last and c < n:
        assert set(range(c, n)) <= set(rest)


def test_same_arguments_same_order_and_seeds_differ() -> None:
    lengths = np.random.default_rng(7).integers(1, 100, 500)
    a = rs.ResumableLengthGroupedSampler(lengths, 8, seed=1, num_replicas=1, rank=0)
    b = rs.ResumableLengthGroupedSampler(lengths.astype(np.uint16), 8, seed=1)
    c = rs.ResumableLengthGroupedSampler(lengths, 8, seed=2, num_replicas=1, rank=0)
    assert list(a) == list(b) != list(c)
    assert a.state_dict() == b.state_dict()
    assert rs.create_sampler(
        "ResumableLengthGroupedSampler", lengths, 8, seed=1
    ).indices().tolist() == list(a)


@pytest.mark.timeout(300)
def test_ranks_of_a_gloo_group_default_to_the_group(tmp_path: Path) -> None:
    import _length_workers
    import _workers

    world = 3
    preload = ["torch", "torch.distributed", "resumable_samplers", "_length_workers"]
    results = _workers.run_gloo_job(world, tmp_path, _length_workers.length_ranks, preload)
    lengths = _length_workers.LENGTHS
    order = hf_order(lengths, 4, None, 3, 1)
    whole = list(rs.ResumableTokenBudgetBatchSampler(lengths, 60, seed=4, num_replicas=1, rank=0))
    for r, got in enumerate(results):
        assert got["replicas"] == (world, r, world, r)
        assert got["grouped"] == torch_share(order, world, r, False)
        assert got["budget"] == torch_share(whole, world, r, False)


@pytest.mark.parametrize(
    ("lengths", "max_tokens", "max_batch_size"),
    [([1, 2], 10, None), ([3, 3, 4], 100, None), ([0, 0, 1], 7, None), ([5] * 9 + [6], 60, 4)],
)
def test_typical_batch_is_max_tokens_over_the_mean_rounded_up(
    lengths: list[int], max_tokens: int, max_batch_size: int | None
) -> None:
    """The rule docs/length-grouping.md and the docstring state: megabatches of
    ``megabatch_mult`` typical batches of ``max_tokens // ceil(mean length)`` samples."""
    mean = max(1, math.ceil(sum(lengths) / len(lengths)))
    typical = min(max(1, max_tokens // mean), max_batch_size or len(lengths) * max_tokens)
    s = rs.ResumableTokenBudgetBatchSampler(
        lengths * 10, max_tokens, megabatch_mult=2, max_batch_size=max_batch_size
    )
    assert s.megabatch_size == min(2 * typical, len(lengths) * 10)
    rule = "max_tokens // ceil(sum(lengths) / len(lengths))"
    page = (Path(__file__).parent.parent / "docs" / "length-grouping.md").read_text()
    assert rule in " ".join(page.split())
    doc = rs.ResumableTokenBudgetBatchSampler.__doc__ or ""
    assert "max_tokens // ceil(mean length)" in " ".join(doc.split())

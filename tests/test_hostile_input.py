"""Hostile input (docs/reliability.md, section 6), driven by hypothesis.

Every public constructor (the three samplers, ``randperm``, ``create_sampler``, ``Registry``'s
``register``/``get``) and every method or setter (``start_iter``, ``set_epoch``,
``load_state_dict``, ``indices``, ``state_dict``) is fed wrong types, bools for ints, negative and
huge integers (beyond 2**64), NaN/inf/floats, None, strings, int-likes (NumPy and torch integers,
objects with ``__index__``) and malformed state dicts (random keys and values, right keys with
wrong types or huge ints, missing or extra keys, states of another sampler). A call either
succeeds with exactly the contract's result (torch's order), or raises a documented exception
(``ValueError``/``TypeError``, ``KeyError`` for unknown registry names, ``MemoryError`` only for
valid but huge sizes) whose message names the argument; never a panic, ``SystemError``, crash
or wrong order, and after a refused call the sampler yields exactly what it yielded before.

The regression tests at the end pin bugs that the generated cases once found. The number of
distinct cases (docs/reliability.md quotes it) is counted by test_distinct_cases_ran: see it with
``pytest tests/test_hostile_input.py -rP``.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import operator
import re
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import torch
import torch.utils.data as tud
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import resumable_samplers as rs
from conftest import Sized, torch_perm
from resumable_samplers import (
    ResumableDistributedSampler,
    ResumableRandomSampler,
    ResumableSequentialSampler,
)

# (entry point and argument, value) pairs that ran; counted by test_distinct_cases_ran.
CASES: set[tuple[str, str]] = set()
CALLS = [0]

HOSTILE = settings(
    max_examples=600,
    deadline=None,
    database=None,
    derandomize=True,  # the same cases on every run, so the count in docs/reliability.md holds
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

SEED_MIN, SEED_END, MAX_LEN = -(2**63), 2**64, 2**63 - 1
BIG = 2**36  # valid sizes from here on cannot be allocated (>= 256 GiB): MemoryError
EDGES = [0, 1, -1, 2**31, 2**32, 2**32 + 1, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1]
EDGES += [2**64 - 1, 2**64, 2**64 + 1, 2**100, -(2**100)]


class IndexOnly:
    """An int-like that is no int: only ``__index__``."""

    def __init__(self, v: int) -> None:
        self.v = v

    def __index__(self) -> int:
        return self.v

    def __repr__(self) -> str:
        return f"IndexOnly({self.v})"


class NoLen:
    def __getitem__(self, i: int) -> int:
        return i


def key(value: Any) -> str:
    """A case's value as text: its type and repr, without memory addresses (Sized by length)."""
    r = re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))
    if isinstance(value, Sized):
        r += f" of length {value.n}"
    return f"{type(value).__module__}.{type(value).__qualname__}:{r[:160]}"


def int_likes(v: int) -> st.SearchStrategy[Any]:
    options: list[Any] = [IndexOnly(v)]
    if -(2**63) <= v < 2**63:
        options += [np.int64(v), torch.tensor(v), np.array(v)]
    if 0 <= v < 2**64:
        options.append(np.uint64(v))
    if -(2**31) <= v < 2**31:
        options.append(np.int32(v))
    return st.sampled_from(options)


NON_INTS = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([np.True_, np.False_, np.array(True)]),
    # Floats (as everywhere else) that would be small or impossible sizes if taken as ints, so that
    # a library wrongly accepting them cannot start a multi-GB allocation.
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not 1e3 < abs(x) < 1e11),
    st.sampled_from(
        [
            float("nan"),
            float("inf"),
            -float("inf"),
            2.0,
            -0.0,
            np.float64(3.0),
            np.float32(1.0),
            np.nan,
            torch.tensor(2.0),
            complex(1, 0),
            Decimal(3),
            Decimal("NaN"),
            Fraction(4, 1),
            Fraction(1, 3),
        ]
    ),
    st.text(max_size=8),
    st.binary(max_size=4),
    st.sampled_from(["1", "0", "-1", "2**64", "torch", "lazy", "identity", "Torch", " torch", ""]),
    st.lists(st.integers(0, 5), max_size=3),
    st.tuples(st.integers(0, 5)),
    st.frozensets(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from(
        [object(), int, str, range(3), np.array([1, 2]), torch.tensor([1, 2]), np.zeros((2, 2))]
    ),
)


def hostile(ints: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    return st.one_of(ints, ints.flatmap(int_likes), NON_INTS)


ANY_INTS = st.one_of(st.integers(-3, 12), st.integers(-(2**130), 2**130), st.sampled_from(EDGES))
# Sizes: small, or valid but impossible to allocate, or invalid; never a real 1-100 GB buffer.
SIZE_INTS = st.one_of(
    st.integers(-5, 40),
    st.integers(BIG, MAX_LEN),
    st.integers(MAX_LEN + 1, 2**130),
    st.integers(-(2**130), -1),
    st.sampled_from([MAX_LEN, MAX_LEN + 1, 2**64, -1, 0, 1]),
)
SEED_INTS = st.one_of(
    st.integers(SEED_MIN, SEED_END - 1), ANY_INTS, st.sampled_from([SEED_MIN, SEED_END - 1])
)
VALID_SEEDS = st.one_of(st.integers(-5, 5), st.integers(SEED_MIN, SEED_END - 1))
PERMUTATIONS = st.one_of(
    st.sampled_from(["torch", "lazy"]), st.sampled_from(["torch", "lazy"]).map(np.str_), NON_INTS
)


def as_index(v: Any) -> int | None:
    """The int the contract accepts ``v`` as (ints and int-likes, never bools), or None."""
    if isinstance(v, bool | np.bool_):
        return None
    if isinstance(v, torch.Tensor) and v.dtype == torch.bool:
        return None
    try:
        return operator.index(v)
    except Exception:
        return None


@dataclass(frozen=True)
class Refused:
    """The documented exception(s) a call must raise, and the name its message must contain."""

    types: tuple[type[BaseException], ...]
    name: str


def names(name: str) -> str:
    return rf"(^|[^\w]){re.escape(name)}([^\w]|$)"


def attempt(where: str, value: Any, call: Callable[[], Any], refused: Refused | None) -> Any:
    """Run ``call``: it must succeed if ``refused`` is None, else raise as described."""
    CASES.add((where, key(value)))
    CALLS[0] += 1
    if refused is None:
        return call()
    try:
        call()
    except BaseException as e:  # a panic is a BaseException: catch it to report it
        assert isinstance(e, refused.types), f"{where}={value!r}: {type(e).__name__}: {e}"
        assert not isinstance(e, SystemError)
        if not isinstance(e, MemoryError):
            assert re.search(names(refused.name), str(e)), f"{where}={value!r}: {e}"
        return None
    raise AssertionError(f"{where}={value!r} was accepted; expected {refused}")


def int_arg(name: str, v: Any, lo: int | None = None, hi: int | None = None) -> Refused | None:
    i = as_index(v)
    if i is None:
        return Refused((TypeError,), name)
    if (lo is not None and i < lo) or (hi is not None and i > hi):
        return Refused((ValueError,), name)
    return None


# --- the contract's orders --------------------------------------------------------------------


@dataclass(frozen=True)
class Cfg:
    kind: str  # "random", "sequential" or "distributed"
    n: int
    seed: int = 0
    perm: str = "torch"
    shuffle: bool = True
    drop_last: bool = False
    w: int = 1
    r: int = 0
    b: int = 1


@functools.lru_cache(maxsize=4096)
def lazy_perm(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    s = ResumableRandomSampler(Sized(n), seed=seed, permutation="lazy")
    s.set_epoch(epoch)
    p = tuple(s)
    assert sorted(p) == list(range(n))
    return p


def epoch_perm(c: Cfg, epoch: int) -> list[int] | Refused:
    """``P`` of an epoch, or how iterating it is refused (``seed + epoch`` out of range)."""
    if c.kind == "sequential" or not c.shuffle:
        return list(range(c.n))
    if c.perm == "torch":
        if not SEED_MIN <= c.seed + epoch < SEED_END:
            return Refused((ValueError,), "epoch")
        return torch_perm(c.n, c.seed + epoch)
    if not SEED_MIN <= epoch < SEED_END:
        return Refused((ValueError,), "epoch")
    return list(lazy_perm(c.n, c.seed, epoch))


def shard_len(c: Cfg, offset: int = 0) -> int:
    rest = c.n - offset
    if rest <= 0:
        return 0
    return rest // c.w if c.drop_last else -(-rest // c.w)


def order(c: Cfg, epoch: int, offset: int = 0, skip: int = 0) -> list[int] | Refused:
    """Rank r's indices G(offset + r + jW), G(p) = P[p mod n] (docs/distributed.md, "The same
    indices as torch, on every rank"; docs/resume.md, "Resuming on another number of processes")."""
    p = epoch_perm(c, epoch)
    if isinstance(p, Refused):
        return p
    return [p[(offset + c.r + j * c.w) % c.n] for j in range(shard_len(c, offset))][skip:]


def make(c: Cfg, **over: Any) -> Any:
    if c.kind == "random":
        return ResumableRandomSampler(Sized(c.n), seed=c.seed, batch_size=c.b, permutation=c.perm)
    if c.kind == "sequential":
        return ResumableSequentialSampler(Sized(c.n), batch_size=c.b)
    return ResumableDistributedSampler(
        Sized(c.n),
        c.w,
        c.r,
        shuffle=c.shuffle,
        seed=c.seed,
        drop_last=c.drop_last,
        batch_size=c.b,
        permutation=c.perm,
    )


@st.composite
def cfgs(draw: Any) -> Cfg:
    kind = draw(st.sampled_from(["random", "sequential", "distributed"]))
    c = Cfg(kind, draw(st.integers(0, 40)), b=draw(st.integers(1, 5)))
    if kind == "sequential":
        return replace(c, perm="torch", shuffle=False)
    c = replace(c, seed=draw(VALID_SEEDS), perm=draw(st.sampled_from(["torch", "lazy"])))
    if kind == "distributed":
        w = draw(st.integers(1, 5))
        c = replace(
            c,
            w=w,
            r=draw(st.integers(0, w - 1)),
            shuffle=draw(st.booleans()),
            drop_last=draw(st.booleans()),
        )
    return c


def check_yields(s: Any, want: list[int] | Refused, indices: bool = True) -> None:
    """``s`` yields ``want`` (iterating a copy, so ``s`` keeps its resume point), and so does
    ``indices()``; or both refuse as ``want`` says."""
    if isinstance(want, Refused):
        with pytest.raises(want.types, match=names(want.name)):
            list(copy.deepcopy(s))
        if indices:
            with pytest.raises(want.types, match=names(want.name)):
                s.indices()
        return
    got = list(copy.deepcopy(s))
    assert got == want
    assert all(type(i) is int for i in got)
    if indices:
        assert s.indices().tolist() == want


def check_new_sampler(s: Any, c: Cfg) -> None:
    """A sampler built from (possibly int-like) valid arguments behaves as the contract says."""
    if c.kind == "distributed":
        assert (s.num_replicas, s.rank, s.shuffle, s.drop_last) == (
            c.w,
            c.r,
            c.shuffle,
            c.drop_last,
        )
        assert len(s) == shard_len(c)
    else:
        assert len(s) == c.n
    if c.n >= BIG:  # valid but huge: MemoryError where a buffer is needed, nothing else
        count = shard_len(c)
        if c.shuffle and c.perm == "torch" and c.kind != "sequential":
            with pytest.raises(MemoryError):
                next(iter(s))  # an iterator starts (and builds the epoch) at its first next()
        else:
            it = iter(s)
            head = [next(it) for _ in range(min(count, 20))]
            assert len(set(head)) == len(head) and all(0 <= i < c.n for i in head)
            if not c.shuffle or c.kind == "sequential":
                assert head == [(c.r + j * c.w) % c.n for j in range(len(head))]
        assert count >= 2**33  # an index buffer of 64 GiB or more
        with pytest.raises(MemoryError):
            s.indices()
        return
    want = order(c, 0)
    assert not isinstance(want, Refused)
    if c.kind == "distributed" and c.w <= 64:
        ref = tud.DistributedSampler(
            Sized(c.n),  # type: ignore[arg-type]
            c.w,
            c.r,
            shuffle=c.shuffle,
            seed=c.seed,
            drop_last=c.drop_last,
        )
        if c.perm == "torch" or not c.shuffle:
            assert want == list(ref)
    check_yields(s, want)
    s.start_iter = 1  # batch_size is what start_iter counts in
    check_yields(s, want[c.b :], indices=c.b < 2**64)  # test_indices_past_2_pow_64


# --- randperm ---------------------------------------------------------------------------------


@HOSTILE
@given(data=st.data())
def test_randperm(data: st.DataObject) -> None:
    arg = data.draw(st.sampled_from(["n", "seed", "permutation"]))
    kw: dict[str, Any] = {
        "n": data.draw(st.integers(0, 40)),
        "seed": data.draw(VALID_SEEDS),
        "permutation": data.draw(st.sampled_from(["torch", "lazy"])),
    }
    value = data.draw({"n": hostile(SIZE_INTS), "seed": hostile(SEED_INTS)}.get(arg, PERMUTATIONS))
    kw[arg] = value
    refused: Refused | None = None
    if arg == "n":
        refused = int_arg("n", value, 0, MAX_LEN)
        if refused is None and operator.index(value) >= BIG:
            refused = Refused((MemoryError,), "n")
    elif arg == "seed":
        refused = int_arg("seed", value, SEED_MIN, SEED_END - 1)
    elif not (isinstance(value, str) and value in ("torch", "lazy")):
        refused = Refused((ValueError,), "permutation")
    got = attempt(f"randperm({arg})", value, lambda: rs.randperm(**kw), refused)
    if refused is not None:
        return
    n, seed = operator.index(kw["n"]), operator.index(kw["seed"])
    assert got.dtype == np.uint32
    if kw["permutation"] == "torch":
        assert got.tolist() == torch_perm(n, seed)
    else:
        assert got.tolist() == list(lazy_perm(n, seed, 0))


# --- constructors -----------------------------------------------------------------------------

ARGS = {
    "random": ("data_source", "seed", "batch_size", "permutation"),
    "sequential": ("data_source", "batch_size"),
    "distributed": (
        "dataset",
        "num_replicas",
        "rank",
        "shuffle",
        "seed",
        "drop_last",
        "batch_size",
        "permutation",
    ),
}
CLASS_NAMES = {
    "random": "ResumableRandomSampler",
    "sequential": "ResumableSequentialSampler",
    "distributed": "ResumableDistributedSampler",
}
DATASETS = st.one_of(
    st.integers(0, 40).map(Sized),
    st.integers(BIG, MAX_LEN).map(Sized),
    st.integers(0, 20).flatmap(
        lambda k: st.sampled_from(
            [
                list(range(k)),
                range(k),
                np.arange(k),
                torch.arange(k),
                "x" * k,
                dict.fromkeys(range(k)),
            ]
        )
    ),
    st.just(tud.TensorDataset(torch.arange(7))),
    st.sampled_from([None, 3, 2.5, object(), NoLen(), iter([1, 2]), Sized, len]),
    st.builds(lambda: (i for i in range(3))),
)


def config_kwargs(c: Cfg) -> dict[str, Any]:
    if c.kind == "random":
        return {
            "data_source": Sized(c.n),
            "seed": c.seed,
            "batch_size": c.b,
            "permutation": c.perm,
        }
    if c.kind == "sequential":
        return {"data_source": Sized(c.n), "batch_size": c.b}
    return {
        "dataset": Sized(c.n),
        "num_replicas": c.w,
        "rank": c.r,
        "shuffle": c.shuffle,
        "seed": c.seed,
        "drop_last": c.drop_last,
        "batch_size": c.b,
        "permutation": c.perm,
    }


def constructor_case(c: Cfg, arg: str, value: Any) -> tuple[Refused | None, Cfg]:
    """What the contract says about ``arg=value`` in the sampler ``c``, and the resulting Cfg."""
    if arg in ("data_source", "dataset"):
        if not hasattr(type(value), "__len__"):
            return Refused((TypeError,), arg), c
        return None, replace(c, n=len(value))
    if arg == "seed":
        r = int_arg("seed", value, SEED_MIN, SEED_END - 1)
        return r, c if r else replace(c, seed=operator.index(value))
    if arg == "batch_size":
        r = int_arg("batch_size", value, 1)
        return r, c if r else replace(c, b=operator.index(value))
    if arg == "permutation":
        if isinstance(value, str) and value in ("torch", "lazy"):
            return None, replace(c, perm=str(value))
        return Refused((ValueError,), "permutation"), c
    if arg in ("shuffle", "drop_last"):  # Python and NumPy bools, nothing else
        if not isinstance(value, bool | np.bool_):
            return Refused((TypeError,), arg), c
        return None, replace(c, **{arg: bool(value)})
    if arg == "num_replicas":
        if value is None:  # torch's default: the process group's (there is none here)
            return Refused((ValueError, RuntimeError), "process group"), c
        r = int_arg("num_replicas", value, 1)
        if r:
            return r, c
        w = operator.index(value)
        if not 0 <= c.r < w:
            return Refused((ValueError,), "rank"), c
        return None, replace(c, w=w)
    assert arg == "rank"
    if value is None:
        return Refused((ValueError, RuntimeError), "process group"), c
    r = int_arg("rank", value, 0, c.w - 1)
    return r, c if r else replace(c, r=operator.index(value))


@settings(HOSTILE, max_examples=1000)
@given(data=st.data())
def test_sampler_constructors(data: st.DataObject) -> None:
    c = data.draw(cfgs())
    arg = data.draw(st.sampled_from(ARGS[c.kind]))
    strategy = {
        "data_source": DATASETS,
        "dataset": DATASETS,
        "seed": hostile(SEED_INTS),
        "permutation": PERMUTATIONS,
        "num_replicas": hostile(ANY_INTS),
        "rank": hostile(ANY_INTS),
        "batch_size": hostile(ANY_INTS),
    }.get(arg, st.one_of(st.booleans(), NON_INTS, ANY_INTS))
    value = data.draw(strategy)
    refused, want = constructor_case(c, arg, value)
    kw = config_kwargs(c)
    kw[arg] = value
    by_name = data.draw(st.booleans())
    cls = getattr(rs, CLASS_NAMES[c.kind])

    def build() -> Any:
        return rs.create_sampler(CLASS_NAMES[c.kind], **kw) if by_name else cls(**kw)

    s = attempt(f"{CLASS_NAMES[c.kind]}({arg})", value, build, refused)
    if refused is None:
        assert type(s) is cls
        check_new_sampler(s, want)


# --- methods ----------------------------------------------------------------------------------


@dataclass
class Model:
    """Where the contract says a sampler is: its epoch and its pending start, either a restored
    ``(epoch, global offset)`` or ``start_iter`` (any epoch)."""

    c: Cfg
    epoch: int = 0
    resume: tuple[int, int] | None = None
    start_iter: int = 0

    def want(self) -> list[int] | Refused:
        if self.resume is not None:
            offset = self.resume[1] if self.resume[0] == self.epoch else 0
            return order(self.c, self.epoch, offset)
        return order(self.c, self.epoch, 0, self.start_iter * self.c.b)


def same_order(c: Cfg) -> bool:
    """Whether every seed and permutation give ``c`` the same order (the identity)."""
    return c.n <= 1 or not c.shuffle or c.kind == "sequential"


# Whether a state whose field is replaced by ``v`` is accepted: states describing the same order
# are (another seed or permutation when unshuffled or n <= 1, another shuffle when n <= 1).
FIELD_OK: dict[str, Callable[[Any, Cfg, str, dict[str, Any]], bool]] = {
    "format": lambda v, c, p, s: isinstance(v, str) and v == "resumable-samplers",
    "version": lambda v, c, p, s: type(v) is int and v == 1,
    "epoch": lambda v, c, p, s: type(v) is int,  # the range is checked below
    "seed": lambda v, c, p, s: (
        type(v) is int
        and SEED_MIN <= v < SEED_END
        and (same_order(c) or v % SEED_END == c.seed % SEED_END)
    ),
    "permutation": lambda v, c, p, s: isinstance(v, str) and (v == p or same_order(c)),
    "dataset_length": lambda v, c, p, s: type(v) is int and v == c.n,
    "shuffle": lambda v, c, p, s: (
        type(v) is bool and (v == (c.shuffle and c.kind != "sequential") or c.n <= 1)
    ),
    "drop_last": lambda v, c, p, s: type(v) is bool and v == c.drop_last,
    # at most the end of an epoch of W ranks (padded, or trimmed with drop_last)
    "offset": lambda v, c, p, s: (
        type(v) is int and 0 <= v <= epoch_end(c.n, s["num_replicas"], c.drop_last)
    ),
    "num_replicas": lambda v, c, p, s: (
        type(v) is int and 1 <= v <= MAX_LEN and s["offset"] <= epoch_end(c.n, v, c.drop_last)
    ),
}


def epoch_end(n: int, w: int, drop_last: bool) -> int:
    """The end of an epoch of ``n`` items over ``w`` ranks, in global positions (torch's
    ``total_size``)."""
    return (n // w if drop_last else -(-n // w)) * w


FIELDS = tuple(FIELD_OK)


def donor_state(c: Cfg, epoch: int, consumed: int, w: int) -> dict[str, Any]:
    """The state a sampler like ``c`` (run by ``w`` replicas) saves after ``consumed`` indices."""
    d = make(replace(c, w=w, r=0) if c.kind == "distributed" else c)
    d.set_epoch(epoch)
    it = iter(d)
    for _ in range(consumed):
        next(it)
    return d.state_dict()  # type: ignore[no-any-return]


@st.composite
def states(draw: Any, c: Cfg) -> tuple[str, Any, Refused | None, tuple[int, int] | None]:
    """(what, state, how loading it is refused or None, the (epoch, offset) it resumes at)."""
    w = draw(st.integers(1, 4)) if c.kind == "distributed" else 1
    epoch = draw(st.integers(0, max(0, min(3, SEED_END - 1 - c.seed))))  # seed + epoch valid
    per_rank = -(-c.n // w)
    if c.n < 2 or per_rank < 2:
        consumed = 0
    else:
        consumed = draw(st.integers(1, min(per_rank - 1, (c.n - 1) // w)))
    state = donor_state(c, epoch, consumed, w)
    assert 0 <= state["offset"] < max(c.n, 1)
    perm = state["permutation"]
    resumes = (state["epoch"], state["offset"])
    how = draw(
        st.sampled_from(
            ["valid", "replace", "replace", "replace", "drop", "extra", "junk", "other"]
        )
    )
    if how == "valid":
        return how, state, None, resumes
    if how == "replace":
        field = draw(st.sampled_from(FIELDS))
        value = draw(
            st.one_of(
                hostile(ANY_INTS),
                st.sampled_from(
                    ["resumable-samplers", "torch", "lazy", "identity", 1, c.n, c.seed, c.n + 1]
                ),
                st.just(state[field]).map(lambda v: np.int64(v) if type(v) is int else v),
            )
        )
        state = {**state, field: value}
        if not FIELD_OK[field](value, c, perm, state):
            return f"{field}=", state, Refused((ValueError,), f"'{field}'"), None
        if field == "epoch" and state["shuffle"]:
            key_ok = (
                SEED_MIN <= state["seed"] + value < SEED_END
                if perm == "torch"
                else SEED_MIN <= value < SEED_END
            )
            if not key_ok:
                return "epoch=", state, Refused((ValueError,), "'epoch'"), None
        return f"{field}=", state, None, (state["epoch"], state["offset"])
    if how == "drop":
        field = draw(st.sampled_from(FIELDS))
        del state[field]
        return "missing", state, Refused((ValueError,), f"'{field}'"), None
    if how == "extra":
        extra = draw(st.one_of(st.text(max_size=6), st.integers(), st.none(), st.floats()))
        assume(extra not in FIELDS)
        state[extra] = draw(hostile(ANY_INTS))
        return "extra", state, Refused((ValueError,), repr(str(extra))[1:-1]), None
    if how == "junk":
        junk = draw(
            st.one_of(
                st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), hostile(ANY_INTS)),
                NON_INTS,
                ANY_INTS,
            )
        )
        return "junk", junk, Refused((ValueError,), "state"), None
    # The state of another sampler: one setting differs.
    options = ["seed", "dataset_length", "permutation"]
    if c.kind == "distributed":
        options += ["shuffle", "drop_last"]
    if c.kind == "sequential":
        options = ["dataset_length"]
    field = draw(st.sampled_from(options))
    other = {
        "seed": replace(c, seed=c.seed - 1 if c.seed + 1 + epoch >= SEED_END else c.seed + 1),
        "dataset_length": replace(c, n=c.n + 1),
        "permutation": replace(c, perm="lazy" if c.perm == "torch" else "torch"),
        "shuffle": replace(c, shuffle=not c.shuffle),
        "drop_last": replace(c, drop_last=not c.drop_last),
    }[field]
    if (field in ("seed", "permutation") and same_order(c)) or (field == "shuffle" and c.n <= 1):
        return "other", donor_state(other, epoch, 0, w), None, (epoch, 0)  # the same order
    return "other", donor_state(other, epoch, 0, w), Refused((ValueError,), f"'{field}'"), None


@settings(HOSTILE, max_examples=1000)
@given(data=st.data())
def test_sampler_methods(data: st.DataObject) -> None:
    c = data.draw(cfgs())
    s = make(c)
    m = Model(c)
    no_indices = False  # set when indices() would hit test_indices_past_2_pow_64
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["start_iter", "set_epoch", "load", "indices", "state"]))
        before = s.state_dict()
        if op == "start_iter":
            v = data.draw(hostile(ANY_INTS))
            refused = int_arg("start_iter", v, 0)

            def set_start(v: Any = v) -> None:
                s.start_iter = v

            attempt("start_iter", v, set_start, refused)
            if refused is None:
                m.start_iter, m.resume = operator.index(v), None
                assert s.start_iter == m.start_iter and type(s.start_iter) is int
                no_indices = m.start_iter * c.b >= 2**64
        elif op == "set_epoch":
            v = data.draw(hostile(ANY_INTS))
            e = as_index(v)
            if c.kind == "distributed":  # torch's set_epoch stores anything; iter() checks it
                attempt("set_epoch", v, lambda v=v: s.set_epoch(v), None)
                if e is None:
                    check_yields(s, Refused((TypeError,), "epoch"))
                    with pytest.raises(TypeError, match="epoch"):
                        s.state_dict()
                    return
            else:
                attempt("set_epoch", v, lambda v=v: s.set_epoch(v), int_arg("epoch", v))
            if e is not None:
                m.epoch = e
        elif op == "load":
            what, state, refused, resumes = data.draw(states(c))
            attempt(
                f"load_state_dict({what})", state, lambda st=state: s.load_state_dict(st), refused
            )
            if refused is None:
                assert resumes is not None
                m.epoch, m.resume, m.start_iter = resumes[0], resumes, 0
                no_indices = False
        elif op == "state":
            st_ = attempt("state_dict", None, s.state_dict, None)
            assert json.loads(json.dumps(st_)) == st_ and set(st_) == set(FIELDS)
            assert st_ == before
        else:
            CASES.add(("indices", f"{m.epoch}/{m.resume}/{m.start_iter}"))
        check_yields(s, m.want(), indices=not no_indices)


# --- registry ---------------------------------------------------------------------------------

HASHABLE = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["Foo", "Bar", "Bar_v2", "Foo_", "foo", "ResumableRandomSampler", "ResumableSampler", ""]
    ),
    st.none(),
    ANY_INTS,
    st.floats(),
    st.binary(max_size=3),
    st.tuples(st.integers(0, 3)),
    st.sampled_from([object(), int, np.int64(3), Decimal("NaN")]),
)


def fresh_registry() -> tuple[rs.Registry, dict[str, Any]]:
    reg = rs.Registry("hostile")

    class Foo:
        pass

    class Bar:
        pass

    reg.register(Foo)
    reg.register(Bar, suffix="v2")
    return reg, {"Foo": Foo, "Bar_v2": Bar}


@HOSTILE
@given(name=HASHABLE, suffix=st.one_of(st.none(), HASHABLE), by_create=st.booleans())
def test_registry_get_and_create_sampler(name: Any, suffix: Any, by_create: bool) -> None:
    if by_create:
        refused = (
            None
            if name in rs.SAMPLER_REGISTRY
            else Refused((KeyError,), "registry")
            if isinstance(name, str)
            else Refused((TypeError,), "type_name")
        )
        s = attempt(
            "create_sampler(type_name)",
            name,
            lambda: (
                rs.create_sampler(name, Sized(5), num_replicas=1, rank=0)
                if name == "ResumableDistributedSampler"
                else rs.create_sampler(name, Sized(5))
            ),
            refused,
        )
        if s is not None:
            assert type(s).__name__ == name
            assert sorted(s) == list(range(5))
        return
    reg, table = fresh_registry()
    want = table.get(name) if isinstance(name, str) else None
    fallback = want is None and suffix is not None
    if fallback:
        want = table.get(f"{name}_{suffix}")
    if not isinstance(name, str):
        refused = Refused((TypeError,), "name")
    else:
        refused = None if want is not None else Refused((KeyError,), "hostile")
    with pytest.warns(UserWarning) if fallback and want is not None else nullcontext():
        got = attempt(
            "Registry.get(name, suffix)", (name, suffix), lambda: reg.get(name, suffix), refused
        )
    assert got is want


@HOSTILE
@given(
    obj_name=st.text(max_size=10).filter(str.isidentifier) | st.sampled_from(["Foo", "Bar"]),
    kind=st.sampled_from(["class", "function"]),
    suffix=st.one_of(st.none(), st.text(max_size=4), NON_INTS, ANY_INTS),
    decorator=st.booleans(),
)
def test_registry_register(obj_name: str, kind: str, suffix: Any, decorator: bool) -> None:
    reg, table = fresh_registry()
    obj: Any = type(obj_name, (), {}) if kind == "class" else _function_named(obj_name)
    name = f"{obj_name}_{suffix}" if isinstance(suffix, str) else obj_name
    refused = Refused((ValueError,), "hostile") if name in table else None

    def register() -> Any:
        return reg.register(suffix=suffix)(obj) if decorator else reg.register(obj, suffix)

    got = attempt("Registry.register(obj, suffix)", (obj_name, suffix), register, refused)
    if refused is None:
        assert got is obj and reg.get(name) is obj
        with pytest.raises(ValueError, match=re.escape(repr(name))):
            reg.register(obj, suffix)  # twice
    assert all(reg.get(k) is v for k, v in table.items())


def _function_named(name: str) -> Callable[[], None]:
    def f() -> None:
        return None

    f.__name__ = name
    return f


# --- known bugs -------------------------------------------------------------------------------


class Len:
    def __init__(self, v: Any) -> None:
        self.v = v

    def __len__(self) -> Any:
        return self.v

    def __repr__(self) -> str:
        return f"Len({self.v!r})"


@pytest.mark.parametrize(
    "data", [Len(-1), Len(2**63), Len(2**64), Len(1.5), torch.tensor(5), np.array(5)], ids=repr
)
def test_bad_dataset_lengths_name_the_argument(data: Any) -> None:
    for make_sampler, name in [
        (lambda: ResumableRandomSampler(data), "data_source"),
        (lambda: ResumableSequentialSampler(data), "data_source"),
        (lambda: ResumableDistributedSampler(data, 2, 0), "dataset"),
    ]:
        with pytest.raises((ValueError, TypeError), match=name):
            make_sampler()


@pytest.mark.parametrize(("w", "r"), [(2**64, 0), (2**70, 5), (2**65, 2**64)])
def test_huge_num_replicas_and_rank(w: int, r: int) -> None:
    try:
        s = ResumableDistributedSampler(Sized(10), w, r, seed=3)
    except ValueError as e:
        assert re.search("num_replicas|rank", str(e))
        return
    assert list(s) == [torch_perm(10, 3)[r % 10]]  # G(r) = P[r mod n], docs/distributed.md


@pytest.mark.parametrize(("start_iter", "b"), [(2**64, 1), (2**62, 4), (1, 2**64)])
def test_indices_past_2_pow_64(start_iter: int, b: int) -> None:
    s = ResumableRandomSampler(Sized(10), batch_size=b)
    s.start_iter = start_iter
    assert list(copy.deepcopy(s)) == []
    assert s.indices().tolist() == []


def test_numpy_bools_are_bools() -> None:
    s = ResumableDistributedSampler(Sized(10), 2, 1, shuffle=np.False_, drop_last=np.True_)
    assert list(s) == [1, 3, 5, 7, 9]


def test_torch_bool_tensors_are_not_ints() -> None:
    t = torch.tensor(True)
    with pytest.raises(TypeError, match="batch_size"):
        ResumableRandomSampler(Sized(10), batch_size=t)
    with pytest.raises(TypeError, match="n should"):
        rs.randperm(t)
    s = ResumableRandomSampler(Sized(10))
    with pytest.raises(TypeError, match="start_iter"):
        s.start_iter = t


@pytest.mark.parametrize("obj", [42, object(), "Foo"], ids=repr)
def test_registering_an_object_without_a_name(obj: Any) -> None:
    with pytest.raises((TypeError, ValueError), match=r"obj|__name__"):
        rs.Registry("r").register(obj)


@pytest.mark.parametrize(
    "call",
    [
        lambda: rs.SAMPLER_REGISTRY.get(["ResumableRandomSampler"]),  # type: ignore[arg-type]
        lambda: rs.create_sampler({"a": 1}, Sized(3)),  # type: ignore[arg-type]
        lambda: [] in rs.SAMPLER_REGISTRY,
    ],
    ids=["get(list)", "create_sampler(dict)", "list in registry"],
)
def test_unhashable_registry_names(call: Callable[[], Any]) -> None:
    try:
        result = call()
    except KeyError as e:
        assert "ResumableRandomSampler" in str(e)  # lists the registered names
    except TypeError as e:
        assert re.search(r"\b(name|type_name)\b", str(e)), str(e)
    else:
        assert result is False  # `x in registry` is simply False


def test_state_field_array() -> None:
    s = ResumableRandomSampler(Sized(10))
    state = {**s.state_dict(), "format": np.array([1, 2])}
    with pytest.raises(ValueError, match="'format'"):
        s.load_state_dict(state)


# --- the mixture, length-grouped and token-budget samplers, the integrations, the CLI ---------
#
# Every argument, method argument and state field below is fed every value of VALUES. A call
# either works and gives the contract's result, or raises ValueError/TypeError whose message
# names the argument (never OverflowError, a panic or a hang). The result of an accepted
# constructor argument is checked against a sampler built with the plain int (or bool, or str)
# the contract reads it as, and that one against the references: transformers'
# ``get_length_grouped_indices`` and torch's ``DistributedSampler`` sharding for the
# length-grouped order, the documented packing rule for token-budget batches (test_length), and
# torch's randperm for each source's cycle of a torch-ordered mixture. A loaded state that is
# accepted must continue its epoch exactly: the rest of that epoch from its offset.


class BrokenIndex:
    """``__index__`` raises."""

    def __index__(self) -> int:
        raise ZeroDivisionError("broken __index__")

    def __repr__(self) -> str:
        return "BrokenIndex()"


class BadIndex:
    """``__index__`` returns a float."""

    def __index__(self) -> Any:
        return 2.0

    def __repr__(self) -> str:
        return "BadIndex()"


class BrokenLen:
    """``__len__`` raises."""

    def __len__(self) -> int:
        raise RuntimeError("broken __len__")

    def __repr__(self) -> str:
        return "BrokenLen()"


class BrokenIter:
    """A sequence whose iteration raises."""

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int) -> int:
        raise RuntimeError("broken __getitem__")

    def __repr__(self) -> str:
        return "BrokenIter()"


VALUES: list[Any] = [
    -1,
    0,
    1,
    2,
    3,
    7,
    2**31,
    2**32,
    2**53 + 1,
    2**62,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    2**100,
    -(2**63),
    -(2**63) - 1,
    -(2**100),
    True,
    False,
    np.True_,
    torch.tensor(True),
    1.0,
    2.5,
    -0.0,
    float("nan"),
    float("inf"),
    -float("inf"),
    np.float64(3.0),
    np.float32(1.0),
    np.float16(2.0),
    torch.tensor(2.0),
    np.int8(3),
    np.int16(-2),
    np.int32(5),
    np.int64(2**62),
    np.int64(-(2**63)),
    np.uint8(2),
    np.uint16(7),
    np.uint32(2**32 - 1),
    np.uint64(2**64 - 1),
    torch.tensor(3),
    torch.tensor(-4),
    np.array(4),
    IndexOnly(5),
    IndexOnly(2**64),
    IndexOnly(-1),
    BrokenIndex(),
    BadIndex(),
    BrokenLen(),
    BrokenIter(),
    complex(1, 0),
    Decimal(3),
    Fraction(4, 1),
    Fraction(1, 3),
    "1",
    "",
    "torch",
    "lazy",
    b"1",
    None,
    [1, 2],
    [0] * 100_000,
    (3,),
    {"a": 1},
    range(3),
    object(),
    np.array([1, 2]),
    np.zeros((2, 2), dtype=np.int64),
]
assert len({key(v) for v in VALUES}) >= 40


def plain(v: Any, lo: int | None = None, hi: int | None = None) -> int | None:
    """The int the contract reads ``v`` as, if it is in ``[lo, hi]``; None if it is refused."""
    try:
        i = as_index(v)
    except Exception:
        return None
    if i is None or (lo is not None and i < lo) or (hi is not None and i > hi):
        return None
    return i


def attempt_named(where: str, value: Any, call: Callable[[], Any], *names_: str) -> Any:
    """Run ``call``: it works (the result is returned) or raises ValueError/TypeError naming one
    of ``names_``; anything else (OverflowError, a panic, SystemError) fails the test."""
    CASES.add((where, key(value)))
    CALLS[0] += 1
    try:
        return call()
    except BaseException as e:
        what = f"{where}={key(value)}: {type(e).__name__}: {str(e)[:300]}"
        assert isinstance(e, (ValueError, TypeError)), what
        assert type(e).__name__ != "PanicException", what
        assert any(re.search(names(n), str(e)) for n in names_), what
        return Refused((type(e),), str(e))


def head(s: Any, k: int = 40) -> list[Any]:
    return list(itertools.islice(iter(s), k))


def observe(s: Any) -> tuple[Any, ...]:
    """What the contract fixes of a new sampler: its length, its first items, its state."""
    return len(s), head(s), s.state_dict()


# -- the constructors --

MIX = {
    "sources": [7, 3, 12],
    "weights": [3, 1, 5],
    "num_samples": None,
    "seed": 11,
    "batch_size": 2,
    "num_replicas": 2,
    "rank": 1,
    "drop_last": False,
    "permutation": "torch",
}
LG = {
    "lengths": [1 + (i * 37) % 50 for i in range(57)],
    "batch_size": 4,
    "seed": 5,
    "megabatch_mult": None,
    "num_replicas": 2,
    "rank": 1,
    "drop_last": False,
}
TB = {
    "lengths": [1 + (i * 37) % 50 for i in range(57)],
    "max_tokens": 120,
    "seed": 5,
    "megabatch_mult": None,
    "max_batch_size": None,
    "num_replicas": 2,
    "rank": 1,
    "drop_last": False,
    "oversized": "error",
}
SH = {
    "shard_sizes": [5, 0, 9, 3, 7, 4, 6],
    "window": 2,
    "seed": 11,
    "batch_size": 2,
    "num_replicas": 2,
    "rank": 1,
    "drop_last": False,
}
KINDS = {
    "mixture": (rs.ResumableMixtureSampler, MIX),
    "grouped": (rs.ResumableLengthGroupedSampler, LG),
    "budget": (rs.ResumableTokenBudgetBatchSampler, TB),
    "shard": (rs.ResumableShardSampler, SH),
}
LIST_ARGS = ("lengths", "sources", "weights", "shard_sizes")


def build(kind: str, **over: Any) -> Any:
    cls, base = KINDS[kind]
    kw = {**base, **over}
    if kind == "mixture":
        return cls(kw.pop("sources"), kw.pop("weights"), **kw)
    if kind == "shard":
        return cls(kw.pop("shard_sizes"), **kw)
    return cls(kw.pop("lengths"), kw.pop("batch_size" if kind == "grouped" else "max_tokens"), **kw)


def expected_arg(kind: str, arg: str, v: Any) -> tuple[bool, Any]:
    """Whether ``arg=v`` is in the contract's domain, and the plain value it stands for (for
    the list arguments, None: they are checked by their own rules below)."""
    bools = ("drop_last",)
    if arg in bools:
        return isinstance(v, bool | np.bool_), bool(v) if isinstance(v, bool | np.bool_) else None
    if arg == "permutation":
        ok = isinstance(v, str) and v in ("lazy", "torch", "identity")
        return ok, v
    if arg == "oversized":
        return isinstance(v, str) and v in ("error", "alone"), v
    if arg == "seed":
        p = plain(v, SEED_MIN, SEED_END - 1)
        return p is not None, p
    if arg == "num_replicas":  # None: the process group's, 1 here (there is none)
        p = 1 if v is None else plain(v, 1, MAX_LEN)
        return p is not None and p > 1, p  # rank 1 needs num_replicas >= 2
    if arg == "rank":  # None: the process group's, 0 here
        p = 0 if v is None else plain(v, 0, 1)
        return p is not None, p
    if arg == "max_tokens":  # at least the longest sample (50), as oversized="error" says
        p = plain(v, 50, SEED_END - 1)
        return p is not None, p
    if arg == "window":
        p = plain(v, 1, MAX_LEN)
        return p is not None, p
    if arg in ("batch_size", "megabatch_mult"):
        if v is None and arg == "megabatch_mult":
            return True, None
        p = plain(v, 1)
        return p is not None, p
    if arg == "max_batch_size":
        if v is None:
            return True, None
        p = plain(v, 1, SEED_END - 1)
        return p is not None, p
    if arg == "num_samples":
        if v is None:
            return True, None
        p = plain(v, 0, MAX_LEN)
        return p is not None, p
    raise AssertionError(arg)


@pytest.mark.parametrize(
    ("kind", "arg"),
    [(k, a) for k, (_, b) in KINDS.items() for a in b if a not in LIST_ARGS],
)
def test_newer_sampler_constructor_arguments(kind: str, arg: str) -> None:
    """Each argument of each constructor, every value kind: works as its plain value does, or
    is refused naming it."""
    canon: dict[Any, tuple[Any, ...]] = {}
    for v in VALUES:
        ok, p = expected_arg(kind, arg, v) if arg not in ("sources", "weights") else (None, None)
        also = ("rank",) if arg == "num_replicas" else ()
        got = attempt_named(f"{kind}({arg})", v, lambda v=v: build(kind, **{arg: v}), arg, *also)
        if ok is None:  # sources, weights: checked in the test of list arguments
            continue
        if not ok:
            assert isinstance(got, Refused), f"{kind}({arg}={key(v)}) was accepted"
            continue
        assert not isinstance(got, Refused), f"{kind}({arg}={key(v)}): {got}"
        seen = attempt_named(f"{kind}({arg}) use", v, lambda s=got: observe(s), arg, "epoch")
        if isinstance(seen, Refused):
            continue
        if p not in canon:
            canon[p] = observe(build(kind, **{arg: p}))
        assert seen == canon[p], f"{kind}({arg}={key(v)})"


def test_newer_sampler_list_arguments() -> None:
    """``sources``, ``weights``, ``lengths`` and ``shard_sizes`` whole, and with one element
    replaced."""
    for v in VALUES:
        for kind, arg in (("mixture", "sources"), ("mixture", "weights")):
            for value in (v, [v, *MIX[arg][1:]]):  # type: ignore[index]
                got = attempt_named(
                    f"{kind}({arg}{'[0]' if value is not v else ''})",
                    value,
                    lambda value=value, kind=kind, arg=arg: build(  # type: ignore[misc]
                        kind, permutation="lazy", **{arg: value}
                    ),
                    arg,
                    "sources",
                    "weights",
                )
                if not isinstance(got, Refused):
                    observe(got)
        for kind in ("grouped", "budget"):
            for value in (v, [v, 3, 4]):
                got = attempt_named(
                    f"{kind}(lengths{'[0]' if value is not v else ''})",
                    value,
                    lambda value=value, kind=kind: build(kind, lengths=value),  # type: ignore[misc]
                    "lengths",
                    "max_tokens",
                )
                if not isinstance(got, Refused):
                    attempt_named(
                        f"{kind}(lengths) use", value, lambda g=got: observe(g), "lengths"
                    )
        for value in (v, [v, *SH["shard_sizes"][1:]]):  # type: ignore[index]
            got = attempt_named(
                f"shard(shard_sizes{'[0]' if value is not v else ''})",
                value,
                lambda value=value: build("shard", shard_sizes=value),  # type: ignore[misc]
                "shard_sizes",
                "shard_sizes[0]",
            )
            if not isinstance(got, Refused):
                check_shard_sizes(value, got)


def check_shard_sizes(value: Any, s: Any) -> None:
    """A sampler over accepted (int-like) shard sizes is the one over their plain ints, and
    its two ranks read every index of ``ConcatDataset`` over the shards once (plus padding)."""
    sizes = [plain(x, 0, MAX_LEN) for x in value]
    assert all(x is not None for x in sizes), f"shard_sizes={key(value)} was accepted"
    same = build("shard", shard_sizes=sizes)
    assert observe(s) == observe(same)
    if sum(sizes) > 10**5:  # type: ignore[arg-type]
        return
    ranks = [list(build("shard", shard_sizes=sizes, rank=r)) for r in (0, 1)]
    got = sorted(ranks[0] + ranks[1])
    assert set(got) == set(range(len(tud.ConcatDataset([range(z) for z in sizes]))))  # type: ignore[arg-type]


def test_the_plain_configurations_follow_the_references() -> None:
    """The samplers the accepted arguments are compared with yield the references' orders."""
    from test_length import budget_reference, hf_order, torch_share

    lengths = LG["lengths"]
    want = torch_share(hf_order(lengths, 4, None, 5, 0), 2, 1, False)
    assert list(build("grouped")) == want
    tb = build("budget")
    batches = budget_reference(lengths, 120, tb.megabatch_size, None, 5)
    assert list(tb) == torch_share(batches, 2, 1, False)
    mix = build("mixture", num_replicas=1, rank=0)
    whole = list(mix)
    assert list(build("mixture")) == torch_share(whole, 2, 1, False)
    starts = np.cumsum([0, *MIX["sources"]])
    drawn: dict[int, list[int]] = {}
    for i in whole:
        k = int(np.searchsorted(starts, i, side="right")) - 1
        drawn.setdefault(k, []).append(i - int(starts[k]))
    for k, items in drawn.items():  # each source's first cycle is torch.randperm(n_k), seed 11
        n = MIX["sources"][k]
        assert items[:n] == torch_perm(n, 11)[: len(items[:n])], k


# -- methods --


def fresh(kind: str, **over: Any) -> Any:
    """A one-replica sampler of ``kind`` (so a global position is this rank's position)."""
    return build(kind, num_replicas=1, rank=0, **over)


def epoch_items(kind: str, epoch: int) -> list[Any]:
    s = fresh(kind)
    s.set_epoch(epoch)
    return list(s)


METHODS: dict[str, list[str]] = {
    "shard": ["set_epoch", "start_iter", "seek.epoch", "seek.batches"],
    "mixture": ["set_epoch", "start_iter", "seek.epoch", "seek.batches", "counts", "reweight"],
    "grouped": ["set_epoch", "start_iter", "seek.epoch", "seek.batches"],
    "budget": [
        "set_epoch",
        "start_iter",
        "seek.epoch",
        "seek.batches",
        "num_batches",
        "batch.k",
        "batch.epoch",
    ],
}


def method_call(kind: str, s: Any, method: str, v: Any) -> Callable[[], Any]:
    if method == "set_epoch":
        return lambda: s.set_epoch(v)
    if method == "start_iter":
        return lambda: setattr(s, "start_iter", v)
    if method == "seek.epoch":
        return lambda: s.seek(v, 1)
    if method == "seek.batches":
        return lambda: s.seek(1, v)
    if method == "counts":
        return lambda: s.counts(v)
    if method == "reweight":
        return lambda: s.load_state_dict(s.state_dict(), reweight=v)
    if method == "num_batches":
        return lambda: s.num_batches(v)
    if method == "batch.k":
        return lambda: s.batch(v)
    assert method == "batch.epoch"
    return lambda: s.batch(0, v)


METHOD_NAMES = {
    "set_epoch": ("epoch",),
    "start_iter": ("start_iter",),
    "seek.epoch": ("epoch",),
    "seek.batches": ("batches",),
    "counts": ("position",),
    "reweight": ("reweight",),
    "num_batches": ("epoch",),
    "batch.k": ("k",),
    "batch.epoch": ("epoch",),
}


@pytest.mark.parametrize(("kind", "method"), [(k, m) for k, ms in METHODS.items() for m in ms])
def test_newer_sampler_method_arguments(kind: str, method: str) -> None:
    """Each method argument, every value kind: the call works, and the sampler then yields what
    the contract says (or refuses to iterate naming the epoch), or the call is refused naming
    the argument and the sampler yields what it yielded before."""
    names_ = METHOD_NAMES[method]
    for v in VALUES:
        s = fresh(kind)
        s.set_epoch(2)
        before = list(copy.deepcopy(s))
        got = attempt_named(f"{kind}.{method}", v, method_call(kind, s, method, v), *names_)
        i = plain(v)
        if v is None and method in ("num_batches", "batch.epoch", "reweight"):
            i = 2  # the current epoch; reweight: the sampler's attribute
        if isinstance(got, Refused):
            assert list(s) == before, f"{kind}.{method}({key(v)}) moved the sampler"
            continue
        if method in ("counts", "num_batches", "batch.k", "batch.epoch"):
            assert i is not None, f"{kind}.{method}({key(v)}) was accepted"
            check_query(kind, s, method, i, got)
            continue
        if method == "reweight":
            assert v is None or isinstance(v, bool | np.bool_), f"reweight={key(v)} was accepted"
            assert list(s) == before
            continue
        assert i is not None, f"{kind}.{method}({key(v)}) was accepted"
        out = attempt_named(f"{kind}.{method} use", v, lambda s=s: list(s), "epoch")
        if isinstance(out, Refused):
            assert method in ("set_epoch", "seek.epoch"), (method, v, out)
            continue
        if method == "set_epoch":
            assert out == epoch_items(kind, i)
        elif method == "start_iter":
            assert out == before[i * s.batch_size :]
        elif method == "seek.epoch":
            assert out == epoch_items(kind, i)[s.batch_size :]
        else:  # seek(1, batches)
            assert out == epoch_items(kind, 1)[i * s.batch_size :]


def check_query(kind: str, s: Any, method: str, i: int, got: Any) -> None:
    """An accepted query answers as the contract says."""
    if method == "counts":
        draws = [0] * len(MIX["sources"])
        whole = list(fresh(kind)) * 2 if i <= 2 * sum(MIX["sources"]) else None
        if whole is not None:
            starts = np.cumsum([0, *MIX["sources"]])
            for j in range(i):  # epochs 0 and 1 of the stream, position by position
                e, p = divmod(j, sum(MIX["sources"]))
                index = epoch_items(kind, e)[p]
                draws[int(np.searchsorted(starts, index, side="right")) - 1] += 1
            assert got == draws
        else:
            assert sum(got) == i
    elif method == "num_batches":
        assert got == len(epoch_items(kind, i))
    elif method == "batch.k":
        assert 0 <= i < s.num_batches() and got == s.batch(i, 2)
        assert got in epoch_items(kind, 2)
    else:
        assert got in epoch_items(kind, i)


# -- state dicts --


def saved_state(kind: str, epoch: int = 2, consumed: int = 5) -> dict[str, Any]:
    s = fresh(kind)
    s.set_epoch(epoch)
    head(s, consumed)
    return s.state_dict()  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", list(KINDS))
def test_newer_sampler_state_fields(kind: str) -> None:
    """Every field of a saved state replaced by every value kind (and by values near its own):
    the state is refused naming the field (and the sampler yields what it did), or it loads and
    the sampler continues the state's epoch exactly from the state's offset."""
    state = saved_state(kind)
    assert state["offset"] == 5 and state["epoch"] == 2
    whole: dict[int, list[Any]] = {}
    for field in state:
        near = [state[field]]
        if type(state[field]) is int:
            near += [state[field] + 1, state[field] - 1, np.int64(state[field])]
        if isinstance(state[field], list):
            near += [[*state[field], 0], state[field][:-1], [[-1]], [2**64], [None]]
        for v in [*VALUES, *near]:
            s = fresh(kind)
            s.set_epoch(1)
            before = head(copy.deepcopy(s), 10**6)
            changed = {**state, field: v}
            got = attempt_named(
                f"{kind}.load_state_dict({field})",
                v,
                lambda s=s, changed=changed: s.load_state_dict(changed),
                f"'{field}'",
                "'weight_starts'/'weights'",
                "state",
            )
            if isinstance(got, Refused):
                assert head(s, 10**6) == before, f"{kind}: {field}={key(v)} moved the sampler"
                continue
            e, offset = changed["epoch"], changed["offset"]
            if e not in whole:
                whole[e] = epoch_items(kind, e)
            assert s.epoch == e
            assert head(s, 10**6) == whole[e][offset:], f"{kind}: {field}={key(v)}"
    for v in VALUES:  # the whole state
        s = fresh(kind)
        attempt_named(f"{kind}.load_state_dict", v, lambda s=s, v=v: s.load_state_dict(v), "state")
    for field in state:  # a field missing, or one more
        s = fresh(kind)
        rest = {k: x for k, x in state.items() if k != field}
        with pytest.raises(ValueError, match=re.escape(repr(field))):
            s.load_state_dict(rest)
        with pytest.raises(ValueError, match=r"unknown|extra"):
            s.load_state_dict({**state, f"{field}_": 1})


# -- the integrations --


def test_integration_arguments() -> None:
    """``LoaderProgress(dataloader)`` (and its ``load_state_dict`` and ``iterate``) and
    ``SamplerResume()``: a loader without a resumable sampler, or any other value, is refused
    naming it; a refused state or epoch leaves the progress where it was."""
    from resumable_samplers.accelerate import LoaderProgress
    from resumable_samplers.lightning import SamplerResume

    assert SamplerResume()._resuming is False
    with pytest.raises(TypeError):
        SamplerResume(1)  # type: ignore[call-arg]
    for v in [*VALUES, tud.DataLoader(range(5)), tud.DataLoader(range(5), sampler=[0, 1])]:
        got = attempt_named(
            "LoaderProgress(dataloader)", v, lambda v=v: LoaderProgress(v), "dataloader", "sampler"
        )
        assert isinstance(got, Refused), key(v)
        assert re.search(r"dataloader|DataLoader's sampler", got.name), got.name
    data = list(range(10))
    sampler = ResumableRandomSampler(data, seed=3, batch_size=2)
    loader = tud.DataLoader(data, batch_size=2, sampler=sampler)
    progress = LoaderProgress(loader)
    order = torch_perm(10, 3 + 1)
    for field in ("epoch", "batches"):
        for v in VALUES:
            state = {"epoch": 1, "batches": 2, field: v}
            got = attempt_named(
                f"LoaderProgress.load_state_dict({field})",
                v,
                lambda state=state: progress.load_state_dict(state),
                field,
            )
            lo = 0 if field == "batches" else None
            i = plain(v, lo)
            if isinstance(got, Refused):
                assert i is None, f"{field}={key(v)} refused: {got.name}"
                assert progress.state_dict() == {"epoch": 0, "batches": 0}
                continue
            assert i is not None, f"{field}={key(v)} was accepted"
            assert progress.state_dict() == {**{"epoch": 1, "batches": 2}, field: i}
            progress.load_state_dict({"epoch": 0, "batches": 0})
    progress.load_state_dict({"epoch": 1, "batches": 2})
    for v in VALUES:
        got = attempt_named(
            "LoaderProgress.iterate(epoch)", v, lambda v=v: progress.iterate(v), "epoch"
        )
        i = plain(v)
        assert isinstance(got, Refused) == (i is None), key(v)
    batches = [b.tolist() for b in progress.iterate(np.int64(1))]
    assert [i for b in batches for i in b] == order[4:]


# --- the count (last, so that it counts every case above) ---------------------------------


def test_distinct_cases_ran(record_property: Callable[[str, object], None]) -> None:
    """The count reported in docs/reliability.md (run the whole module to get it).

    The count is this test's captured output (``-rP`` shows it in the summary, not among the
    progress dots), a property of its JUnit XML record, and its failure message.
    """
    if not CASES:
        pytest.skip("run the whole module to count the cases")
    count = f"hostile input: {len(CASES)} distinct cases, {CALLS[0]} calls"
    print(count)
    record_property("distinct_cases", len(CASES))
    record_property("calls", CALLS[0])
    assert len(CASES) >= 1000, count

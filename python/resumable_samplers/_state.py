"""The resume state of a sampler: building it and checking a loaded one field by field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from resumable_samplers import _checks, _core
from resumable_samplers._limits import SEED_RANGE, text
from resumable_samplers.permutation import same_order

FORMAT = "resumable-samplers"
VERSION = 1
FIELDS = (
    "format",
    "version",
    "epoch",
    "seed",
    "permutation",
    "dataset_length",
    "shuffle",
    "drop_last",
    "offset",
    "num_replicas",
)


class Settings(NamedTuple):
    """What determines a sampler's order; a loaded state must agree with all but the epoch."""

    n: int
    num_replicas: int
    rank: int
    shuffle: bool
    drop_last: bool
    permutation: str
    seed: int
    epoch: int

    @classmethod
    def of(
        cls,
        n: int,
        num_replicas: Any,
        rank: Any,
        shuffle: Any,
        drop_last: Any,
        permutation: str,
        seed: Any,
        epoch: Any,
    ) -> Settings:
        """The settings from a sampler's attributes, which users may set directly (as with
        torch's samplers): checked, and normalised to plain ints and bools."""
        num_replicas, rank = _checks.replicas(num_replicas, rank)
        return cls(
            n,
            num_replicas,
            rank,
            _checks.as_bool("shuffle", shuffle),
            _checks.as_bool("drop_last", drop_last),
            permutation,
            _checks.as_int("seed", seed),
            _checks.as_int("epoch", epoch),
        )


def epoch_end(n: int, num_replicas: int, drop_last: bool) -> int:
    """The end of an epoch of ``n`` items over ``num_replicas`` ranks, in global positions:
    every rank's share (the core's sharding rule) times ``num_replicas``."""
    return _core.shard_len(n, num_replicas, 0, 0, drop_last) * num_replicas


def make(settings: Settings, offset: int, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The state dict: the settings' epoch and the global position ``offset`` consumed in it,
    plus a sampler's own ``extra`` fields."""
    return {
        **(extra or {}),
        "format": FORMAT,
        "version": VERSION,
        "epoch": settings.epoch,
        "seed": settings.seed,
        "permutation": settings.permutation,
        "dataset_length": settings.n,
        "shuffle": settings.shuffle,
        "drop_last": settings.drop_last,
        "offset": offset,
        "num_replicas": settings.num_replicas,
    }


def _field_int(state: Mapping[str, Any], name: str) -> int:
    value = state[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"state field {name!r} should be an int, got {value!r}")
    return value


def _field_bool(state: Mapping[str, Any], name: str) -> bool:
    value = state[name]
    if not isinstance(value, bool):
        raise ValueError(f"state field {name!r} should be a bool, got {value!r}")
    return value


def _same(name: str, saved: object, ours: object) -> None:
    if saved != ours:
        raise ValueError(
            f"state field {name!r} is {saved!r} but this sampler has {ours!r}; resuming would "
            "continue in a different order"
        )


def _same_permutation(a: str, b: str, n: int) -> bool:
    """Whether the orders named ``a`` and ``b`` permute ``n`` items alike (the two torch
    generations do below 214,748,364 items); an unknown name matches only itself."""
    try:
        return same_order(a, b, n)
    except ValueError:
        return a == b


def _same_order(sizes: tuple[int, ...], saved: tuple[bool, str, int], ours: Settings) -> None:
    """Refuse a state whose order differs from ours, naming the first field that differs.

    ``sizes`` are the lengths of the permutations the order is made of. Unshuffled orders (and
    permutations of at most one item) are the identity whatever the seed and permutation; seeds
    are taken modulo 2**64, as torch's generator and the lazy order do.
    """
    shuffle, permutation, seed = saved
    if max(sizes, default=0) <= 1 or not (shuffle or ours.shuffle):
        return
    _same("shuffle", shuffle, ours.shuffle)
    if not all(_same_permutation(permutation, ours.permutation, n) for n in sizes):
        _same("permutation", permutation, ours.permutation)
    if seed % _checks.SEED_END != ours.seed % _checks.SEED_END:
        _same("seed", seed, ours.seed)


def as_mapping(state: Any) -> Mapping[str, Any]:
    """``state`` if it is a mapping (a state dict), else ``ValueError``."""
    if not isinstance(state, Mapping):
        raise ValueError(f"state should be a dict from state_dict(), got {type(state).__name__}")
    return state


def same_fields(state: Mapping[str, Any], ours: Mapping[str, Any]) -> None:
    """Check that ``state`` has each of a sampler's own fields ``ours``, with our value (an
    ``int``): these fields fix the order, so another value would continue in another one."""
    missing = [name for name in ours if name not in state]
    if missing:
        raise ValueError(f"state is missing field(s) {missing}")
    for name, value in ours.items():
        saved = state[name]
        if type(saved) is int and saved == value:
            continue
        if name == "lengths_fingerprint":
            raise ValueError(
                f"state field 'lengths_fingerprint' is {saved!r} but this sampler's lengths "
                f"have {value}: lengths changed since the state was saved (or belong to another "
                "dataset); resuming would continue in a different order"
            )
        raise ValueError(
            f"state field {name!r} is {saved!r} but this sampler has {value!r}; resuming would "
            "continue in a different order"
        )


TORCHDATA_YIELDED = "yielded"
"""The one field of a torchdata ``StatefulDistributedSampler`` state (torchdata 0.11)."""


def torchdata_yielded(state: Any) -> int | None:
    """The ``yielded`` count of a torchdata ``StatefulDistributedSampler`` state
    (``{"yielded": k}``: this rank's indices handed out by the epoch's iterator), or ``None`` if
    ``state`` is not one.

    Raises:
        ValueError: if ``yielded`` is not a non-negative int.
    """
    if not isinstance(state, Mapping) or set(state) != {TORCHDATA_YIELDED}:
        return None
    value = state[TORCHDATA_YIELDED]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            "state field 'yielded' (a torchdata StatefulDistributedSampler state) should be a "
            f"non-negative int, got {value!r}"
        )
    return value


def read(
    state: Any,
    settings: Settings,
    extra: tuple[str, ...] = (),
    sizes: tuple[int, ...] | None = None,
) -> tuple[int, int]:
    """Check ``state`` against ``settings`` and return its ``(epoch, offset)``.

    A state that describes the same order as ``settings`` is accepted even where a field
    differs (an unshuffled state with another seed, for example). ``extra`` names a sampler's
    own fields, which must be present and which the sampler checks itself. ``sizes`` are the
    lengths of the permutations the sampler's order is made of (by default the one of
    ``settings.n`` items): the two torch generations permute alike only below 214,748,364
    items, so a state saved under the other one is refused if any size reaches that.

    Raises:
        ValueError: naming the first field that is missing, unknown, malformed, newer than this
            library, or that would change the order.
    """
    state = as_mapping(state)
    fields = FIELDS + extra
    unknown = sorted(str(k) for k in state if k not in fields)
    if unknown:
        raise ValueError(f"state has unknown field(s) {unknown}; expected {list(fields)}")
    missing = [k for k in fields if k not in state]
    if missing:
        raise ValueError(f"state is missing field(s) {missing}")
    if not isinstance(state["format"], str) or state["format"] != FORMAT:
        raise ValueError(f"state field 'format' should be {FORMAT!r}, got {state['format']!r}")
    version = _field_int(state, "version")
    if version > VERSION:
        raise ValueError(
            f"state field 'version' is {version}, newer than the format {VERSION} this version "
            "of resumable-samplers reads; upgrade it to load this state"
        )
    if version < 1:
        raise ValueError(f"state field 'version' should be >= 1, got {version}")
    epoch = _field_int(state, "epoch")
    seed = _field_int(state, "seed")
    n = _field_int(state, "dataset_length")
    offset = _field_int(state, "offset")
    replicas = _field_int(state, "num_replicas")
    shuffle = _field_bool(state, "shuffle")
    drop_last = _field_bool(state, "drop_last")
    if not _checks.SEED_MIN <= seed < _checks.SEED_END:
        raise ValueError(f"state field 'seed' should be in {SEED_RANGE}, got {seed}")
    permutation = state["permutation"]
    if not isinstance(permutation, str):
        raise ValueError(f"state field 'permutation' should be a str, got {permutation!r}")
    _same("dataset_length", n, settings.n)
    _same_order((n,) if sizes is None else sizes, (shuffle, permutation, seed), settings)
    _same("drop_last", drop_last, settings.drop_last)
    if replicas < 1:
        raise ValueError(f"state field 'num_replicas' should be >= 1, got {replicas}")
    if replicas > _checks.MAX_LEN:
        raise ValueError(
            f"state field 'num_replicas' should be at most {text(_checks.MAX_LEN)}, got {replicas}"
        )
    end = epoch_end(n, replicas, drop_last)
    if not 0 <= offset <= end:
        raise ValueError(
            f"state field 'offset' should be in [0, {end}] (the end of an epoch of "
            f"{n} items over 'num_replicas' = {replicas}), got {offset}"
        )
    if shuffle:
        try:
            _checks.order_key(seed, epoch, permutation)
        except ValueError as e:
            raise ValueError(f"state field 'epoch' is out of range: {e}") from None
    return epoch, offset

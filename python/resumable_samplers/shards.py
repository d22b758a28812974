"""A lazy, locality-aware shuffle over a sharded dataset that resumes exactly and elastically."""

from __future__ import annotations

import operator
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from resumable_samplers import _checks, _core, _limits, _state
from resumable_samplers._resume import EpochKey
from resumable_samplers.samplers import (
    SAMPLER_REGISTRY,
    ResumableSampler,
    _replicas,
    _ResumableOrder,
)

ORDER_NAME = "shards"
"""The ``permutation`` a shard sampler's state names."""

MAX_LEVEL_REPLICAS = _limits.MAX_LEVEL_REPLICAS
"""The largest ``num_replicas`` a state can be resumed from elastically (a level of its
``levels`` field)."""

# The state fields a shard sampler adds to the shared ones.
_FIELDS = ("window", "shard_count", "shard_digest", "levels")

Levels = tuple[tuple[int, int], ...]


def shard_sizes_array(shard_sizes: Any) -> npt.NDArray[np.int64]:
    """``shard_sizes`` (a sequence of ints, a 1-d integer NumPy array or the path of a ``.npy``
    file holding one) as a contiguous ``int64`` array.

    Raises:
        TypeError: if it is none of those, or holds something other than integers.
        ValueError: if the file cannot be read, the array is not 1-d, or a size is outside
            ``[0, 2**63 - 1]``.
    """
    value = shard_sizes
    if isinstance(value, (str, os.PathLike)):
        try:
            value = np.load(value, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ValueError(f"shard_sizes: cannot read {os.fspath(shard_sizes)!r}: {e}") from None
        if not isinstance(value, np.ndarray):
            raise ValueError(f"shard_sizes: {os.fspath(shard_sizes)!r} holds no single array")
    elif isinstance(value, (bytes, bytearray)) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(
            "shard_sizes should be a sequence of ints, a NumPy array or a .npy path, got "
            f"{type(value).__name__}"
        )
    if not isinstance(value, np.ndarray):
        try:
            arr = np.asarray(value)
        except Exception:  # too big, ragged, or a broken element: checked one by one below
            arr = None
        # Bools would convert silently: look for one before trusting NumPy's conversion.
        if (
            arr is not None
            and arr.dtype.kind in "iu"
            and arr.ndim == 1
            and not any(_checks._is_bool(z) for z in value)
        ):
            value = arr
    if not isinstance(value, np.ndarray):
        for k, z in enumerate(value):
            if _checks._is_bool(z):
                raise TypeError(f"shard_sizes[{k}] should be an integer, got a bool ({z})")
            z = _checks.as_int(f"shard_sizes[{k}]", z)
            if not 0 <= z <= _checks.MAX_LEN:
                raise ValueError(f"shard_sizes[{k}] should be in {_limits.LEN_RANGE}, got {z}")
        value = np.fromiter(value, dtype=np.int64, count=len(value))
    if value.dtype.kind not in "iu":
        raise TypeError(f"shard_sizes should hold integers, got an array of {value.dtype}")
    if value.ndim != 1:
        raise ValueError(f"shard_sizes should be 1-dimensional, got shape {value.shape}")
    if value.dtype.kind == "u" and value.size and int(value.max()) > _checks.MAX_LEN:
        k = int(np.argmax(value > _checks.MAX_LEN))
        raise ValueError(f"shard_sizes[{k}] should be in {_limits.LEN_RANGE}, got {int(value[k])}")
    out = np.array(value, dtype=np.int64)  # a copy: the core reads it without the GIL
    out.flags.writeable = False
    return out


def _level(lv: Any) -> tuple[int, int] | None:
    """A ``[num_replicas, position]`` pair of ints (a list or tuple, NumPy ints too), or None."""
    if not isinstance(lv, (list, tuple)) or len(lv) != 2 or any(map(_checks._is_bool, lv)):
        return None
    try:
        w, k = (operator.index(x) for x in lv)
    except TypeError:
        return None
    return (w, k) if 1 <= w <= MAX_LEVEL_REPLICAS and 0 <= k <= _checks.MAX_LEN else None


def _levels_field(value: Any) -> Levels:
    levels = [_level(lv) for lv in value] if isinstance(value, (list, tuple)) else [None]
    if any(lv is None for lv in levels):
        raise ValueError(
            "state field 'levels' should be a list of [num_replicas, position] pairs of ints "
            f"(num_replicas in [1, {_limits.text(MAX_LEVEL_REPLICAS)}]), got {value!r}"
        )
    return tuple(lv for lv in levels if lv is not None)


@SAMPLER_REGISTRY.register
class ResumableShardSampler(_ResumableOrder, ResumableSampler):
    """A shuffle over a dataset stored in shards that reads few shards at a time, resumes
    exactly and continues with another number of ranks.

    Indices follow ``torch.utils.data.ConcatDataset`` over the shards: shard ``k`` holds
    ``[sum(shard_sizes[:k]), sum(shard_sizes[:k + 1]))``. Each epoch puts the shards in a new
    keyed order, cuts that stream of samples into ``num_replicas`` contiguous parts of equal
    size (each cut splits at most one shard) and reads each part in windows of ``window``
    consecutive shards, whose samples are shuffled by a keyed bijection. So every index is read
    once per epoch over the ranks (padding and ``drop_last`` as in ``DistributedSampler``: every
    rank reads ``ceil(n / num_replicas)``, or ``floor`` with ``drop_last``), a rank has at most
    ``window`` shards open at a time (an LRU cache of ``window`` shards reads each once), the whole
    epoch loads at most ``K + 2 * num_replicas`` shards, and two adjacent samples come from the
    same shard about ``1 / window`` of the time. An epoch is a pure function of
    ``(shard_sizes, window, seed, epoch, num_replicas)``; memory is about 24 bytes per shard,
    no per-sample array, and any position is found in O(log K).

    A state saved by ``W`` ranks and loaded by ``W'`` ranks continues with exactly what the
    ``W`` ranks had left, cut into ``W'`` parts that keep the windows (see ``docs/shards.md``).

    Args:
        shard_sizes: the number of samples of each shard: a sequence of ints, a 1-d integer
            NumPy array, or the path of a ``.npy`` file holding one (up to ``2**63 - 1``
            samples in all).
        window: how many consecutive shards a rank reads at a time, mixing their samples.
        seed: keys the shard order and the windows' shuffles; in ``[-2**63, 2**64)``.
        batch_size: the number of samples per batch (for ``start_iter`` and :meth:`seek`).
        num_replicas: the number of processes; defaults to the process group's, or 1.
        rank: this process's rank; defaults to the process group's, or 0.
        drop_last: give every rank ``floor(n / num_replicas)`` samples, leaving the rest out,
            instead of padding to ``ceil(n / num_replicas)``.
    """

    def __init__(
        self,
        shard_sizes: Sequence[int] | npt.NDArray[np.integer[Any]] | str | os.PathLike[str],
        *,
        window: int = 8,
        seed: int = 0,
        batch_size: int = 1,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ) -> None:
        super().__init__(batch_size)
        self._shard_sizes = shard_sizes_array(shard_sizes)
        self._sizes = _core.ShardSizes(self._shard_sizes)
        self._window = _checks.positive_int("window", window, _checks.MAX_LEN)
        self.num_replicas, self.rank = _replicas(num_replicas, rank)
        self.drop_last = _checks.as_bool("drop_last", drop_last)
        self.seed = _checks.as_int("seed", seed)
        _checks.order_key(self.seed, 0, ORDER_NAME)
        # The resume levels of one epoch (see load_state_dict): its key, and the levels.
        self._resumed: tuple[int, Levels] | None = None

    @property
    def window(self) -> int:
        """How many consecutive shards a rank reads at a time."""
        return self._window

    @property
    def num_shards(self) -> int:
        """The number of shards (empty ones included)."""
        return len(self._shard_sizes)

    def __len__(self) -> int:
        """This rank's number of samples in the current epoch (whatever ``start_iter`` is):
        after an elastic resume, this rank's part of what the saved job had left."""
        return self._rank_len()

    def _rank_len(self) -> int:
        st = self._settings()
        _, key_epoch = _checks.order_key(st.seed, st.epoch, ORDER_NAME)
        if not self._levels(key_epoch):
            return super()._rank_len()
        # A resumed epoch: its length is the built epoch's (cached for the first iterator).
        key = EpochKey.of(st, 0)
        cached = self._resume.cache
        epoch = cached.epoch if cached is not None and cached.key == key else None
        return len(epoch if epoch is not None else self._build_epoch(key))

    def _settings(self) -> _state.Settings:
        return _state.Settings.of(
            self._sizes.n,
            self.num_replicas,
            self.rank,
            True,
            self.drop_last,
            ORDER_NAME,
            self.seed,
            self.epoch,
        )

    def _levels(self, key_epoch: int) -> Levels:
        """The resume levels of the epoch whose unsigned key is ``key_epoch``."""
        resumed = self._resumed
        return resumed[1] if resumed is not None and resumed[0] == key_epoch else ()

    def _build_epoch(self, key: EpochKey) -> _core.Epoch:
        # Cut at the shards' own rule (key.offset is always 0: positions count per rank).
        levels = list(self._levels(key.epoch))
        return self._sizes.epoch(
            self._window, key.seed, key.epoch, levels, key.num_replicas, key.rank, key.drop_last
        )

    def _extra_state(self) -> dict[str, Any]:
        _, epoch = _checks.order_key(self.seed, self.epoch, ORDER_NAME)
        return {
            "window": self._window,
            "shard_count": self._sizes.shards,
            "shard_digest": self._sizes.digest,
            "levels": [list(lv) for lv in self._levels(epoch)],
        }

    def _load_extra(self, state: Mapping[str, Any]) -> None:
        ours = self._extra_state()
        del ours["levels"]  # the saved job's, checked by load_state_dict
        _state.same_fields(state, ours)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a state saved by :meth:`state_dict`, possibly by a job with another
        number of replicas or batch size.

        With the saved ``num_replicas``, every rank continues its own part. With another, the
        epoch continues with what the saved job's ranks had left (each had read ``offset /
        num_replicas`` samples), cut into this job's parts; the state then records the saved
        job as a level (``levels``), so later states resume the same way.

        Raises:
            ValueError: if the state is malformed or belongs to other shards, ``window``, seed
                or ``drop_last``; the message names the field.
        """
        yielded = _state.torchdata_yielded(state)
        if yielded is not None:
            self._resume.skip_indices(yielded)
            return
        self._load_extra(_state.as_mapping(state))
        st = self._settings()
        epoch, offset = _state.read(state, st, _FIELDS)
        levels = _levels_field(state["levels"])
        saved_replicas = state["num_replicas"]
        if saved_replicas != st.num_replicas:
            if saved_replicas > MAX_LEVEL_REPLICAS:
                raise ValueError(
                    f"state field 'num_replicas' is {saved_replicas}; an elastic resume needs "
                    f"at most {_limits.text(MAX_LEVEL_REPLICAS)}"
                )
            if offset % saved_replicas:
                raise ValueError(
                    f"state field 'offset' ({offset}) should be a multiple of 'num_replicas' "
                    f"({saved_replicas}) to resume with {st.num_replicas} replicas"
                )
            levels = (*levels, (saved_replicas, offset // saved_replicas))
            offset = 0
        _, key_epoch = _checks.order_key(st.seed, epoch, ORDER_NAME)
        # The levels must fit the epoch: build it (it is then cached for the first iterator).
        previous = self._resumed
        self._resumed = (key_epoch, levels)
        self._resume.forget()
        try:
            built = self._resume.share(self._build_epoch, st._replace(epoch=epoch), 0)
        except ValueError as e:
            self._resumed = previous
            self._resume.forget()
            raise ValueError(f"state field 'levels' does not fit this epoch: {e}") from None
        end = len(built) * st.num_replicas  # every rank reads as many positions of a level
        if offset > end:
            self._resumed = previous
            self._resume.forget()
            raise ValueError(
                f"state field 'offset' ({offset}) is past the end of the resumed epoch ({end} "
                f"positions after the levels {[list(lv) for lv in levels]})"
            )
        self.set_epoch(epoch)
        self._resume.restore(epoch, offset)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_sizes", None)  # rebuilt from the sizes
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._sizes = _core.ShardSizes(self._shard_sizes)

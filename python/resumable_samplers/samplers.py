"""Resumable samplers, drop-in compatible with helios-ml's ``helios.data.samplers``.

The index order of every sampler equals what helios-ml 2.0.1 and torch yield for the same
arguments; the epoch is computed by the Rust core, cached per epoch, and iterated from the
resume point without building a Python list.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sized
from typing import Any

import numpy as np
import numpy.typing as npt
import torch.utils.data as tud

from resumable_samplers import _checks, _core, _state
from resumable_samplers.permutation import PERMUTATIONS
from resumable_samplers.registry import Registry

SAMPLER_REGISTRY = Registry("sampler")
"""The registry of sampler types that :func:`create_sampler` looks names up in.

Example:
    .. code-block:: python

        @SAMPLER_REGISTRY.register
        class MySampler(ResumableSampler): ...

        SAMPLER_REGISTRY.register(OtherSampler)
"""

Indices = npt.NDArray[np.uint32] | npt.NDArray[np.int64]
# The arguments of ``_core.Epoch``:
# n, num_replicas, rank, offset, drop_last, permutation, seed, epoch.
_EpochArgs = tuple[int, int, int, int, bool, str, int, int]


class _Cursor:
    """Hands out an epoch's indices from a start position and knows where it is."""

    def __init__(
        self,
        epoch: _core.Epoch,
        epoch_number: int,
        base: int,
        start: int,
        on_exhausted: Callable[[_Cursor], None],
    ) -> None:
        self.epoch_number = epoch_number
        self.base = base
        self.length = len(epoch)
        self.done = False
        self._reader = epoch.reader(min(start, self.length))
        self._on_exhausted = on_exhausted

    def __iter__(self) -> Iterator[int]:
        # The core's reader yields the ints (its ``next`` is C code); the generator after it
        # only runs once, at the end, to report the epoch finished.
        return itertools.chain(self._reader, self._finish())

    def _finish(self) -> Iterator[int]:
        self.done = True
        self._on_exhausted(self)
        yield from ()

    @property
    def position(self) -> int:
        """How many indices of the epoch lie before the next one to be yielded."""
        return self._reader.position()


class _ResumableIteration:
    """What every resumable sampler shares: the epoch cache, iteration from the resume point,
    and the resume state.

    The next iteration starts at one place in the epoch, set by whichever came last:
    ``start_iter`` (batches from the start of the epoch) or ``load_state_dict`` (a global
    position). Both are absolute, so the two never add up to a double skip. A loaded position
    at the start of epoch ``E`` is also the end of epoch ``E - 1``: a trainer that has set epoch
    ``E - 1`` gets that epoch as complete (nothing left), then ``E`` whole.
    """

    _batch_size: int
    _start_iter: int
    _cached: tuple[_EpochArgs, _core.Epoch] | None = None
    _cursor: _Cursor | None = None
    # (epoch, global offset) restored by load_state_dict
    _resume: tuple[int, int] | None = None
    # whether the trainer has chosen the epoch with set_epoch
    _epoch_chosen: bool = False

    def _settings(self) -> _state.Settings:
        raise NotImplementedError

    def _set_epoch_value(self, epoch: int) -> None:
        raise NotImplementedError

    def _offset(self, st: _state.Settings) -> int:
        """The global position the next iteration of the current epoch starts from."""
        if self._resume is None:
            return 0
        epoch, offset = self._resume
        if epoch == st.epoch:
            return offset
        if epoch == st.epoch + 1 and offset == 0:
            return st.n  # the current epoch was complete when the state was saved
        return 0

    def _epoch_args(self, st: _state.Settings | None = None) -> _EpochArgs:
        st = st or self._settings()
        if st.shuffle:
            seed, epoch = _checks.order_key(st.seed, st.epoch, st.permutation)
            order = st.permutation
        else:
            order, seed, epoch = "identity", 0, 0
        offset = self._offset(st)
        return (st.n, st.num_replicas, st.rank, offset, st.drop_last, order, seed, epoch)

    def _current_epoch(self, args: _EpochArgs | None = None) -> _core.Epoch:
        args = args or self._epoch_args()
        cached = self._cached
        if cached is not None and cached[0] == args:
            return cached[1]
        self._cached = None  # free the previous epoch before building the next one
        epoch = _core.Epoch(*args)
        self._cached = (args, epoch)
        return epoch

    @property
    def start_iter(self) -> int:
        """The batch of this epoch at which the next iteration starts.

        The next ``iter()`` skips the first ``start_iter * batch_size`` indices of the epoch;
        once that iterator is exhausted it goes back to 0, so later epochs are whole. Setting it
        replaces a position restored by :meth:`load_state_dict`.
        """
        return self._start_iter

    @start_iter.setter
    def start_iter(self, ite: int) -> None:
        self._start_iter = _checks.non_negative_int("start_iter", ite)
        self._resume = None
        self._cursor = None

    def _finish_epoch(self, cursor: _Cursor) -> None:
        if self._cursor is cursor:  # an abandoned iterator finishing late changes nothing
            self._start_iter = 0
            if self._resume is not None and self._resume[1] != 0:
                # A mid-epoch position is used up. A restored epoch start (E, 0) stays: it only
                # tells that epoch E - 1 was complete, however often that epoch is iterated.
                self._resume = None

    def __iter__(self) -> Iterator[int]:
        """Yield this epoch's indices from the resume point on, as Python ints."""
        st = self._settings()
        args = self._epoch_args(st)
        start = self._start_iter * self._batch_size
        epoch = self._current_epoch(args)
        cursor = _Cursor(epoch, st.epoch, args[3], start, self._finish_epoch)
        self._cursor = cursor
        return iter(cursor)

    def indices(self) -> Indices:
        """This epoch's remaining indices (from the resume point on) as a read-only NumPy array.

        ``uint32`` when the dataset has at most ``2**32`` items, else ``int64``. The array is a
        view of the sampler's own buffer, not a copy.
        """
        epoch = self._current_epoch()
        out: Any = epoch.array(min(self._start_iter * self._batch_size, len(epoch)))
        return out  # type: ignore[no-any-return]

    def state_dict(self) -> dict[str, Any]:
        """Where this sampler is: a plain dict of ints, strs and bools (JSON- and
        ``torch.load(weights_only=True)``-safe). O(1); counts the indices drawn from the
        current iterator.

        The position is global (``offset`` indices of the epoch's global sequence are consumed
        across all ``num_replicas`` ranks), so the state can be loaded with another number of
        replicas or another batch size. After the last index of an epoch it points at the start
        of the next epoch.
        """
        st = self._settings()
        cursor = self._cursor
        if cursor is not None and cursor.epoch_number == st.epoch:
            base, position, length, done = cursor.base, cursor.position, cursor.length, cursor.done
        else:
            base = self._offset(st)
            length = _core.shard_len(st.n, st.num_replicas, st.rank, base, st.drop_last)
            position = min(self._start_iter * self._batch_size, length)
            done = False
        if done or (length > 0 and position >= length) or 0 < st.n <= base:
            return _state.make(st, st.epoch + 1, 0)
        return _state.make(st, st.epoch, base + position * st.num_replicas)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a state saved by :meth:`state_dict` (possibly of a job with another
        number of replicas): the next ``iter()`` starts right after the saved position, in the
        saved epoch. A state saved after the last index of epoch ``e`` continues with epoch
        ``e + 1`` from its start; if the trainer has already set epoch ``e`` (it is resuming
        that epoch's loop), epoch ``e`` has nothing left and ``set_epoch(e + 1)`` gives the next
        epoch whole, so no epoch is repeated.

        Raises:
            ValueError: if the state is malformed or was saved by a sampler with another
                dataset length, seed, permutation, ``shuffle`` or ``drop_last``; the message
                names the field.
        """
        st = self._settings()
        epoch, offset = _state.read(state, st)
        if st.n > 0 and offset >= st.n:  # the saved epoch was complete
            epoch, offset = epoch + 1, 0
        self._resume = (epoch, offset)
        self._start_iter = 0
        self._cursor = None
        if not (offset == 0 and self._epoch_chosen and st.epoch == epoch - 1):
            # Restore the saved epoch, unless the trainer is in the epoch the state completed.
            self._set_epoch_value(epoch)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_cached", None)  # rebuilt on demand after unpickling
        state.pop("_cursor", None)  # an iterator's position belongs to its process
        return state


class ResumableSampler(_ResumableIteration, tud.Sampler[int]):
    r"""Base class for samplers that are resumable.

    Let :math:`b_i` be the :math:`i`-th batch of epoch :math:`e`. A sampler is resumable if, when
    training stops right after :math:`b_i` and restarts in epoch :math:`e` with
    ``start_iter = i + 1``, the next batch is :math:`b_{i+1}` and every later batch is the one the
    uninterrupted run would have produced.

    Args:
        batch_size: the number of samples per batch (used to turn ``start_iter`` into indices).
    """

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self._batch_size = _checks.positive_int("batch_size", batch_size)
        self._start_iter = 0
        self._epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; shuffled samplers seed their order with ``seed + epoch``.

        A position restored by :meth:`load_state_dict` applies only to its own epoch.
        """
        self._epoch = _checks.as_int("epoch", epoch)
        self._epoch_chosen = True

    def _set_epoch_value(self, epoch: int) -> None:
        self._epoch = epoch


@SAMPLER_REGISTRY.register
class ResumableRandomSampler(ResumableSampler):
    """Random sampler that can resume mid-epoch; replaces torch's ``RandomSampler``.

    Epoch ``e`` yields ``torch.randperm(len(data_source), generator=torch.Generator().manual_seed(
    seed + e))``, exactly as helios-ml's ``ResumableRandomSampler`` does.

    Args:
        data_source: the dataset to sample from (anything with ``__len__``).
        seed: the random seed; ``seed + epoch`` must lie in ``[-2**63, 2**64)``.
        batch_size: the number of samples per batch.
        permutation: the order of an epoch; one of :data:`PERMUTATIONS`.
    """

    def __init__(
        self,
        data_source: Sized,
        seed: int = 0,
        batch_size: int = 1,
        *,
        permutation: str = "torch",
    ) -> None:
        super().__init__(batch_size)
        self._data_source = data_source
        self._num_samples = _checks.dataset_len("data_source", data_source)
        self._seed = _checks.as_int("seed", seed)
        self._permutation = _checks.choice("permutation", permutation, PERMUTATIONS)
        _checks.order_key(self._seed, 0, self._permutation)

    def __len__(self) -> int:
        """The number of samples in an epoch (whatever ``start_iter`` is)."""
        return self._num_samples

    def _settings(self) -> _state.Settings:
        return _state.Settings(
            self._num_samples, 1, 0, True, False, self._permutation, self._seed, self._epoch
        )


@SAMPLER_REGISTRY.register
class ResumableSequentialSampler(ResumableSampler):
    """Sequential sampler that can resume mid-epoch; replaces torch's ``SequentialSampler``.

    Args:
        data_source: the dataset to sample from (anything with ``__len__``).
        batch_size: the number of samples per batch.
    """

    def __init__(self, data_source: Sized, batch_size: int = 1) -> None:
        super().__init__(batch_size)
        self._data_source = data_source
        self._num_samples = _checks.dataset_len("data_source", data_source)

    def __len__(self) -> int:
        """The number of samples in an epoch (whatever ``start_iter`` is)."""
        return self._num_samples

    def _settings(self) -> _state.Settings:
        return _state.Settings(self._num_samples, 1, 0, False, False, "identity", 0, self._epoch)


@SAMPLER_REGISTRY.register
class ResumableDistributedSampler(_ResumableIteration, tud.DistributedSampler[int]):
    """Distributed sampler that can resume mid-epoch; replaces torch's ``DistributedSampler``.

    Each rank yields exactly what ``torch.utils.data.DistributedSampler`` (and helios-ml's
    ``ResumableDistributedSampler``) yields for the same arguments, but keeps only its own share
    of the epoch, as a compact buffer. ``num_replicas`` and ``rank`` default to the
    ``torch.distributed`` process group's.

    Args:
        dataset: the dataset to sample from (anything with ``__len__``).
        num_replicas: the number of processes taking part; defaults to the world size.
        rank: this process's rank in ``[0, num_replicas)``; defaults to the group rank.
        shuffle: if true, shuffle with ``seed + epoch``; otherwise keep the dataset order.
        seed: the random seed; ``seed + epoch`` must lie in ``[-2**63, 2**64)``.
        drop_last: if true, drop the tail so every rank gets the same number of samples;
            otherwise pad by wrapping around to the start of the epoch.
        batch_size: the number of samples per batch (used to turn ``start_iter`` into indices).
        permutation: the order of a shuffled epoch; one of :data:`PERMUTATIONS`.
    """

    def __init__(
        self,
        dataset: tud.Dataset[Any],
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        batch_size: int = 1,
        *,
        permutation: str = "torch",
    ) -> None:
        n = _checks.dataset_len("dataset", dataset)
        if num_replicas is not None:
            num_replicas = _checks.positive_int("num_replicas", num_replicas)
            if num_replicas > _checks.MAX_LEN:
                raise ValueError(f"num_replicas should be at most 2**63 - 1, got {num_replicas}")
        if rank is not None:
            rank = _checks.as_int("rank", rank)
            if num_replicas is not None and not 0 <= rank < num_replicas:
                raise ValueError(
                    f"rank should be in the interval [0, {num_replicas - 1}], got {rank}"
                )
        shuffle = _checks.as_bool("shuffle", shuffle)
        drop_last = _checks.as_bool("drop_last", drop_last)
        seed = _checks.as_int("seed", seed)
        permutation = _checks.choice("permutation", permutation, PERMUTATIONS)
        _checks.order_key(seed, 0, permutation)
        super().__init__(dataset, num_replicas, rank, shuffle, seed, drop_last)
        # torch computes these with float division, which is off by a few for n > 2**53; the
        # core's integer rule gives the same values below that and the exact ones above.
        self.num_samples = _core.shard_len(n, self.num_replicas, self.rank, 0, drop_last)
        self.total_size = self.num_samples * self.num_replicas
        self._dataset_len = n
        self._batch_size = _checks.positive_int("batch_size", batch_size)
        self._start_iter = 0
        self._permutation = permutation

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; with ``shuffle`` the order is seeded with ``seed + epoch``.

        A position restored by :meth:`load_state_dict` applies only to its own epoch.
        """
        super().set_epoch(epoch)
        self._epoch_chosen = True

    def _set_epoch_value(self, epoch: int) -> None:
        self.epoch = epoch

    def _settings(self) -> _state.Settings:
        epoch = _checks.as_int("epoch", self.epoch)
        return _state.Settings(
            self._dataset_len,
            self.num_replicas,
            self.rank,
            self.shuffle,
            self.drop_last,
            self._permutation,
            self.seed,
            epoch,
        )


ResumableSamplerType = ResumableSampler | ResumableDistributedSampler
"""Any resumable sampler: a :class:`ResumableSampler` or a :class:`ResumableDistributedSampler`."""


def create_sampler(type_name: str, *args: Any, **kwargs: Any) -> ResumableSamplerType:
    """Create a sampler registered in :data:`SAMPLER_REGISTRY` by its name.

    Args:
        type_name: the registered name, e.g. ``"ResumableRandomSampler"``.
        args: positional arguments for the sampler.
        kwargs: keyword arguments for the sampler.

    Raises:
        KeyError: if no sampler is registered under ``type_name`` (the message lists the names).
    """
    if not isinstance(type_name, str):
        raise TypeError(f"type_name should be a str, got {type(type_name).__name__}")
    sampler: ResumableSamplerType = SAMPLER_REGISTRY.get(type_name)(*args, **kwargs)
    return sampler

"""Resumable samplers, drop-in compatible with helios-ml's ``helios.data.samplers``.

The index order of every sampler equals what helios-ml 2.0.1 and torch yield for the same
arguments; the epoch is computed by the Rust core, cached per epoch, and iterated from the
resume point without building a Python list.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sized
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import torch.utils.data as tud

from resumable_samplers import _checks, _core, _limits, _state
from resumable_samplers._resume import EpochKey, Resume
from resumable_samplers.permutation import PERMUTATIONS, core_order
from resumable_samplers.registry import Registry

Indices = npt.NDArray[np.uint32] | npt.NDArray[np.int64]


def _replicas(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """``num_replicas`` and ``rank``, defaulting to the process group's (else 1 and 0)."""
    import torch.distributed as dist

    group = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if group else 1
    if rank is None:
        rank = dist.get_rank() if group else 0
    return _checks.replicas(num_replicas, rank)


@runtime_checkable
class Resumable(Protocol):
    """A sampler (or batch sampler) that resumes mid-epoch: what the registry, the framework
    integrations and :data:`ResumableSamplerType` rely on.

    Every sampler of this library is one, and so is a helios-style subclass of
    :class:`ResumableSampler` that implements only ``__iter__`` and ``__len__``. Check an object
    with ``isinstance(obj, Resumable)``.
    """

    epoch: int
    """The current epoch (set by :meth:`set_epoch`)."""

    @property
    def batch_size(self) -> int:
        """The number of samples per batch, which ``start_iter`` and :meth:`seek` count in."""
        ...

    @property
    def start_iter(self) -> int:
        """The number of this rank's batches the next iterator skips, whatever its epoch."""
        ...

    @start_iter.setter
    def start_iter(self, ite: int) -> None: ...

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch the next iterator reads."""
        ...

    def seek(self, epoch: int, batches: int = 0) -> None:
        """Place the sampler in ``epoch``, ``batches`` of this rank's batches in."""
        ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


def _protocol_members(protocol: type) -> tuple[str, ...]:
    """The names a class must define to implement ``protocol``."""
    names = set(getattr(protocol, "__annotations__", {}))
    names |= {k for k in vars(protocol) if not k.startswith("_") or k in ("__iter__", "__len__")}
    return tuple(sorted(names))


class _SamplerRegistry(Registry):
    """The sampler registry: it takes classes whose instances are :class:`Resumable`."""

    def register(self, obj: Any = None, suffix: str | None = None) -> Any:
        if isinstance(obj, type):
            # ``epoch`` may be set in ``__init__`` (torch's DistributedSampler): the methods
            # and properties are what a class shows.
            missing = [
                name
                for name in _protocol_members(Resumable)
                if name != "epoch" and not hasattr(obj, name)
            ]
            if missing:
                raise TypeError(
                    f"the sampler registry takes resumable samplers (see Resumable); "
                    f"{obj.__name__} has no {', '.join(missing)}"
                )
        return super().register(obj, suffix)


SAMPLER_REGISTRY = _SamplerRegistry("sampler")
"""The registry of sampler types that :func:`create_sampler` looks names up in; it takes
classes whose instances are :class:`Resumable`.

Example:
    .. code-block:: python

        @SAMPLER_REGISTRY.register
        class MySampler(ResumableSampler): ...

        SAMPLER_REGISTRY.register(OtherSampler)
"""


class _HoldsResume:
    """What every resumable sampler has: one :class:`~resumable_samplers._resume.Resume`, and
    ``batch_size`` and ``start_iter`` read from it."""

    _resume: Resume

    @property
    def batch_size(self) -> int:
        """The number of samples per batch, which ``start_iter`` and :meth:`seek` count in."""
        return self._resume.batch_size

    @property
    def start_iter(self) -> int:
        """The number of this rank's batches the next iterator skips, whatever its epoch.

        Setting it replaces any pending start (one restored by ``load_state_dict`` included);
        the next iterator consumes it, so later epochs are whole. It reads 0 when no
        ``start_iter`` is pending.
        """
        return self._resume.start_iter

    @start_iter.setter
    def start_iter(self, ite: int) -> None:
        self._resume.skip_batches(_checks.non_negative_int("start_iter", ite))


class _ResumableOrder(_HoldsResume):
    """The resumable samplers' public methods, on top of their :class:`Resume` object.

    A sampler supplies the interface of :class:`~resumable_samplers._resume.EpochSource`:
    ``_settings()`` (what determines its order), ``_build_epoch(key)`` (this rank's share of an
    epoch; by default a permutation of ``key.n`` items) and ``_extra_state()`` (its own state
    fields, by default none; a loaded state must have the same values unless the sampler
    overrides ``_load_extra``).
    """

    def _settings(self) -> _state.Settings:
        raise NotImplementedError

    def _build_epoch(self, key: EpochKey) -> _core.Epoch:
        return key.build()

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra(self, state: Mapping[str, Any]) -> None:
        """Check the sampler's own fields of a loaded state (before the shared ones)."""
        _state.same_fields(state, self._extra_state())

    def _permuted_sizes(self) -> tuple[int, ...] | None:
        """The lengths of the permutations an epoch's order is made of, which decide whether
        the two torch generations order it alike; ``None``: one of the epoch's length."""
        return None

    def _rank_len(self) -> int:
        """This rank's number of positions in a whole epoch."""
        st = self._settings()
        return _core.shard_len(st.n, st.num_replicas, st.rank, 0, st.drop_last)

    def _checked_order(self) -> _state.Settings:
        """The settings, with the epoch's order key checked (bad settings raise here)."""
        st = self._settings()
        if st.shuffle:
            _checks.order_key(st.seed, st.epoch, st.permutation)
        return st

    def _start(self) -> _core.Reader:
        return self._resume.start(self)

    def __iter__(self) -> Iterator[int]:
        """Yield this epoch's indices as Python ints, from the pending start if there is one.

        The iterator starts (and consumes the pending start) at its first ``next()``.
        """
        self._checked_order()  # bad settings raise here, not at the first next()
        # The reader calls ``_start`` at its first ``next()``, then reads in C.
        return _core.Reader.deferred(self._start)

    def seek(self, epoch: int, batches: int = 0) -> None:
        """Place the sampler in ``epoch``, ``batches`` of this rank's batches in.

        Calls :meth:`set_epoch` and sets a pending start for that epoch: the next iterator
        starts after ``batches * batch_size`` of this rank's indices (the same global position
        on every rank), unless the sampler has been moved to another epoch by then.

        Args:
            epoch: the epoch to continue.
            batches: how many of this rank's batches of that epoch were done.
        """
        epoch = _checks.as_int("epoch", epoch)
        batches = _checks.non_negative_int("batches", batches)
        # The epoch is each sampler's own attribute (a property of ResumableSampler, torch's
        # plain attribute on the distributed sampler), read and restored by name.
        previous = object.__getattribute__(self, "epoch")
        try:
            self.set_epoch(epoch)  # type: ignore[attr-defined]
            st = self._checked_order()  # an epoch the order cannot have is refused here
        except BaseException:
            object.__setattr__(self, "epoch", previous)  # a refused seek changes nothing
            raise
        self._resume.restore(epoch, batches * self._resume.batch_size * st.num_replicas)

    def indices(self) -> Indices:
        """This epoch's remaining indices (from where :meth:`state_dict` says the epoch is) as a
        read-only NumPy array.

        ``uint32`` when the dataset has at most ``2**32`` items, else ``int64``. For the torch
        order the array is a view of the sampler's own buffer, not a copy.
        """
        out: Any = self._resume.remaining(self)
        return out  # type: ignore[no-any-return]

    def state_dict(self) -> dict[str, Any]:
        """Where this sampler is: a plain dict of ints, strs and bools (JSON- and
        ``torch.load(weights_only=True)``-safe), computed in O(1).

        It holds the epoch and the global position ``offset`` consumed in it across all
        ``num_replicas`` ranks: the pending start if no iterator has started since one was set,
        else what the most recent iterator of this epoch handed out (after the last index, the
        end of this epoch: the state never names the next epoch). The position is global, so
        the state can be loaded with another number of replicas or another batch size.
        """
        st, consumed = self._resume.position(self._settings())
        return _state.make(st, consumed, self._extra_state())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a state saved by :meth:`state_dict`, possibly by a job with another
        number of replicas or batch size.

        Sets the saved epoch (through :meth:`set_epoch`) and a pending start at the saved
        position of that epoch. The next iterator starts there if the sampler is still in the
        saved epoch when it starts; if the loop has moved to another epoch, that epoch is whole.
        A loop that saves the epoch in progress with this state and resumes from that epoch
        continues exactly: mid-epoch, after its last batch, or between epochs.

        The state of torchdata's ``StatefulDistributedSampler`` (``{"yielded": k}``, alone or as
        the sampler's part of a ``StatefulDataLoader`` state) is accepted too, with torchdata's
        meaning: the next iterator, whatever its epoch, starts after this rank's first ``k``
        indices. That state names no order: a run switched from torchdata's sampler to this one
        continues at exactly the next batch when both have the same order (the same dataset,
        ``num_replicas``, ``shuffle``, ``seed`` and ``drop_last``, the ``"torch"`` permutation).

        Raises:
            ValueError: if the state is malformed or describes another order (another dataset
                length, seed, permutation, ``shuffle`` or ``drop_last``); the message names the
                field.
        """
        self._load_extra(_state.as_mapping(state))
        yielded = _state.torchdata_yielded(state)
        if yielded is not None:
            self._resume.skip_indices(yielded)
            return
        epoch, offset = _state.read(
            state, self._settings(), tuple(self._extra_state()), self._permuted_sizes()
        )
        self.set_epoch(epoch)  # type: ignore[attr-defined]
        self._resume.restore(epoch, offset)

    def __getstate__(self) -> dict[str, Any]:
        """A copy (``pickle``, ``copy.deepcopy``, ``torch.save``) continues where this sampler
        is: its position becomes the copy's pending start."""
        state = self.__dict__.copy()
        state["_resume"] = self._resume.copied(self)
        return state


class ResumableSampler(_HoldsResume, tud.Sampler[int]):
    r"""Base class for samplers that are resumable, as in helios-ml.

    Let :math:`b_i` be the :math:`i`-th batch of epoch :math:`e`. A sampler is resumable if, when
    training stops right after :math:`b_i` and restarts in epoch :math:`e` with
    ``start_iter = i + 1``, the next batch is :math:`b_{i+1}` and every later batch is the one the
    uninterrupted run would have produced.

    A subclass that implements only ``__iter__`` and ``__len__`` (the helios pattern) reads
    ``start_iter`` through ``_adjust_to_start_iter``, which consumes it. The library's samplers
    add ``state_dict``/``load_state_dict`` on top.

    Args:
        batch_size: the number of samples per batch (used to turn ``start_iter`` into indices).
    """

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self._resume = Resume(_checks.positive_int("batch_size", batch_size))
        self._epoch = 0

    @property
    def epoch(self) -> int:
        """The current epoch (set by :meth:`set_epoch`)."""
        return self._epoch

    @epoch.setter
    def epoch(self, epoch: int) -> None:
        self._epoch = _checks.as_int("epoch", epoch)

    def _adjust_to_start_iter(self, indices: list[int]) -> list[int]:
        """Drop the first ``start_iter * batch_size`` of ``indices`` and consume ``start_iter``."""
        return indices[self._resume.take_start_iter() :]

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; shuffled samplers seed their order with ``seed + epoch``."""
        self.epoch = epoch

    def seek(self, epoch: int, batches: int = 0) -> None:
        """Place the sampler in ``epoch``, ``batches`` of its batches in: :meth:`set_epoch`,
        then ``start_iter = batches`` (the library's samplers refine this: the start applies
        only to that epoch).

        Args:
            epoch: the epoch to continue.
            batches: how many batches of that epoch were done.
        """
        batches = _checks.non_negative_int("batches", batches)
        self.set_epoch(epoch)
        self.start_iter = batches


class _OverDataSource(_ResumableOrder, ResumableSampler):
    """A single-process sampler over ``data_source``, whose length is read when an epoch starts
    (a running epoch keeps its length), as torch's ``RandomSampler`` and ``SequentialSampler``
    read it."""

    def __init__(self, data_source: Sized, batch_size: int) -> None:
        super().__init__(batch_size)
        _checks.dataset_len("data_source", data_source)
        self._data_source = data_source

    @property
    def _num_samples(self) -> int:
        return _checks.dataset_len("data_source", self._data_source)

    def __len__(self) -> int:
        """The number of samples in an epoch (whatever ``start_iter`` is)."""
        return self._num_samples


@SAMPLER_REGISTRY.register
class ResumableRandomSampler(_OverDataSource):
    """Random sampler that can resume mid-epoch; replaces torch's ``RandomSampler``.

    Epoch ``e`` yields ``torch.randperm(len(data_source), generator=torch.Generator().manual_seed(
    seed + e))``, exactly as helios-ml's ``ResumableRandomSampler`` does. Like torch's
    ``RandomSampler``, the length of ``data_source`` is read when an epoch starts; a running
    epoch keeps its length.

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
        super().__init__(data_source, batch_size)
        self._seed = _checks.as_int("seed", seed)
        self._permutation = _checks.choice("permutation", permutation, PERMUTATIONS)
        _checks.order_key(self._seed, 0, self._permutation)

    def _settings(self) -> _state.Settings:
        order = core_order(self._permutation)  # the installed torch's generation
        return _state.Settings.of(
            self._num_samples, 1, 0, True, False, order, self._seed, self.epoch
        )


@SAMPLER_REGISTRY.register
class ResumableSequentialSampler(_OverDataSource):
    """Sequential sampler that can resume mid-epoch; replaces torch's ``SequentialSampler``.

    Like torch's ``SequentialSampler``, the length of ``data_source`` is read when an epoch
    starts; a running epoch keeps its length.

    Args:
        data_source: the dataset to sample from (anything with ``__len__``).
        batch_size: the number of samples per batch.
    """

    def __init__(self, data_source: Sized, batch_size: int = 1) -> None:
        super().__init__(data_source, batch_size)

    def _settings(self) -> _state.Settings:
        order = _limits.IDENTITY
        return _state.Settings.of(self._num_samples, 1, 0, False, False, order, 0, self.epoch)


@SAMPLER_REGISTRY.register
class ResumableDistributedSampler(_ResumableOrder, tud.DistributedSampler[int]):
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
            num_replicas = _checks.num_replicas(num_replicas)
        if rank is not None:
            rank = _checks.as_int("rank", rank)
            if num_replicas is not None:
                num_replicas, rank = _checks.replicas(num_replicas, rank)
        shuffle = _checks.as_bool("shuffle", shuffle)
        drop_last = _checks.as_bool("drop_last", drop_last)
        seed = _checks.as_int("seed", seed)
        permutation = _checks.choice("permutation", permutation, PERMUTATIONS)
        _checks.order_key(seed, 0, permutation)
        super().__init__(dataset, num_replicas, rank, shuffle, seed, drop_last)
        # torch computes these with float division, which is off by a few for n > 2**53; the
        # core's integer rule gives the same values below that and the exact ones above.
        self.num_samples = _core.shard_len(n, self.num_replicas, self.rank, 0, drop_last)
        self.total_size = _state.epoch_end(n, self.num_replicas, drop_last)
        self._dataset_len = n
        self._resume = Resume(_checks.positive_int("batch_size", batch_size))
        self._permutation = permutation

    def __len__(self) -> int:
        """This rank's number of samples per epoch (whatever ``start_iter`` is), from the
        current ``num_replicas``, ``rank`` and ``drop_last``: ``num_samples`` as long as they
        are the constructor's, and what iteration yields after one of them is set."""
        return self._rank_len()

    def _settings(self) -> _state.Settings:
        return _state.Settings.of(
            self._dataset_len,
            self.num_replicas,
            self.rank,
            self.shuffle,
            self.drop_last,
            core_order(self._permutation),  # the installed torch's generation
            self.seed,
            self.epoch,
        )


ResumableSamplerType = Resumable
"""Any resumable sampler: an object that implements :class:`Resumable` (every sampler of this
library, a helios-style subclass of :class:`ResumableSampler`)."""


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

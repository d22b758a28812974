"""Samplers that put samples of similar length together, to waste less padding.

:class:`ResumableLengthGroupedSampler` yields transformers' length-grouped order (the order of
``LengthGroupedSampler``) index for index; :class:`ResumableTokenBudgetBatchSampler` yields
batches of similar length under a budget of padded tokens. Both compute an epoch in the Rust
core (permutation, per-megabatch sort, packing) with the GIL released, read ``lengths`` in place
when nothing can write it (a memory-mapped ``.npy`` file, a read-only array; a writable array is
copied while an epoch is built, as another thread could change it), and resume exactly with the
rules of the other samplers: ``state_dict``/``load_state_dict``, ``start_iter``, ``seek`` and
another number of replicas.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch.utils.data as tud

from resumable_samplers import _checks, _core, _state
from resumable_samplers._resume import EpochKey, Resume
from resumable_samplers.permutation import core_order
from resumable_samplers.samplers import (
    SAMPLER_REGISTRY,
    ResumableSampler,
    _replicas,
    _ResumableOrder,
)

LengthsLike = Sequence[int] | npt.NDArray[np.integer[Any]] | str | os.PathLike[str]
"""What ``lengths`` accepts: a sequence of ints, a 1-D NumPy integer array (a ``np.memmap``
too), or the path of a ``.npy`` file, which is memory-mapped."""

OVERSIZED = ("error", "alone")
"""The accepted values of ``oversized`` (what to do with a sample longer than ``max_tokens``)."""

_U64_MAX = _checks.U64_MAX


class _Lengths:
    """The ``lengths`` argument as a read-only 1-D integer array, and what one pass over it found.

    A memory-mapped array stays mapped, and pickles as its file (reopened and checked against
    the fingerprint on unpickling) rather than as its contents.
    """

    def __init__(self, array: npt.NDArray[Any], limit: int) -> None:
        n, top, total, fingerprint, first_above = _core.lengths_scan(array, limit)
        self.array = array
        self.limit = limit
        self.n: int = n
        self.max: int = top
        self.total: int = total
        self.fingerprint: int = fingerprint
        self.first_above: tuple[int, int] | None = first_above

    @classmethod
    def of(cls, lengths: Any, limit: int = _U64_MAX) -> _Lengths:
        return cls(_as_array(lengths), limit)

    def __reduce__(self) -> tuple[Any, ...]:
        array = self.array
        filename = getattr(array, "filename", None)
        # Only a whole mapping is described by its file, offset and shape (a slice of a memmap
        # keeps its parent's offset), so anything else pickles as its contents.
        whole = isinstance(array.base, mmap.mmap)
        if isinstance(array, np.memmap) and whole and isinstance(filename, (str, os.PathLike)):
            where = (os.fspath(filename), array.dtype.str, array.offset, array.shape[0])
            return (_reopen, (where, self.limit, self.fingerprint))
        return (_Lengths, (array, self.limit))


def _megabatch_size(n: int, batch_size: int, megabatch_mult: int) -> int:
    """Samples per megabatch, by the core's rule (``megabatch_mult * batch_size``, capped at
    ``n``); both factors are positive, and any factor from ``2**64`` on caps it at ``n``."""
    return _core.megabatch_size(n, min(batch_size, _U64_MAX), min(megabatch_mult, _U64_MAX))


def _reopen(where: tuple[str, str, int, int], limit: int, fingerprint: int) -> _Lengths:
    filename, dtype, offset, n = where
    array = np.memmap(filename, dtype=np.dtype(dtype), mode="r", offset=offset, shape=(n,))
    lengths = _Lengths(array, limit)
    if lengths.fingerprint != fingerprint:
        raise ValueError(f"lengths: the file {filename!r} changed since the sampler was copied")
    return lengths


def _as_array(lengths: Any) -> npt.NDArray[Any]:
    """``lengths`` as a C-contiguous 1-D integer array, copying only what NumPy must convert.

    A copy made here is the sampler's own and is made read-only, so that the core reads it in
    place; an array passed in is kept as it is (the core copies it for a build if writable).
    """
    if isinstance(lengths, (str, os.PathLike)):
        try:
            array: Any = np.load(os.fspath(lengths), mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ValueError(f"lengths: cannot memory-map {os.fspath(lengths)!r}: {e}") from None
    elif isinstance(lengths, np.ndarray):
        array = lengths
    elif isinstance(lengths, (bytes, bytearray, Mapping)) or not hasattr(lengths, "__len__"):
        raise TypeError(
            "lengths should be a sequence of ints, a 1-D NumPy integer array or the path of a "
            f".npy file, got {type(lengths).__name__}"
        )
    else:
        try:
            size = len(lengths)
        except Exception as e:  # a 0-d tensor, a broken __len__
            raise TypeError(f"lengths should be a sequence of ints: len() raised {e!r}") from None
        if size == 0:
            raise ValueError("lengths should not be empty")
        try:
            array = np.asarray(lengths)
        except Exception as e:  # ragged, or items that cannot be read
            raise TypeError(f"lengths should hold integers: {e!r}") from None
    if array.ndim != 1:
        raise ValueError(f"lengths should be 1-D, got an array of shape {array.shape}")
    if array.dtype.kind not in "iu":
        raise TypeError(f"lengths should hold integers, got dtype {array.dtype}")
    if array.shape[0] == 0:
        raise ValueError("lengths should not be empty")
    # Ours if NumPy made it from a sequence (not a view of a tensor's or a buffer's memory).
    own = not isinstance(lengths, (np.ndarray, str, os.PathLike)) and array.flags.owndata
    if not array.dtype.isnative:
        array, own = array.astype(array.dtype.newbyteorder("=")), True
    if not array.flags.c_contiguous:
        array, own = np.ascontiguousarray(array), True
    if own:
        array.flags.writeable = False
    return array  # type: ignore[no-any-return]


@SAMPLER_REGISTRY.register
class ResumableLengthGroupedSampler(_ResumableOrder, ResumableSampler):
    """Length-grouped sampler that can resume mid-epoch; replaces transformers'
    ``LengthGroupedSampler`` and ``DistributedLengthGroupedSampler``.

    Epoch ``e``'s order is, index for index, transformers' ``get_length_grouped_indices(lengths,
    batch_size, megabatch_mult, generator=torch.Generator().manual_seed(seed + e))``: a torch
    permutation, cut into megabatches of ``megabatch_mult * batch_size`` samples, each sorted by
    length (longest first, ties in permutation order), with the longest sample moved to the
    front. Ranks share that order as ``torch.utils.data.DistributedSampler`` shares its
    permutation (rank ``r`` takes positions ``r, r + W, ...``, padding by wrapping around, or
    dropping the tail with ``drop_last``), and resume with the same rules as the other samplers.

    Args:
        lengths: the length of every sample: a sequence of ints, a 1-D NumPy integer array or
            ``np.memmap``, or the path of a ``.npy`` file (memory-mapped). A file or a read-only
            array (``flags.writeable`` false) is read in place; a writable array is copied while
            an epoch is built (a sequence becomes one read-only NumPy array). Changing the
            lengths changes the next epochs' order, which ``lengths_fingerprint`` guards.
        batch_size: the number of samples per batch (the ``batch_size`` given to transformers).
        seed: the random seed; ``seed + epoch`` must lie in ``[-2**63, 2**64)``.
        megabatch_mult: megabatches hold ``megabatch_mult * batch_size`` samples; by default
            transformers' ``min(len(lengths) // (batch_size * 4), 50)``, at least 1.
        num_replicas: the number of processes taking part; defaults to the process group's
            world size, or 1 without a process group.
        rank: this process's rank in ``[0, num_replicas)``; defaults to the group rank, or 0.
        drop_last: if true, drop the tail so every rank gets the same number of samples;
            otherwise pad by wrapping around to the start of the epoch.
    """

    def __init__(
        self,
        lengths: LengthsLike,
        batch_size: int,
        *,
        seed: int = 0,
        megabatch_mult: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ) -> None:
        super().__init__(batch_size)
        self._lengths = _Lengths.of(lengths)
        n = self._lengths.n
        self.seed = _checks.as_int("seed", seed)
        _checks.order_key(self.seed, 0, "torch")
        if megabatch_mult is None:
            # Any batch_size from 2**64 on gives transformers' minimum, 1.
            batch = min(self.batch_size, _checks.U64_MAX)
            megabatch_mult = _core.default_megabatch_mult(n, batch)
        self.megabatch_mult = _checks.positive_int("megabatch_mult", megabatch_mult)
        self.num_replicas, self.rank = _replicas(num_replicas, rank)
        self.drop_last = _checks.as_bool("drop_last", drop_last)

    @property
    def num_samples(self) -> int:
        """This rank's number of samples per epoch, from the current ``num_replicas``, ``rank``
        and ``drop_last`` (as ``DistributedSampler.num_samples``)."""
        return self._rank_len()

    @property
    def total_size(self) -> int:
        """The number of samples per epoch over all ranks: ``num_samples * num_replicas``."""
        return self._rank_len() * self._settings().num_replicas

    @property
    def lengths(self) -> npt.NDArray[np.integer[Any]]:
        """The lengths, as the NumPy array the sampler reads (a memory map for a file)."""
        return self._lengths.array

    @property
    def megabatch_size(self) -> int:
        """Samples per megabatch: ``megabatch_mult * batch_size``, at most ``len(lengths)``."""
        return _megabatch_size(self._lengths.n, self.batch_size, self.megabatch_mult)

    def __len__(self) -> int:
        """This rank's number of samples per epoch (whatever ``start_iter`` is), from the
        current ``num_replicas``, ``rank`` and ``drop_last``."""
        return self._rank_len()

    def _settings(self) -> _state.Settings:
        return _state.Settings.of(
            self._lengths.n,
            self.num_replicas,
            self.rank,
            True,
            self.drop_last,
            core_order("torch"),  # the installed torch's randperm generation
            self.seed,
            self.epoch,
        )

    def _build_epoch(self, key: EpochKey) -> _core.Epoch:
        lengths = self._lengths
        return _core.length_grouped_epoch(
            lengths.array,
            lengths.max,
            self.megabatch_size,
            key.seed,
            key.epoch,
            key.num_replicas,
            key.rank,
            key.offset,
            key.drop_last,
            key.order,
        )

    def _extra_state(self) -> dict[str, Any]:
        return {
            "lengths_fingerprint": self._lengths.fingerprint,
            "megabatch_size": self.megabatch_size,
        }

    def state_dict(self) -> dict[str, Any]:
        """Where this sampler is (see :meth:`ResumableDistributedSampler.state_dict`), plus
        ``lengths_fingerprint`` (a 63-bit hash of the lengths) and ``megabatch_size``, which
        together with the seed fix the order."""
        return super().state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a state saved by :meth:`state_dict`, possibly by a job with another
        number of replicas or batch size (with the same megabatch size).

        Raises:
            ValueError: if the state is malformed or describes another order: other lengths
                (``lengths_fingerprint``), megabatch size, seed or ``drop_last``; the message
                names the field.
        """
        super().load_state_dict(state)


@SAMPLER_REGISTRY.register
class ResumableTokenBudgetBatchSampler(_ResumableOrder, tud.Sampler[list[int]]):
    """Batch sampler of similar-length samples under a budget of padded tokens, resumable
    mid-epoch. Use it as ``DataLoader(dataset, batch_sampler=...)``.

    Epoch ``e``: a torch permutation of the samples (generator seeded with ``seed + e``) is cut
    into megabatches, each sorted by length (longest first, ties in permutation order) and cut
    greedily into batches with ``len(batch) * max(length in batch) <= max_tokens`` and at most
    ``max_batch_size`` samples; batches never span two megabatches. The batches are then
    shuffled by ``torch.randperm(num_batches)`` drawn from the same generator. Ranks are dealt
    whole batches as ``DistributedSampler`` deals samples: rank ``r`` takes batches ``r, r + W,
    ...`` of the shuffled order, so every rank gets the same number of batches; the tail is
    padded by wrapping around to the first batches of the epoch, or dropped with
    ``drop_last``. The number of batches depends on the epoch.

    Positions, ``start_iter`` and :meth:`seek` count batches; the state's ``dataset_length`` is
    the epoch's number of batches and ``offset`` the global batch position, so a state loads
    with another number of replicas.

    Args:
        lengths: the length (in tokens) of every sample: a sequence of ints, a 1-D NumPy integer
            array or ``np.memmap``, or the path of a ``.npy`` file (memory-mapped). A file or a
            read-only array (``flags.writeable`` false) is read in place; a writable array is
            copied while an epoch is built (a sequence becomes one read-only NumPy array).
            Changing the lengths changes the next epochs' batches, which
            ``lengths_fingerprint`` guards.
        max_tokens: the budget of padded tokens per batch.
        seed: the random seed; ``seed + epoch`` must lie in ``[-2**63, 2**64)``.
        megabatch_mult: megabatches hold ``megabatch_mult`` typical batches, a typical batch
            being ``max_tokens // ceil(mean length)`` samples, the mean length rounded up
            (at least 1, at most ``max_batch_size``); by default
            ``min(len(lengths) // (4 * typical batch), 50)``, at least 1, transformers' rule.
        max_batch_size: the most samples in a batch; no limit by default.
        num_replicas: the number of processes taking part; defaults to the process group's
            world size, or 1 without a process group.
        rank: this process's rank in ``[0, num_replicas)``; defaults to the group rank, or 0.
        drop_last: if true, drop the tail of batches that would not give every rank one;
            otherwise pad it by wrapping around to the first batches of the epoch.
        oversized: what a sample longer than ``max_tokens`` does: ``"error"`` (the default)
            raises ``ValueError`` naming the first one; ``"alone"`` gives each a batch of its own
            (the only batches above the budget).
    """

    def __init__(
        self,
        lengths: LengthsLike,
        max_tokens: int,
        *,
        seed: int = 0,
        megabatch_mult: int | None = None,
        max_batch_size: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
        oversized: str = "error",
    ) -> None:
        super().__init__()
        self._resume = Resume(1)  # positions, start_iter and seek count batches
        self.max_tokens = _checks.positive_int("max_tokens", max_tokens, _U64_MAX)
        if max_batch_size is not None:
            max_batch_size = _checks.positive_int("max_batch_size", max_batch_size, _U64_MAX)
        self.max_batch_size = max_batch_size
        self.oversized = _checks.choice("oversized", oversized, OVERSIZED)
        self._lengths = _Lengths.of(lengths, self.max_tokens)
        above = self._lengths.first_above
        if above is not None and self.oversized == "error":
            index, length = above
            raise ValueError(
                f"lengths[{index}] = {length} is more than max_tokens={self.max_tokens}; raise "
                "max_tokens, leave such samples out, or pass oversized='alone' to give each a "
                "batch of its own"
            )
        self.seed = _checks.as_int("seed", seed)
        _checks.order_key(self.seed, 0, "torch")
        n = self._lengths.n
        cap = _U64_MAX if max_batch_size is None else max_batch_size
        typical = _core.typical_batch_size(n, self._lengths.total, self.max_tokens, cap)
        if megabatch_mult is None:
            megabatch_mult = _core.default_megabatch_mult(n, typical)
        self.megabatch_mult = _checks.positive_int("megabatch_mult", megabatch_mult)
        self.megabatch_size = _megabatch_size(n, typical, self.megabatch_mult)
        """Samples per megabatch: ``megabatch_mult`` typical batches, at most ``len(lengths)``."""
        self.num_replicas, self.rank = _replicas(num_replicas, rank)
        self.drop_last = _checks.as_bool("drop_last", drop_last)
        self.epoch = 0
        self._packed: tuple[int, _core.TokenBudgetBatches] | None = None

    @property
    def lengths(self) -> npt.NDArray[np.integer[Any]]:
        """The lengths, as the NumPy array the sampler reads (a memory map for a file)."""
        return self._lengths.array

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; its batches are seeded with ``seed + epoch``."""
        self.epoch = _checks.as_int("epoch", epoch)

    def _batches_of(self, epoch: int) -> _core.TokenBudgetBatches:
        """Epoch ``epoch``'s batches, built once (one epoch's batches are kept at a time)."""
        packed = self._packed
        if packed is not None and packed[0] == epoch:
            return packed[1]
        del packed
        self._packed = None
        seed, key = _checks.order_key(self.seed, epoch, "torch")
        lengths = self._lengths
        cap = _U64_MAX if self.max_batch_size is None else self.max_batch_size
        built = _core.TokenBudgetBatches(
            lengths.array,
            lengths.max,
            self.megabatch_size,
            self.max_tokens,
            cap,
            seed,
            key,
            core_order("torch"),  # the installed torch's randperm generation
        )
        self._packed = (epoch, built)
        return built

    def num_batches(self, epoch: int | None = None) -> int:
        """The number of batches of an epoch (the current one by default), over all ranks
        before padding."""
        epoch = self.epoch if epoch is None else epoch
        return len(self._batches_of(_checks.as_int("epoch", epoch)))

    def batch(self, k: int, epoch: int | None = None) -> list[int]:
        """The samples of batch ``k`` (a batch id, as :meth:`indices` lists them) of an epoch,
        the current one by default."""
        epoch = self.epoch if epoch is None else epoch
        batches = self._batches_of(_checks.as_int("epoch", epoch))
        k = _checks.as_int("k", k)
        if not 0 <= k < len(batches):
            raise ValueError(f"k should be a batch id in [0, {len(batches)}), got {k}")
        return batches.batch(k)

    def indices(self) -> Any:
        """This rank's remaining batch ids of the current epoch (from where :meth:`state_dict`
        says the epoch is), as a read-only NumPy array; :meth:`batch` gives their samples."""
        return super().indices()

    def __len__(self) -> int:
        """This rank's number of batches in the current epoch (whatever ``start_iter`` is),
        from the current ``num_replicas``, ``rank`` and ``drop_last``."""
        return self._rank_len()

    def _settings(self) -> _state.Settings:
        epoch = _checks.as_int("epoch", self.epoch)
        return _state.Settings.of(
            len(self._batches_of(epoch)),
            self.num_replicas,
            self.rank,
            True,
            self.drop_last,
            core_order("torch"),  # the installed torch's randperm generation
            self.seed,
            epoch,
        )

    def _permuted_sizes(self) -> tuple[int, ...]:
        # The samples are permuted (then the batches, fewer of them): the samples decide.
        return (self._lengths.n,)

    def _build_epoch(self, key: EpochKey) -> _core.Epoch:
        batches = self._batches_of(self._settings().epoch)
        return batches.epoch(key.num_replicas, key.rank, key.offset, key.drop_last)

    def __iter__(self) -> Iterator[list[int]]:  # type: ignore[override]
        """Yield this epoch's batches as lists of sample indices, from the pending start if
        there is one. The iterator starts (and consumes the pending start) at its first
        ``next()``."""
        return self._batches(super().__iter__())

    def _batches(self, ids: Iterator[int]) -> Iterator[list[int]]:
        first = next(ids, None)  # starts the reader
        if first is None:
            return
        run = self._resume.run  # the run ``ids`` reads
        assert run is not None
        batches = self._batches_of(run.settings.epoch)
        yield batches.batch(first)
        for k in ids:
            yield batches.batch(k)

    def _extra_state(self) -> dict[str, Any]:
        return {
            "lengths_fingerprint": self._lengths.fingerprint,
            "max_tokens": self.max_tokens,
            "max_batch_size": 0 if self.max_batch_size is None else self.max_batch_size,
            "megabatch_size": self.megabatch_size,
        }

    def state_dict(self) -> dict[str, Any]:
        """Where this sampler is: the epoch and the global batch position consumed in it
        (``offset``), with ``dataset_length`` the epoch's number of batches, plus the fields
        that fix the batches (``lengths_fingerprint``, ``max_tokens``, ``max_batch_size``,
        ``megabatch_size``). Plain ints, strs and bools. O(1) once the epoch's batches exist."""
        return super().state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a state saved by :meth:`state_dict`, possibly with another number of
        replicas. Builds the saved epoch's batches (the next iterator reads them).

        Raises:
            ValueError: if the state is malformed or describes other batches (other lengths,
                ``max_tokens``, ``max_batch_size``, megabatch size, seed or ``drop_last``); the
                message names the field.
        """
        previous = self.epoch
        try:
            super().load_state_dict(state)
        except ValueError:
            self.epoch = previous
            raise

    def _load_extra(self, state: Mapping[str, Any]) -> None:
        super()._load_extra(state)
        epoch = state.get("epoch")
        if type(epoch) is int:
            try:
                _checks.order_key(self.seed, epoch, "torch")
            except ValueError as e:
                raise ValueError(f"state field 'epoch' is out of range: {e}") from None
            self.epoch = epoch  # the state's epoch decides its number of batches

    def __getstate__(self) -> dict[str, Any]:
        """A copy (``pickle``, ``copy.deepcopy``, ``torch.save``) continues where this sampler
        is; the epoch's batches are rebuilt on demand."""
        state = super().__getstate__()  # reads the position while the batches exist
        state["_packed"] = None
        return state

"""The resume object every resumable sampler holds: its pending start, its last run and its
cached epoch, and the rules that move them.

A sampler composes one :class:`Resume` and supplies what only it knows (the interface of
:class:`EpochSource`): the settings that determine its order, how to build this rank's share of
an epoch from an :class:`EpochKey`, and its own state fields. Everything else (where the next
iterator starts, what ``state_dict`` reports, what a copy carries) is decided here, once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from resumable_samplers import _checks, _core, _limits, _state


class Pending(NamedTuple):
    """Where the next iterator starts.

    ``epoch is None`` (``start_iter``, torchdata's ``yielded``): after ``offset`` of this rank's
    indices, in whichever epoch is iterated next. Otherwise (``load_state_dict``, ``seek``): at
    the global position ``offset`` of epoch ``epoch``, only if the sampler is still in that
    epoch when the iterator starts; dropped if the loop has moved to another epoch.
    """

    epoch: int | None
    offset: int

    def consumed(self, st: _state.Settings) -> int | None:
        """The global position of ``st``'s epoch this start stands for (at most the epoch's
        end), or ``None`` if it belongs to another epoch."""
        if self.epoch is None:
            return min(self.offset * st.num_replicas, epoch_end(st))
        if self.epoch == st.epoch:
            return min(self.offset, epoch_end(st))
        return None


def epoch_end(st: _state.Settings) -> int:
    """The epoch's length in global positions (``T``), by the core's sharding rule."""
    return _state.epoch_end(st.n, st.num_replicas, st.drop_last)


@dataclass(frozen=True)
class EpochKey:
    """What identifies this rank's share of an epoch: the arguments the core builds it from.

    ``seed`` and ``epoch`` are unsigned 64-bit values; an unshuffled order is ``"identity"``
    with both 0, so that every epoch of it is one share.
    """

    n: int
    num_replicas: int
    rank: int
    offset: int
    drop_last: bool
    order: str
    seed: int
    epoch: int

    @classmethod
    def of(cls, st: _state.Settings, offset: int) -> EpochKey:
        """The key of ``st``'s epoch, built after the global positions ``[0, offset)``."""
        if st.shuffle:
            seed, epoch = _checks.order_key(st.seed, st.epoch, st.permutation)
            order = st.permutation
        else:
            order, seed, epoch = _limits.IDENTITY, 0, 0
        return cls(st.n, st.num_replicas, st.rank, offset, st.drop_last, order, seed, epoch)

    def build(self) -> _core.Epoch:
        """The share as the core builds it for a single permutation of ``n`` items."""
        return _core.Epoch(
            self.n,
            self.num_replicas,
            self.rank,
            self.offset,
            self.drop_last,
            self.order,
            self.seed,
            self.epoch,
        )


@dataclass(frozen=True)
class Run:
    """The most recently started iterator: the settings it reads, its epoch and its reader."""

    settings: _state.Settings
    epoch: _core.Epoch
    reader: _core.Reader

    def consumed(self) -> int:
        """The global position every rank has consumed, by this rank's count."""
        return self.epoch.consumed(self.reader.position())


@dataclass(frozen=True)
class Cached:
    """The one epoch share a sampler keeps, and its key."""

    key: EpochKey
    epoch: _core.Epoch


class EpochSource(Protocol):
    """What a sampler tells its :class:`Resume`: all a sampler over a new order implements."""

    def _settings(self) -> _state.Settings:
        """What determines the current epoch's order (checked and normalised)."""
        ...

    def _build_epoch(self, key: EpochKey) -> _core.Epoch:
        """This rank's share of the epoch that ``key`` identifies."""
        ...

    def _extra_state(self) -> dict[str, Any]:
        """The sampler's own state fields, beyond the shared ones."""
        ...


class Resume:
    """One sampler's resume state: at most one pending start, the last run, the cached epoch.

    The next iterator, when it starts, consumes the pending start; later iterators start at the
    beginning of their epoch. The position reported is the pending start if it applies to the
    current epoch, else how far the last run of that epoch got, else 0; it never rolls over to
    the next epoch.

    Args:
        batch_size: the number of samples per batch, which ``start_iter`` counts in.
    """

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.pending: Pending | None = None
        self.run: Run | None = None
        self.cache: Cached | None = None

    # ``start_iter``: this rank's batches, whatever epoch comes next.
    @property
    def start_iter(self) -> int:
        """The batches the next iterator skips (0 unless a ``start_iter`` is pending)."""
        pending = self.pending
        if pending is None or pending.epoch is not None:
            return 0
        return pending.offset // self.batch_size

    def skip_batches(self, batches: int) -> None:
        """Make the next iterator, whatever its epoch, skip this rank's first ``batches``."""
        self.pending = Pending(None, batches * self.batch_size)

    def skip_indices(self, indices: int) -> None:
        """Make the next iterator, whatever its epoch, skip this rank's first ``indices``."""
        self.pending = Pending(None, indices)

    def take_start_iter(self) -> int:
        """Consume a pending ``start_iter`` and return the indices it skips (helios' rule)."""
        pending, self.pending = self.pending, None
        return 0 if pending is None or pending.epoch is not None else pending.offset

    def restore(self, epoch: int, offset: int) -> None:
        """Make the next iterator start at the global position ``offset`` of ``epoch``."""
        self.pending = Pending(epoch, offset)

    def forget(self) -> None:
        """Drop the cached epoch and the last run (the order has changed)."""
        self.cache = None
        self.run = None

    def position(self, st: _state.Settings) -> tuple[_state.Settings, int]:
        """The settings of the current epoch and the global position consumed in it."""
        pending = self.pending
        consumed = None if pending is None else pending.consumed(st)
        if consumed is not None:
            return st, consumed
        run = self.run
        if run is not None and run.settings._replace(n=st.n) == st:
            # The running epoch keeps its length, as torch's samplers' iterators do.
            return run.settings, run.consumed()
        return st, 0

    def share(
        self, build: Callable[[EpochKey], _core.Epoch], st: _state.Settings, offset: int
    ) -> _core.Epoch:
        """This rank's share of ``st``'s epoch with shard offset ``offset``, built once."""
        key = EpochKey.of(st, offset)
        cached = self.cache
        if cached is not None and cached.key == key:
            return cached.epoch
        # Never hold two epochs at once: drop the previous one (and the last iterator, which
        # references it) before building the next.
        del cached
        self.forget()
        built = build(key)
        self.cache = Cached(key, built)
        return built

    def start(self, source: EpochSource) -> _core.Reader:
        """Start an iterator: consume the pending start and read the epoch from there (an epoch
        that cannot be built leaves the start pending)."""
        st = source._settings()
        pending, self.pending = self.pending, None  # one iterator takes it, even across threads
        consumed = pending.consumed(st) if pending is not None else None
        offset, position = _core.resume_point(consumed or 0, st.num_replicas)
        try:
            epoch = self.share(source._build_epoch, st, offset)
        except BaseException:
            if self.pending is None:
                self.pending = pending
            raise
        reader = epoch.reader(min(position, len(epoch)))
        self.run = Run(st, epoch, reader)
        return reader

    def remaining(self, source: EpochSource) -> Any:
        """The current epoch's indices from the reported position on, as a NumPy array."""
        st, consumed = self.position(source._settings())
        offset, position = _core.resume_point(consumed, st.num_replicas)
        epoch = self.share(source._build_epoch, st, offset)
        return epoch.array(min(position, len(epoch)))

    def head(self, source: EpochSource) -> _core.Epoch:
        """The current epoch's share from its start (for reading its first indices)."""
        return self.share(source._build_epoch, source._settings(), 0)

    def copied(self, source: EpochSource) -> Resume:
        """The resume object a copy of the sampler starts with: this one's position as its
        pending start, with no run and no cached epoch (rebuilt on demand)."""
        copy = Resume(self.batch_size)
        copy.pending = self.pending
        if self.pending is None and self.run is not None:
            st, consumed = self.position(source._settings())
            if consumed:
                copy.pending = Pending(st.epoch, consumed)
        return copy

    def __getstate__(self) -> dict[str, Any]:
        # Only the pending start travels (a sampler's own ``__getstate__`` puts its position
        # there first, see :meth:`copied`).
        return {"batch_size": self.batch_size, "pending": self.pending}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.batch_size = state["batch_size"]
        self.pending = state["pending"]
        self.run = None
        self.cache = None

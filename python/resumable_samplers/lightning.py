r"""
Sampler resume for Lightning
============================

Resume a resumable sampler at exactly the next batch from Lightning's own checkpoint, with a plain
``DataLoader`` and any number of workers, in one process or under DDP.

Needs Lightning (``pip install lightning``, or ``pip install ".[lightning]"`` in a clone); works
with the ``lightning`` package (``lightning.pytorch``) and with ``pytorch_lightning``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from resumable_samplers.length import ResumableTokenBudgetBatchSampler
from resumable_samplers.samplers import Resumable

__all__ = ["SamplerResume", "loader_positions"]

# What Lightning puts around a sampler it shards under DDP (``use_distributed_sampler=True``).
_LIGHTNING_WRAPPERS = ("DistributedSamplerWrapper", "UnrepeatedDistributedSamplerWrapper")


def _callback_bases() -> tuple[type, ...]:
    """Lightning's ``Callback`` class of every installed namespace, so one callback works with a
    ``lightning.pytorch`` and a ``pytorch_lightning`` ``Trainer``."""
    bases = []
    for name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        bases.append(module.Callback)
    if not bases:
        raise ImportError(
            "resumable_samplers.lightning needs Lightning (the lightning or pytorch_lightning "
            "package): pip install lightning"
        )
    return tuple(bases)


_Callback: Any = type("_Callback", _callback_bases(), {})


def _resumable_object(obj: Any) -> bool:
    """Whether ``obj`` is a resumable sampler or batch sampler (:class:`Resumable`)."""
    return isinstance(obj, Resumable)


def _loader_batch_size(loader: Any) -> int | None:
    size = getattr(loader, "batch_size", None)
    if size is None:
        size = getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
    return size if isinstance(size, int) else None


def _refuse_wrapped(wrapper: Any) -> None:
    """Raise if Lightning has wrapped a resumable sampler in its ``DistributedSamplerWrapper``."""
    inner = getattr(getattr(wrapper, "dataset", None), "_sampler", None)
    if not _resumable_object(inner):
        return
    what = (
        f"Lightning has wrapped the {type(inner).__name__} of the train DataLoader in its "
        f"{type(wrapper).__name__} to shard it over {wrapper.num_replicas} processes, which "
        "reshuffles it and cannot resume it mid-epoch."
    )
    if hasattr(inner, "num_replicas"):  # it shards itself over the process group
        raise ValueError(
            f"{what} The {type(inner).__name__} shards itself (num_replicas and rank default to "
            "the process group's): keep Lightning from wrapping it with "
            "Trainer(use_distributed_sampler=False)."
        )
    raise ValueError(
        f"{what} Under DDP, give the DataLoader a ResumableDistributedSampler (same seed and "
        "batch_size): Lightning keeps a DistributedSampler as it is."
    )


class _Driving(NamedTuple):
    """What drives one train loader: its resumable samplers (positions in the loader's
    batches) and its resumable batch sampler, whose epoch Lightning does not set."""

    samplers: list[Any]
    batch_sampler: Any


def _resumable(loader: Any) -> _Driving:
    """The resumable objects that drive ``loader``; raises for one the callback cannot resume."""
    sampler = getattr(loader, "sampler", None)
    batch_sampler = getattr(loader, "batch_sampler", None)
    inner = getattr(batch_sampler, "sampler", None)
    found: dict[int, Any] = {}
    for obj in (sampler, batch_sampler, inner):
        if obj is not None:
            found[id(obj)] = obj
    samplers: list[Any] = []
    own_batches = None
    for obj in found.values():
        if type(obj).__name__ in _LIGHTNING_WRAPPERS:
            _refuse_wrapped(obj)
        if not _resumable_object(obj):
            continue
        if obj is batch_sampler:
            own_batches = obj  # a resumable batch sampler: its positions count batches
            continue
        if obj is inner and _resumable_object(batch_sampler):
            continue  # a resumable batch sampler moves its own sampler
        samplers.append(obj)
    size = _loader_batch_size(loader)
    for obj in samplers:
        if isinstance(obj, ResumableTokenBudgetBatchSampler):
            if size is not None:  # DataLoader(sampler=<batch sampler>, batch_size=...)
                raise ValueError(
                    f"the {type(obj).__name__} of the train DataLoader makes the batches itself: "
                    "give it as DataLoader(batch_sampler=...), not as its sampler"
                )
            continue
        if obj is inner and size is None:
            raise ValueError(
                f"the train DataLoader's {type(batch_sampler).__name__} draws its batches from "
                f"a {type(obj).__name__} but has no batch_size: SamplerResume cannot tell where "
                "a batch count is in the sampler. Give the DataLoader batch_size=..., or a "
                "resumable batch sampler"
            )
        if size is not None and obj.batch_size != size:
            raise ValueError(
                f"the train DataLoader makes batches of {size} but its {type(obj).__name__} "
                f"has batch_size={obj.batch_size}; give the sampler the loader's batch size"
            )
    return _Driving(samplers, own_batches)


def _combined(trainer: Any) -> tuple[list[Any], str, list[float] | None]:
    """The train loaders as Lightning combines them, the mode and the per-loader limits."""
    combined = getattr(trainer.fit_loop, "_combined_loader", None)
    if combined is not None:
        return list(combined.flattened), str(combined._mode), combined.limits
    return list(_flatten(trainer.train_dataloader)), "max_size_cycle", None


def _flatten(obj: Any) -> Iterator[Any]:
    """The data loaders of a loader, or of a dict/list of them."""
    if isinstance(obj, Mapping):
        for value in obj.values():
            yield from _flatten(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _flatten(value)
    elif obj is not None:
        yield obj


def loader_positions(
    mode: str, lengths: list[float], done: int, limits: list[float] | None = None
) -> list[tuple[int, bool]]:
    """Where each loader of a ``CombinedLoader`` is after ``done`` batches of the combined
    iteration: the batches taken from its current pass, and whether it has been restarted.

    The modes are Lightning's: ``"min_size"`` and ``"max_size"`` take one batch of every loader
    per step (``"max_size"`` none from an exhausted one); ``"max_size_cycle"`` restarts an
    exhausted loader (a new iterator of the same epoch) when the step after its last batch
    comes; ``"sequential"`` takes each loader to its end (or its limit) before the next.

    Args:
        mode: the ``CombinedLoader``'s mode.
        lengths: each loader's number of batches in the epoch (``float("inf")`` without one).
        done: the batches of the combined iteration taken so far.
        limits: the per-loader limits Lightning sets (``limit_train_batches``); only
            ``"sequential"`` stops a loader at its limit.

    Returns:
        One ``(batches, restarted)`` per loader: the batches taken from its current pass (a
        restarted loader at the end of a pass restarts again at the next step), and whether
        ``"max_size_cycle"`` has restarted it in this iteration.

    Raises:
        ValueError: for an unknown mode.
    """
    if mode == "min_size":
        return [(done, False) for _ in lengths]
    if mode == "max_size":
        return [(int(min(done, length)), False) for length in lengths]
    if mode == "max_size_cycle":
        out = []
        for length in lengths:
            if done <= length or length == 0:
                out.append((done, False))
            else:
                out.append(((done - 1) % int(length) + 1, True))
        return out
    if mode == "sequential":
        out, left = [], done
        for i, length in enumerate(lengths):
            if limits is not None:
                length = min(length, limits[i])
            take = int(min(left, length))
            out.append((take, False))
            left -= take
        return out
    raise ValueError(f"unknown CombinedLoader mode {mode!r}")


def _batches_done(trainer: Any) -> int:
    """How many batches of the current epoch the restored checkpoint had trained, by Lightning's
    own loop counters (the number Lightning itself continues counting from)."""
    # The epoch loop's counters as the checkpoint saved them (the loop resets them later, once
    # this hook has run). They are read whether or not Lightning marks the loop as restarting: a
    # checkpoint taken mid-epoch in a run that was itself resumed from the last batch of an epoch
    # has epoch counters that say "between epochs" (Lightning 2.6 does not count the resumed
    # epoch as started), while its batch counters hold the true position.
    current = trainer.fit_loop.epoch_loop.batch_progress.current
    on_batch_end = current.ready == current.started == current.processed == current.completed + 1
    # A checkpoint taken in ``on_train_batch_end`` (ModelCheckpoint, ``trainer.save_checkpoint``)
    # has that batch processed but not yet completed; Lightning counts it as done.
    done = current.processed if on_batch_end else current.completed
    if done >= trainer.num_training_batches:
        return 0  # the epoch was complete: Lightning has moved on to the next one
    return int(done)


class SamplerResume(_Callback):  # type: ignore[misc]
    r"""Resume the train loaders' resumable samplers exactly where Lightning's checkpoint stopped.

    Lightning restores the model, the optimizer and its loop counters from a checkpoint, but a plain
    ``DataLoader`` starts its epoch over. With this callback, a run resumed with
    ``trainer.fit(..., ckpt_path=...)`` continues at the next batch of the saved epoch, in the
    uninterrupted run's order: before the first batch, it seeks every resumable sampler of the
    train loaders (:class:`~resumable_samplers.ResumableRandomSampler`,
    :class:`~resumable_samplers.ResumableDistributedSampler`, the length-grouped and mixture
    samplers, a helios-style subclass of :class:`~resumable_samplers.ResumableSampler`) and every
    resumable batch sampler (:class:`~resumable_samplers.ResumableTokenBudgetBatchSampler` given
    as ``batch_sampler``) to the epoch and batch count of Lightning's loop progress (no extra
    checkpoint field), and restarts the loaders' iterator, whose workers may already have
    fetched from the epoch's start. It also sets the epoch of a resumable batch sampler at the
    start of every epoch (Lightning sets the epoch of samplers only).

    Several train loaders (a dict or list from ``train_dataloader()``, or a ``CombinedLoader``)
    each resume at their own position in the combined iteration: in ``"max_size_cycle"`` (the
    default), a shorter loader that was restarted continues its current pass; in ``"max_size"``
    an exhausted one stays exhausted (see :func:`loader_positions`).

    Works with any ``num_workers``, in one process or under DDP (give the loader a
    :class:`~resumable_samplers.ResumableDistributedSampler`: Lightning wraps any other sampler in
    its ``DistributedSamplerWrapper``, which this callback refuses at the start of training; a
    length-grouped or mixture sampler, or a token-budget batch sampler, shards itself over the
    process group: keep Lightning from wrapping it with ``Trainer(use_distributed_sampler=False)``).
    A ``StatefulDataLoader`` works too: the seek is absolute, so a position the loader's restored
    state has given the sampler is replaced, never added to. (On its own, a ``StatefulDataLoader``
    does not always resume exactly under Lightning 2.6: with workers, Lightning starts the
    iterator before it sets the epoch, and it does not restore the loader from a checkpoint taken
    mid-epoch by a run that was itself resumed after the last batch of an epoch.)

    Example::

        >>> from lightning.pytorch import Trainer
        >>> from resumable_samplers.lightning import SamplerResume
        >>> trainer = Trainer(callbacks=[SamplerResume()])
        >>> trainer.fit(model, ckpt_path="last.ckpt")  # doctest: +SKIP

    Raises:
        ValueError: at the start of training, if Lightning has wrapped a resumable sampler in its
            ``DistributedSamplerWrapper`` (DDP with a non-distributed sampler), if a sampler's
            ``batch_size`` is not its loader's, or if a resumable sampler drives a loader whose
            batches the callback cannot count in it (a batch sampler without ``batch_size``, a
            token-budget batch sampler given as ``sampler`` of a batching loader).
    """

    def __init__(self) -> None:
        super().__init__()
        self._resuming = False

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        """Note that the run resumes from a checkpoint."""
        self._resuming = True

    def _found(self, trainer: Any) -> list[_Driving]:
        loaders, _, _ = _combined(trainer)
        return [_resumable(loader) for loader in loaders]

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Seek every loader's samplers to the restored epoch and to that loader's batch, then
        restart the train iterator."""
        loaders, mode, limits = _combined(trainer)
        found = [_resumable(loader) for loader in loaders]
        if not (self._resuming and any(f.samplers or f.batch_sampler for f in found)):
            return
        epoch = int(trainer.fit_loop.epoch_progress.current.processed)
        done = _batches_done(trainer)
        # A loader's length can depend on the epoch (a token-budget batch sampler's does).
        for f in found:
            for obj in (*f.samplers, f.batch_sampler):
                if obj is not None:
                    obj.set_epoch(epoch)
        lengths = [_length(loader) for loader in loaders]
        positions = loader_positions(mode, lengths, done, limits)
        for f, (batches, _) in zip(found, positions, strict=True):
            for obj in (*f.samplers, f.batch_sampler):
                if obj is not None:
                    obj.seek(epoch, batches)
        # Lightning made the epoch's iterator before this hook (and before it set the epoch); with
        # workers, it has drawn indices already. A new one starts at the samplers' new positions.
        fetcher = getattr(trainer.fit_loop, "_data_fetcher", None)
        if fetcher is not None:
            iter(fetcher)
            restarted = getattr(
                getattr(fetcher.combined_loader, "_iterator", None), "_consumed", None
            )
            if isinstance(restarted, list) and len(restarted) == len(positions):
                # "max_size_cycle" ends the epoch once every loader has been restarted.
                restarted[:] = [r for _, r in positions]

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        """Set the epoch of resumable batch samplers (Lightning sets the epoch of samplers only),
        before the epoch's iterator starts."""
        epoch = int(trainer.fit_loop.epoch_progress.current.processed)
        for f in self._found(trainer):
            if f.batch_sampler is not None:
                f.batch_sampler.set_epoch(epoch)


def _length(loader: Any) -> float:
    """The number of batches of a loader's epoch, or infinity without a length."""
    try:
        return len(loader)
    except TypeError:
        return float("inf")

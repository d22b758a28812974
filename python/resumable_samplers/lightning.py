r"""
Sampler resume for Lightning
============================

Resume a resumable sampler at exactly the next batch from Lightning's own checkpoint, with a plain
``DataLoader`` and any number of workers, in one process or under DDP.

Needs Lightning (``pip install "resumable-samplers[lightning]"``); works with the ``lightning``
package (``lightning.pytorch``) and with ``pytorch_lightning``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from resumable_samplers.samplers import (
    ResumableDistributedSampler,
    ResumableSampler,
    ResumableSamplerType,
)

__all__ = ["SamplerResume"]

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
            "package): pip install 'resumable-samplers[lightning]'"
        )
    return tuple(bases)


_Callback: Any = type("_Callback", _callback_bases(), {})


def _loaders(obj: Any) -> Iterator[Any]:
    """The data loaders of ``trainer.train_dataloader`` (a loader, or a dict/list of them)."""
    if isinstance(obj, Mapping):
        for value in obj.values():
            yield from _loaders(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _loaders(value)
    elif obj is not None:
        yield obj


def _samplers(loader: Any) -> list[Any]:
    """The loader's sampler and its batch sampler's sampler, each once."""
    found: dict[int, Any] = {}
    for sampler in (
        getattr(loader, "sampler", None),
        getattr(getattr(loader, "batch_sampler", None), "sampler", None),
    ):
        if sampler is not None:
            found[id(sampler)] = sampler
    return list(found.values())


def _loader_batch_size(loader: Any) -> int | None:
    size = getattr(loader, "batch_size", None)
    if size is None:
        size = getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
    return size if isinstance(size, int) else None


def _resumable(loader: Any) -> list[ResumableSamplerType]:
    """The resumable samplers that drive ``loader``; raises if Lightning has wrapped one."""
    ours: list[ResumableSamplerType] = []
    for sampler in _samplers(loader):
        if type(sampler).__name__ in _LIGHTNING_WRAPPERS:
            inner = getattr(getattr(sampler, "dataset", None), "_sampler", None)
            if isinstance(inner, (ResumableSampler, ResumableDistributedSampler)):
                raise ValueError(
                    f"Lightning has wrapped the {type(inner).__name__} of the train DataLoader in "
                    f"its {type(sampler).__name__} to shard it over {sampler.num_replicas} "
                    "processes, which reshuffles it and cannot resume it mid-epoch. Under DDP, "
                    "give the DataLoader a ResumableDistributedSampler (same seed and "
                    "batch_size): Lightning keeps a DistributedSampler as it is."
                )
        if isinstance(sampler, (ResumableSampler, ResumableDistributedSampler)):
            ours.append(sampler)
    size = _loader_batch_size(loader)
    for sampler in ours:
        if size is not None and sampler.batch_size != size:
            raise ValueError(
                f"the train DataLoader makes batches of {size} but its {type(sampler).__name__} "
                f"has batch_size={sampler.batch_size}; give the sampler the loader's batch size"
            )
    return ours


def _seek(sampler: Any, epoch: int, batches: int) -> None:
    """``sampler.seek(epoch, batches)``; a helios-style subclass of ``ResumableSampler`` (only
    ``__iter__``/``__len__``) gets the epoch and ``start_iter`` instead."""
    if hasattr(sampler, "seek"):
        sampler.seek(epoch, batches)
    else:
        sampler.set_epoch(epoch)
        sampler.start_iter = batches


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
    r"""Resume the train loader's resumable sampler exactly where Lightning's checkpoint stopped.

    Lightning restores the model, the optimizer and its loop counters from a checkpoint, but a plain
    ``DataLoader`` starts its epoch over. With this callback, a run resumed with
    ``trainer.fit(..., ckpt_path=...)`` continues at the next batch of the saved epoch, in the
    uninterrupted run's order: before the first batch, it seeks every
    :class:`~resumable_samplers.ResumableRandomSampler`,
    :class:`~resumable_samplers.ResumableSequentialSampler` or
    :class:`~resumable_samplers.ResumableDistributedSampler` of the train loaders to the epoch and
    batch count of Lightning's loop progress (no extra checkpoint field), and restarts the
    loader's iterator, whose workers may already have fetched from the epoch's start.

    Works with any ``num_workers``, in one process or under DDP (give the loader a
    :class:`~resumable_samplers.ResumableDistributedSampler`: Lightning wraps any other sampler in
    its ``DistributedSamplerWrapper``, which this callback refuses at the start of training). A
    ``StatefulDataLoader`` works too: the seek is absolute, so a position the loader's restored
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
            ``DistributedSamplerWrapper`` (DDP with a non-distributed sampler), or if a sampler's
            ``batch_size`` is not its loader's.
    """

    def __init__(self) -> None:
        super().__init__()
        self._resuming = False

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        """Note that the run resumes from a checkpoint."""
        self._resuming = True

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Seek the samplers to the restored epoch and batch, then restart the train iterator."""
        samplers = [s for dl in _loaders(trainer.train_dataloader) for s in _resumable(dl)]
        if not (self._resuming and samplers):
            return
        epoch = int(trainer.fit_loop.epoch_progress.current.processed)
        done = _batches_done(trainer)
        for sampler in samplers:
            _seek(sampler, epoch, done)
        # Lightning made the epoch's iterator before this hook (and before it set the epoch); with
        # workers, it has drawn indices already. A new one starts at the sampler's new position.
        fetcher = getattr(trainer.fit_loop, "_data_fetcher", None)
        if fetcher is not None:
            iter(fetcher)

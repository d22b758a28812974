r"""
Resumable sampling for transformers' ``Trainer``
================================================

Needs transformers and accelerate (``pip install transformers accelerate``, or
``pip install ".[transformers]"`` in a clone).

:class:`ResumableTrainerMixin` goes first among the bases of a ``Trainer`` class (transformers'
own, or any subclass such as TRL's ``SFTTrainer``)::

    class MyTrainer(ResumableTrainerMixin, Trainer):
        pass

Nothing else in the training code changes. The trainer then samples with this library's
samplers, in the order the stock ``Trainer`` trains on, and a run resumed with
``trainer.train(resume_from_checkpoint=...)`` continues at exactly the next batch without walking
the batches trained before the checkpoint.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
from accelerate.data_loader import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    BatchSamplerShard,
    SkipBatchSampler,
    skip_first_batches,
)

from resumable_samplers import _checks, _core
from resumable_samplers.length import ResumableLengthGroupedSampler
from resumable_samplers.permutation import PERMUTATIONS
from resumable_samplers.samplers import (
    Resumable,
    ResumableRandomSampler,
    ResumableSequentialSampler,
    _ResumableOrder,
)

__all__ = ["STRATEGIES", "ResumableTrainerMixin"]

STRATEGIES = ("random", "sequential", "group_by_length")
"""The values of ``TrainingArguments.train_sampling_strategy`` the mixin samples with."""


def _dataset_lengths(trainer: Any, dataset: Any) -> npt.NDArray[np.int64]:
    """The length of every training sample, for ``group_by_length``, as transformers takes them:
    a ``datasets.Dataset``'s ``length_column_name`` column when it has one, else ``len`` of each
    sample's first model input (``input_ids`` without a processing class). A dataset with
    ``column_names`` (a ``datasets.Dataset``) is read a column at a time."""
    args = trainer.args
    processing = getattr(trainer, "processing_class", None)
    names = getattr(processing, "model_input_names", None)
    name = names[0] if names else "input_ids"
    columns = getattr(dataset, "column_names", None)
    if isinstance(columns, list):
        if args.length_column_name in columns:
            return np.asarray(dataset[args.length_column_name], dtype=np.int64)
        if name in columns:
            return np.fromiter(map(len, dataset[name]), dtype=np.int64, count=len(dataset))
        raise ValueError(
            "train_sampling_strategy='group_by_length' needs the length of every sample: the "
            f"training dataset has neither a {args.length_column_name!r} column "
            f"(length_column_name) nor a {name!r} column; its columns are {columns}"
        )
    first = dataset[0]
    if not hasattr(first, "keys") or name not in first:
        raise ValueError(
            "train_sampling_strategy='group_by_length' can only compute lengths for a dataset "
            f"whose items are dicts with a {name!r} key"
        )
    return np.fromiter((len(dataset[i][name]) for i in range(len(dataset))), np.int64, len(dataset))


def _batch_chain(batch_sampler: Any) -> list[Any]:
    """The batch samplers around a sampler, outermost first (accelerate's ``SkipBatchSampler`` and
    ``BatchSamplerShard`` around the loader's ``BatchSampler``)."""
    chain = [batch_sampler]
    while hasattr(chain[-1], "batch_sampler"):
        chain.append(chain[-1].batch_sampler)
    return chain


def _epoch_head(sampler: Resumable, count: int) -> list[int]:
    """The first ``count`` indices of the sampler's current epoch, leaving its pending start as
    it is. A library sampler reads them from its (cached) epoch without starting an iterator:
    O(count) for the lazy order, a view of the stored epoch otherwise; a helios-style sampler
    from an iterator of the whole epoch."""
    if isinstance(sampler, _ResumableOrder):
        epoch = sampler._resume.head(sampler)
        return list(itertools.islice(epoch.reader(0, ahead=False), count))
    skip = sampler.start_iter
    sampler.start_iter = 0
    try:
        return list(itertools.islice(iter(sampler), count))
    finally:
        sampler.start_iter = skip


class _Prefixed:
    """A batch sampler that yields ``head`` before the batches of ``batch_sampler``."""

    def __init__(self, head: list[list[int]], batch_sampler: Any) -> None:
        self.head = head
        self.batch_sampler = batch_sampler
        self.batch_size = batch_sampler.batch_size
        self.drop_last = batch_sampler.drop_last

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.head
        yield from self.batch_sampler

    def __len__(self) -> int:
        return len(self.head) + len(self.batch_sampler)


class ResumedBatchSampler(SkipBatchSampler):  # type: ignore[misc]
    """accelerate's ``SkipBatchSampler``, in O(1): the batches of ``batch_sampler`` after its first
    ``skip_batches``, the skipped ones never drawn from the sampler.

    ``batch_sampler`` is a ``BatchSampler`` over a resumable sampler, or accelerate's
    ``BatchSamplerShard`` around one. The sampler seeks to the first batch not skipped (over all
    processes); when accelerate shards the batches, the last step of the epoch is padded, as in
    the uninterrupted epoch, with the epoch's first batches, which are read from the sampler's
    epoch without being fetched.

    Args:
        batch_sampler: the batch sampler of the loader prepared by accelerate.
        skip_batches: how many of this process's batches to skip.
    """

    def __init__(self, batch_sampler: Any, skip_batches: int = 0) -> None:
        super().__init__(batch_sampler, _checks.non_negative_int("skip_batches", skip_batches))
        shard = batch_sampler if isinstance(batch_sampler, BatchSamplerShard) else None
        inner = shard.batch_sampler if shard is not None else batch_sampler
        sampler = getattr(inner, "sampler", None)
        if not isinstance(sampler, Resumable):
            raise ValueError(
                "ResumedBatchSampler needs a batch sampler over a resumable sampler, got "
                f"{type(sampler).__name__}"
            )
        replicas = getattr(sampler, "num_replicas", 1)
        if shard is not None and shard.num_processes > 1 and replicas > 1:
            raise ValueError(
                f"accelerate shards the batches over {shard.num_processes} processes and the "
                f"{type(sampler).__name__} is already sharded over {replicas}: each process would "
                f"train on about 1/{shard.num_processes * replicas} of the data"
            )
        size = getattr(inner, "batch_size", None)
        if size != sampler.batch_size:
            raise ValueError(
                f"the DataLoader makes batches of {size} but its {type(sampler).__name__} has "
                f"batch_size={sampler.batch_size}; give the sampler the loader's batch size"
            )
        self.shard: Any = shard
        self.inner = inner
        self.resumable: Any = sampler

    @property
    def sampler(self) -> Any:
        """The resumable sampler (``DataLoaderShard.set_epoch`` reaches it here)."""
        return self.resumable

    def __iter__(self) -> Iterator[list[int]]:
        shard, skip, sampler = self.shard, self.skip_batches, self.resumable
        if shard is None or shard.num_processes == 1:
            sampler.seek(sampler.epoch, skip)
            yield from self.batch_sampler
            return
        processes = shard.num_processes
        per_step = 1 if shard.split_batches else processes  # the loader's batches in a step
        sampler.seek(sampler.epoch, skip * per_step)
        if not skip:
            yield from self.batch_sampler
            return
        # accelerate pads the epoch's last step with the first batches of the iteration: give it
        # the epoch's, then drop the batch of them this process already trained on.
        b = sampler.batch_size
        first = _epoch_head(sampler, per_step * b)
        head = [first[i : i + b] for i in range(0, len(first), b)]
        resumed = BatchSamplerShard(
            _Prefixed(head, self.inner),
            num_processes=processes,
            process_index=shard.process_index,
            split_batches=shard.split_batches,
            even_batches=shard.even_batches,
        )
        batches = iter(resumed)
        next(batches, None)
        yield from batches


class ResumableTrainerMixin:
    """Makes a transformers ``Trainer`` (or a subclass) sample with resumable samplers and resume
    a checkpoint in O(1).

    Put it first among the bases: ``class MyTrainer(ResumableTrainerMixin, Trainer)``.

    - **The stock order.** The sampler is chosen from ``train_sampling_strategy`` as the stock
      ``Trainer`` chooses it, in the same order: ``"random"`` (the default) is
      :class:`~resumable_samplers.ResumableRandomSampler` seeded with accelerate's seed (the
      ``data_seed`` argument, else the seed the ``Trainer`` set, i.e. ``seed``), so epoch ``e`` is
      ``torch.randperm(n, generator=torch.Generator().manual_seed(seed + e))``, accelerate's
      ``SeedableRandomSampler`` order; ``"sequential"`` is
      :class:`~resumable_samplers.ResumableSequentialSampler`; ``"group_by_length"`` is
      :class:`~resumable_samplers.ResumableLengthGroupedSampler` with transformers' megabatches
      (``per_device_train_batch_size * gradient_accumulation_steps`` samples a batch), epoch
      ``e`` seeded with ``seed + e``. accelerate shards the batches over the processes as it does
      for the stock sampler.
    - **O(1) resume.** ``trainer.train(resume_from_checkpoint=...)`` continues at the batch after
      the checkpoint: the position comes from the checkpoint's ``trainer_state.json``, as for the
      stock ``Trainer``, and the sampler seeks there instead of replaying the epoch's batches
      (see :class:`ResumedBatchSampler`). ``ignore_data_skip=True`` starts the epoch over, as it
      does for the stock ``Trainer``.

    Attributes:
        sampler_permutation: the order of a ``"random"`` epoch: ``"torch"`` (the default, the
            stock order) or ``"lazy"``, computed one index at a time with no O(n) memory (another
            order; see :data:`~resumable_samplers.PERMUTATIONS`). Set it on the class or on the
            instance before ``train()``.

    Raises:
        ValueError: at ``train()``, for a set-up whose order cannot be reproduced or resumed
            exactly: another ``train_sampling_strategy`` (``"batch_rebalance"``), accelerate's
            ``use_seedable_sampler=False`` or ``dispatch_batches=True``, or the lazy order with
            ``group_by_length``.
    """

    sampler_permutation: str = "torch"

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        trainer: Any = self
        dataset = trainer.train_dataset if train_dataset is None else train_dataset
        if dataset is None or not _has_len(dataset):
            return super()._get_train_sampler(train_dataset)  # type: ignore[misc]
        args = trainer.args
        if getattr(super(), "get_resumed_dataloader", None) is None or not hasattr(
            args, "train_sampling_strategy"
        ):
            raise ValueError(
                "ResumableTrainerMixin needs a transformers Trainer with get_resumed_dataloader "
                "and TrainingArguments.train_sampling_strategy (transformers 5; tested with "
                f"5.25), got transformers {_transformers_version()}: its Trainer would resume "
                "without the mixin"
            )
        strategy = args.train_sampling_strategy
        if strategy not in STRATEGIES:
            raise ValueError(
                "ResumableTrainerMixin samples with train_sampling_strategy in "
                f"{list(STRATEGIES)}, got {strategy!r}; remove the mixin to train with it "
                "(without an O(1) resume)"
            )
        permutation = _checks.choice("sampler_permutation", self.sampler_permutation, PERMUTATIONS)
        config = trainer.accelerator.dataloader_config
        if getattr(config, "dispatch_batches", None):
            raise ValueError(
                "ResumableTrainerMixin does not resume accelerate's dispatch_batches=True (one "
                "process reads and sends every batch); set accelerator_config={'dispatch_batches': "
                "False}"
            )
        batch_size = trainer._train_batch_size
        if strategy == "sequential":
            return ResumableSequentialSampler(dataset, batch_size=batch_size)
        seed = args.data_seed if args.data_seed is not None else args.seed
        if strategy == "group_by_length":
            if permutation != "torch":
                raise ValueError(
                    "train_sampling_strategy='group_by_length' orders its epochs with torch's "
                    f"permutation; sampler_permutation should be 'torch', got {permutation!r}"
                )
            lengths = _dataset_lengths(trainer, dataset)
            accumulation = args.gradient_accumulation_steps
            # transformers' megabatches: `mult` batches of train_batch_size * accumulation samples
            mult = _core.default_megabatch_mult(len(lengths), batch_size * accumulation)
            return ResumableLengthGroupedSampler(
                lengths,
                batch_size,
                seed=seed,
                megabatch_mult=mult * accumulation,
                num_replicas=1,
                rank=0,
            )
        if not getattr(config, "use_seedable_sampler", True):
            raise ValueError(
                "with accelerate's use_seedable_sampler=False the stock Trainer draws each "
                "epoch's order from a fresh random seed, which cannot be resumed exactly; leave "
                "accelerator_config's use_seedable_sampler at True (the default)"
            )
        # accelerate seeds SeedableRandomSampler with data_seed, else torch's initial seed, which
        # the Trainer set to `seed` (read now, as accelerate reads it when the loader is prepared)
        import torch

        if args.data_seed is None:
            seed = torch.random.initial_seed()
        return ResumableRandomSampler(
            dataset, seed=seed, batch_size=batch_size, permutation=permutation
        )

    def get_train_dataloader(self) -> Any:
        """The stock ``Trainer``'s training loader, checked: a map-style dataset must be sampled
        by a resumable sampler with the loader's batch size, not sharded twice.

        Raises:
            ValueError: if the loader (for example from a subclass's ``_get_train_sampler``)
                samples with a sampler that cannot resume in O(1), or with a resumable one that
                it cannot resume exactly.
        """
        loader = super().get_train_dataloader()  # type: ignore[misc]
        if not _is_iterable(getattr(loader, "dataset", None)):
            ResumedBatchSampler(_checked_batch_sampler(loader))  # raises what it cannot resume
        return loader

    def get_resumed_dataloader(self, dataloader: Any, num_batches: int) -> Any:
        """The training loader of the resumed epoch, starting after its first ``num_batches``
        batches (of this process): the stock ``Trainer``'s loader, whose sampler seeks there in
        O(1) instead of replaying the batches before it."""
        if _is_iterable(getattr(dataloader, "dataset", None)):  # no sampler to seek
            return super().get_resumed_dataloader(dataloader, num_batches)  # type: ignore[misc]
        _checked_batch_sampler(dataloader)
        resumed = ResumedBatchSampler(dataloader.batch_sampler, num_batches)
        loader = skip_first_batches(dataloader, 0)  # accelerate's loader of a resumed epoch
        outer = loader.batch_sampler
        if not isinstance(outer, SkipBatchSampler):
            raise ValueError(
                f"ResumableTrainerMixin resumes accelerate's DataLoaderShard, got "
                f"{type(dataloader).__name__}"
            )
        outer.batch_sampler = resumed
        return loader


def _checked_batch_sampler(loader: Any) -> Any:
    """The batch sampler of a training loader of a map-style dataset, checked to draw from a
    resumable sampler.

    Raises:
        ValueError: naming the sampler (or batch sampler) that cannot resume in O(1).
    """
    chain = _batch_chain(getattr(loader, "batch_sampler", None))
    sampler = getattr(chain[-1], "sampler", None)
    if not isinstance(sampler, Resumable):
        found = next((b for b in chain if isinstance(b, Resumable)), sampler)
        raise ValueError(
            "ResumableTrainerMixin resumes a training DataLoader whose sampler is a resumable "
            f"sampler with the loader's batch size, got a {type(found).__name__} (the Trainer "
            "counts batches of per_device_train_batch_size); return one from "
            "_get_train_sampler (or leave it to the mixin), or remove the mixin"
        )
    return loader.batch_sampler


def _is_iterable(dataset: Any) -> bool:
    import torch.utils.data as tud

    return isinstance(dataset, tud.IterableDataset)


def _transformers_version() -> str:
    import transformers

    return str(transformers.__version__)


def _has_len(dataset: Any) -> bool:
    """Whether ``len(dataset)`` works (transformers' ``has_length``)."""
    try:
        len(dataset)
    except (TypeError, NotImplementedError, AttributeError):
        return False
    return True

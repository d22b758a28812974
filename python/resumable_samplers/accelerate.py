"""Resume a resumable sampler exactly with accelerate's ``save_state``/``load_state``.

Needs accelerate (``pip install accelerate``, or ``pip install ".[accelerate]"`` in a clone).

``accelerator.prepare()`` shards a ``DataLoader`` itself: every process takes every
``num_processes``-th batch of the loader's sampler, so the sampler to give it is a
non-distributed one (:class:`~resumable_samplers.ResumableRandomSampler` or
:class:`~resumable_samplers.ResumableSequentialSampler`), the same on every process.
:class:`LoaderProgress` counts the batches the loop has trained on, is saved and restored with
the rest of the state through ``accelerator.register_for_checkpointing``, and makes the resumed
epoch continue at exactly the next batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from resumable_samplers import _checks
from resumable_samplers.samplers import Resumable

__all__ = ["LoaderProgress"]


def _batch_samplers(dataloader: Any) -> list[Any]:
    """The chain of batch samplers of a (prepared) loader, outermost first: accelerate's
    ``SkipBatchSampler``/``BatchSamplerShard`` around the loader's ``BatchSampler``."""
    if not hasattr(dataloader, "batch_sampler"):
        raise TypeError(
            "dataloader should be a DataLoader (as accelerator.prepare() returns it), got "
            f"{type(dataloader).__name__}"
        )
    outer = dataloader.batch_sampler
    if outer is None:  # a loader built with sampler=<a BatchSampler> and batch_size=None
        outer = dataloader.sampler
    chain = [outer]
    while hasattr(chain[-1], "batch_sampler"):
        chain.append(chain[-1].batch_sampler)
    return chain


class LoaderProgress:
    """The epoch and the number of batches trained in it, for a loader prepared by accelerate.

    Iterate the loader through :meth:`iterate` and register this object with
    ``accelerator.register_for_checkpointing``: ``accelerator.save_state()`` then saves the epoch
    and the batches trained so far (not what the loader has read ahead: ``DataLoaderShard``
    fetches one batch ahead, and workers more), ``accelerator.load_state()`` restores them, and
    the restored epoch continues at exactly the next batch:

    - the sampler seeks there (O(1), see :meth:`~resumable_samplers.ResumableSampler.seek`): a
      step takes ``num_processes`` batches of the sampler, or one with ``split_batches=True``,
      whether each process reads its own (``DataLoaderShard``) or process 0 reads them all and
      sends each process its share (``dispatch_batches=True``);
    - when accelerate pads the epoch's last step with the first batches of the iteration (more
      than one process, ``even_batches``, no ``dispatch_batches``, and an epoch that does not
      split into whole steps), accelerate's ``skip_first_batches`` replays the epoch's indices
      from its start instead (no data is loaded for the skipped batches), so the padding is the
      uninterrupted run's;
    - with ``use_stateful_dataloader=True``, the loader's own state that ``load_state()``
      restored is set aside for the same seek: accelerate takes it where the loader has read
      ahead of the loop, and with more than one process, processes write it to one file.

    A checkpoint taken after the last batch of an epoch resumes with the next epoch. Take it
    after an optimizer step when accumulating gradients (``accelerator.sync_gradients``):
    accumulated gradients are not part of accelerate's checkpoint.

    Args:
        dataloader: the loader returned by ``accelerator.prepare()``; its sampler (or its batch
            sampler's) is a resumable sampler with the loader's batch size.

    Raises:
        ValueError: if the loader has no resumable sampler, if the sampler's ``batch_size`` is not
            the loader's, or if accelerate shards the batches of a
            :class:`~resumable_samplers.ResumableDistributedSampler` that is already sharded
            (every process would train on ``1 / num_processes**2`` of the data), or if
            ``dispatch_batches=True`` on more than one process completes the epoch's last step
            with the iteration's first samples (the epoch's samples do not split evenly over
            the processes in its last step, and the loader keeps its last batch): a resumed
            epoch starts elsewhere, so that padding cannot be resumed exactly.
    """

    def __init__(self, dataloader: Any) -> None:
        self.dataloader = dataloader
        self.epoch = 0
        self.batches = 0
        chain = _batch_samplers(dataloader)
        sampler = getattr(chain[-1], "sampler", None)
        if not isinstance(sampler, Resumable):
            raise ValueError(
                "the DataLoader's sampler should be a resumable sampler (ResumableRandomSampler, "
                f"ResumableSequentialSampler), got {type(sampler).__name__}"
            )
        self.sampler: Resumable = sampler
        from accelerate.data_loader import DataLoaderDispatcher  # type: ignore[import-untyped,import-not-found,unused-ignore]

        self._dispatch = isinstance(dataloader, DataLoaderDispatcher)
        self._drop_last = bool(getattr(chain[-1], "drop_last", False))
        if self._dispatch:
            # Process 0 reads the batches of every process and sends each its share: the chain
            # holds the loader's own batch sampler only.
            self._processes = int(dataloader.state.num_processes)
            self._split = bool(dataloader.split_batches)
            self._even = True
        else:
            shard = next((b for b in chain if hasattr(b, "num_processes")), None)
            self._processes = shard.num_processes if shard is not None else 1
            self._split = bool(getattr(shard, "split_batches", False))
            self._even = bool(getattr(shard, "even_batches", True))
        replicas = getattr(sampler, "num_replicas", 1)
        if self._processes > 1 and replicas > 1:
            raise ValueError(
                f"accelerate shards the batches of the DataLoader over {self._processes} "
                "processes itself, and its ResumableDistributedSampler is already sharded over "
                f"{replicas}: each process would train on about "
                f"1/{self._processes * replicas} of the data. Give the DataLoader a "
                "ResumableRandomSampler (the same seed on every process) instead."
            )
        size = getattr(chain[-1], "batch_size", None)
        if size is not None and size != sampler.batch_size:
            raise ValueError(
                f"the DataLoader makes batches of {size} but its {type(sampler).__name__} has "
                f"batch_size={sampler.batch_size}; give the sampler the loader's batch size"
            )
        if self._dispatch and self._padded():
            raise ValueError(
                f"with dispatch_batches=True on {self._processes} processes, accelerate completes "
                "the epoch's last step with the first samples of the iteration, which a resumed "
                f"epoch does not start with: {self._length()} samples in batches of "
                f"{sampler.batch_size} (split_batches={self._split}) cannot resume exactly. Give "
                "the DataLoader drop_last=True, a dataset whose last step splits evenly over the "
                "processes, or set dispatch_batches=False"
            )

    def state_dict(self) -> dict[str, int]:
        """The epoch and the batches of it trained so far (as the loop has received them)."""
        return {"epoch": self.epoch, "batches": self.batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the epoch and the batches trained in it; :meth:`iterate` continues there."""
        if not isinstance(state, dict) or set(state) != {"epoch", "batches"}:
            raise ValueError(
                f"a LoaderProgress state has the keys 'epoch' and 'batches', got {state!r}"
            )
        epoch = _checks.as_int("epoch", state["epoch"])
        batches = _checks.non_negative_int("batches", state["batches"])
        self.epoch, self.batches = epoch, batches  # a refused state changes nothing

    def iterate(self, epoch: int) -> Iterator[Any]:
        """The batches of ``epoch`` the loop has not trained on yet, counted as they are handed out.

        For the epoch restored by :meth:`load_state_dict`, this starts after its trained batches;
        any other epoch is whole. Sets the epoch of the loader (and so of the sampler) first.

        Raises:
            TypeError: at the call (not at the first batch), if ``epoch`` is not an integer.
        """
        return self._iterate(_checks.as_int("epoch", epoch))

    def _iterate(self, epoch: int) -> Iterator[Any]:
        skip = self.batches if epoch == self.epoch else 0
        self.epoch, self.batches = epoch, skip
        if hasattr(self.dataloader, "set_epoch"):  # accelerate's loaders; a plain one has none
            self.dataloader.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        if skip >= len(self.dataloader):
            return  # the checkpoint was taken after the epoch's last batch
        # A StatefulDataLoader's state restored by ``accelerator.load_state()`` is replaced by the
        # position counted here (the loader's own is taken where accelerate's read-ahead and its
        # processes disagree on it); the seek is absolute, as with a plain DataLoader.
        base: Any = getattr(self.dataloader, "base_dataloader", None)
        if getattr(base, "next_iter_state", None) is not None:
            base.next_iter_state = None
        loader = self.dataloader
        if skip:
            if self._padded():
                from accelerate import skip_first_batches  # type: ignore[import-untyped,import-not-found,unused-ignore]

                loader = skip_first_batches(self.dataloader, skip)
            else:
                # Each step of the loop takes `per_step` batches of the sampler, over all processes.
                self.sampler.seek(epoch, skip * (1 if self._split else self._processes))
        for batch in loader:
            self.batches += 1
            yield batch

    def _length(self) -> int:
        """The number of samples in an epoch of the sampler."""
        return len(self.sampler)

    def _padded(self) -> bool:
        """Whether accelerate pads the epoch's last step with batches from the iteration's start
        (what it pads with then depends on where the iteration started)."""
        if self._processes == 1 or self._drop_last or not self._even:
            return False
        n, b, w = self._length(), int(self.sampler.batch_size), self._processes
        if self._dispatch:
            # The last step's samples are sliced over the processes; a remainder is completed
            # with the first samples of the iteration.
            if n == 0:
                return False
            batches: int = -(-n // b)
            if self._split:
                return (n - b * (batches - 1)) % w != 0
            steps = -(-batches // w)
            return (n - b * w * (steps - 1)) % w != 0
        if n % b:
            return True
        return not self._split and (n // b) % w != 0

"""Section ``f``: transformers' ``Trainer``, stock against ``ResumableTrainerMixin``, as run in
a child process.

Both steps go through the ``Trainer``'s own data path, on a fresh ``Trainer`` each (one process,
batches of :data:`~resumable_samplers.bench.spec.TRAINER_BATCH_SIZE`, a map-style dataset of
``n`` items whose item ``i`` is ``{"idx": i}``, ``num_workers=0``, CPU):

- *first batch*: ``trainer.get_train_dataloader()``, ``set_epoch(0)`` and the first batch of
  ``iter(loader)``, what ``Trainer`` does at every epoch start;
- *resume at 50%*: the same loader, then ``trainer.get_resumed_dataloader(loader, k)`` with ``k``
  half the epoch's batches, ``set_epoch(0)`` and the first batch, what a run resumed from a
  checkpoint taken halfway through the epoch does.

``stock`` is ``transformers.Trainer`` (accelerate's ``SeedableRandomSampler``, and
``skip_first_batches`` to resume), ``ours`` the ``Trainer`` with the mixin (the same order) and
``lazy`` the mixin with ``sampler_permutation = "lazy"``. Both steps run once on 64 items first,
so that the one-time imports of the first loader are not timed.
"""

from __future__ import annotations

import importlib
import tempfile
import time
from collections.abc import Callable
from typing import Any

from resumable_samplers.bench.cases import Setup, Unavailable
from resumable_samplers.bench.spec import TRAINER_BATCH_SIZE, Spec

TRANSFORMERS_INSTALL = "pip install transformers accelerate"


def _trainer_factory(impl: str, seed: int) -> Callable[[int], Any]:
    """A function building a fresh ``impl`` ``Trainer`` over ``n`` items."""
    try:
        transformers = importlib.import_module("transformers")
        transformers.Trainer  # noqa: B018 (imports the trainer module and accelerate)
    except Exception as e:  # transformers itself, accelerate, or something they import
        raise Unavailable(
            f"cannot import transformers' Trainer: {e} ({TRANSFORMERS_INSTALL})"
        ) from e
    import torch

    from resumable_samplers.transformers import ResumableTrainerMixin

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"loss": self.w.sum()}

    class Trainer(ResumableTrainerMixin, transformers.Trainer):  # type: ignore[misc,name-defined]
        sampler_permutation = "lazy" if impl == "lazy" else "torch"

    cls = transformers.Trainer if impl == "stock" else Trainer
    output_dir = tempfile.mkdtemp(prefix="resumable-samplers-bench-")

    def collate(items: list[dict[str, int]]) -> dict[str, torch.Tensor]:
        return {"idx": torch.tensor([f["idx"] for f in items])}

    def make(n: int) -> Any:
        args = transformers.TrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=TRAINER_BATCH_SIZE,
            report_to=[],
            use_cpu=True,
            dataloader_pin_memory=False,
            seed=seed,
        )
        return cls(model=Model(), args=args, train_dataset=_Items(n), data_collator=collate)

    return make


class _Items:
    """``n`` items, item ``i`` being ``{"idx": i}`` (no data)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, int]:
        return {"idx": i}


def _first_batch(trainer: Any) -> tuple[float, int]:
    t0 = time.perf_counter()
    loader = trainer.get_train_dataloader()
    loader.set_epoch(0)
    batch = next(iter(loader))
    return time.perf_counter() - t0, int(batch["idx"][0])


def _resumed_batch(trainer: Any) -> tuple[float, int]:
    t0 = time.perf_counter()
    loader = trainer.get_train_dataloader()
    loader = trainer.get_resumed_dataloader(loader, len(loader) // 2)
    loader.set_epoch(0)
    batch = next(iter(loader))
    return time.perf_counter() - t0, int(batch["idx"][0])


def _setup_trainer(spec: Spec) -> Callable[[], dict[str, Any]]:
    make = _trainer_factory(spec.impl, spec.seed)
    _first_batch(make(64))
    _resumed_batch(make(64))

    def run() -> dict[str, Any]:
        first, resumed = [], []
        first_index = resume_first_index = -1
        for _ in range(spec.repeat):
            elapsed, first_index = _first_batch(make(spec.n))
            first.append(elapsed)
            elapsed, resume_first_index = _resumed_batch(make(spec.n))
            resumed.append(elapsed)
        return {
            "first_batch_s": min(first),
            "resume_s": min(resumed),
            "first_batch_times_s": first,
            "resume_times_s": resumed,
            "first_index": first_index,
            "resume_first_index": resume_first_index,
        }

    return run


SETUPS: dict[str, Setup] = {"trainer": _setup_trainer}
"""The case of section ``f``, by name."""

"""A dataset that iterates samplers inside DataLoader workers (importable by spawned workers).

With a map-style dataset the DataLoader iterates its sampler in the main process only; to run
our samplers inside the workers (after ``fork``, or unpickled after ``spawn``/``forkserver``),
this iterable dataset holds samplers and iterates them in each worker.
"""

from __future__ import annotations

from typing import Any

import torch.utils.data as tud


class SamplerStream(tud.IterableDataset[int]):
    """Yields the indices of ``samplers``, one after the other, in batches of ``batch_size``;
    worker ``w`` of ``k`` yields the batches ``w, w + k, ...``, so the DataLoader's in-order
    output is exactly the samplers' indices cut into batches."""

    def __init__(self, samplers: list[Any], batch_size: int) -> None:
        self.samplers = samplers
        self.batch_size = batch_size

    def __iter__(self) -> Any:
        info = tud.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        batch: list[int] = []
        number = 0
        for sampler in self.samplers:
            for i in sampler:
                batch.append(i)
                if len(batch) == self.batch_size:
                    if number % workers == worker:
                        yield from batch
                    batch, number = [], number + 1
        if batch and number % workers == worker:
            yield from batch

"""A map-style dataset over ``.npy`` shard files with a small cache, for
``ResumableShardSampler`` and a ``DataLoader`` (the recipe of docs/shards.md, which shows the
training loop and a resume)."""

from __future__ import annotations

# [start:dataset]
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset


class NpyShards(Dataset[torch.Tensor]):
    """The rows of ``.npy`` files in ``ConcatDataset`` order: index ``i`` is row
    ``i - starts[k]`` of file ``k``. Each process keeps the ``cache`` files it read last; with
    ``cache >= window`` a ``ResumableShardSampler`` makes a process that reads all of its rank's
    indices read each file once per epoch. DataLoader workers each hold their own cache and
    each sees batches from every window, so with ``w`` workers a file is read up to ``w`` times.
    """

    def __init__(self, paths: Sequence[str | Path], cache: int = 8) -> None:
        self.paths = [str(p) for p in paths]
        # Only the headers are read here: a memory map does not load the rows.
        self.sizes = np.array([np.load(p, mmap_mode="r").shape[0] for p in self.paths])
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)])
        self.cache = cache
        self.loads = 0  # files read by this process
        self._open: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return int(self.starts[-1])

    def shard(self, k: int) -> np.ndarray:
        """File ``k``'s rows, from the cache or read (evicting the least recently used)."""
        if k in self._open:
            self._open.move_to_end(k)
        else:
            self._open[k] = np.load(self.paths[k])
            self.loads += 1
            if len(self._open) > self.cache:
                self._open.popitem(last=False)
        return self._open[k]

    def __getitem__(self, i: int) -> torch.Tensor:
        k = int(np.searchsorted(self.starts, i, side="right")) - 1
        return torch.from_numpy(self.shard(k)[i - self.starts[k]])


# [end:dataset]
# [start:write]
def write_shards(root: Path, sizes: Sequence[int], seed: int = 0) -> list[Path]:
    """Shard files of ``sizes`` rows: row ``j`` of the whole dataset holds ``j`` in its first
    column (so a batch tells which indices it holds)."""
    paths, start = [], 0
    rng = np.random.default_rng(seed)
    for k, size in enumerate(sizes):
        rows = rng.standard_normal((size, 4)).astype(np.float32)
        rows[:, 0] = np.arange(start, start + size)
        path = root / f"shard-{k:05d}.npy"
        np.save(path, rows)
        paths.append(path)
        start += size
    return paths


# [end:write]

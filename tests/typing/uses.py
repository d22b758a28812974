"""How users type-check code that uses the samplers (checked by mypy in test_typing.py)."""

from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler, TensorDataset
from typing_extensions import assert_type

from resumable_samplers import (
    Resumable,
    ResumableDistributedSampler,
    ResumableLengthGroupedSampler,
    ResumableMixtureSampler,
    ResumableRandomSampler,
    ResumableSamplerType,
    ResumableSequentialSampler,
    ResumableShardSampler,
    ResumableTokenBudgetBatchSampler,
    create_sampler,
    randperm,
)

data = TensorDataset(torch.arange(10))
random_sampler: Sampler[int] = ResumableRandomSampler(data, seed=1, batch_size=2)
sequential: Sampler[int] = ResumableSequentialSampler(data)
distributed: DistributedSampler[int] = ResumableDistributedSampler(data, num_replicas=2, rank=0)
for index in ResumableRandomSampler(data):
    assert_type(index, int)
for index in distributed:
    assert_type(index, int)
loader: DataLoader[tuple[torch.Tensor, ...]] = DataLoader(data, sampler=random_sampler)
state = ResumableRandomSampler(data).state_dict()
assert_type(state, dict[str, Any])
some: ResumableSamplerType = create_sampler("ResumableRandomSampler", data)
perm: npt.NDArray[np.uint32] | npt.NDArray[np.int64] = randperm(10, seed=3)
start: int = ResumableDistributedSampler(data, 2, 1).start_iter
resumables: list[Resumable] = [
    ResumableRandomSampler(data),
    ResumableSequentialSampler(data),
    ResumableDistributedSampler(data, 2, 1),
    ResumableMixtureSampler([data, data], [1, 2]),
    ResumableLengthGroupedSampler([3, 1, 4], 2),
    ResumableTokenBudgetBatchSampler([3, 1, 4], 8),
    ResumableShardSampler([3, 1, 4], window=2),
]
shard_sampler: Sampler[int] = ResumableShardSampler(np.array([3, 1, 4]), window=2, seed=5)
for index in ResumableShardSampler("shard_sizes.npy"):
    assert_type(index, int)

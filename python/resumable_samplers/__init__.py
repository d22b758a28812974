"""Resumable PyTorch samplers with torch's order bit for bit, on a Rust core.

Stop mid-epoch, resume at exactly the next batch, in exactly the order the uninterrupted run
would have produced; drop-in compatible with ``torch.utils.data.DistributedSampler`` and
helios-ml's ``helios.data.samplers``.
"""

from importlib.metadata import PackageNotFoundError, version

from resumable_samplers.length import (
    ResumableLengthGroupedSampler,
    ResumableTokenBudgetBatchSampler,
)
from resumable_samplers.permutation import PERMUTATIONS, randperm
from resumable_samplers.registry import Registry
from resumable_samplers.samplers import (
    SAMPLER_REGISTRY,
    ResumableDistributedSampler,
    ResumableRandomSampler,
    ResumableSampler,
    ResumableSamplerType,
    ResumableSequentialSampler,
    create_sampler,
)

try:
    __version__ = version("resumable-samplers")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "PERMUTATIONS",
    "SAMPLER_REGISTRY",
    "Registry",
    "ResumableDistributedSampler",
    "ResumableLengthGroupedSampler",
    "ResumableRandomSampler",
    "ResumableSampler",
    "ResumableSamplerType",
    "ResumableSequentialSampler",
    "ResumableTokenBudgetBatchSampler",
    "__version__",
    "create_sampler",
    "randperm",
]

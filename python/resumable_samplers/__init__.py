"""Resumable PyTorch samplers with torch's order bit for bit, on a Rust core.

Stop mid-epoch, resume at exactly the next batch, in exactly the order the uninterrupted run
would have produced; drop-in compatible with ``torch.utils.data.DistributedSampler`` and
helios-ml's ``helios.data.samplers``.

The public names are imported on first use, so that ``resumable-samplers --help`` and the
subcommands that do not need torch start without importing it.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resumable_samplers.length import (
        ResumableLengthGroupedSampler,
        ResumableTokenBudgetBatchSampler,
    )
    from resumable_samplers.mixture import ResumableMixtureSampler
    from resumable_samplers.permutation import PERMUTATIONS, randperm
    from resumable_samplers.registry import Registry
    from resumable_samplers.samplers import (
        SAMPLER_REGISTRY,
        Resumable,
        ResumableDistributedSampler,
        ResumableRandomSampler,
        ResumableSampler,
        ResumableSamplerType,
        ResumableSequentialSampler,
        create_sampler,
    )
    from resumable_samplers.shards import ResumableShardSampler

try:
    __version__ = version("resumable-samplers")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

_MODULE_OF: dict[str, str] = {
    "PERMUTATIONS": "resumable_samplers.permutation",
    "randperm": "resumable_samplers.permutation",
    "Registry": "resumable_samplers.registry",
    "SAMPLER_REGISTRY": "resumable_samplers.samplers",
    "Resumable": "resumable_samplers.samplers",
    "ResumableDistributedSampler": "resumable_samplers.samplers",
    "ResumableRandomSampler": "resumable_samplers.samplers",
    "ResumableSampler": "resumable_samplers.samplers",
    "ResumableSamplerType": "resumable_samplers.samplers",
    "ResumableSequentialSampler": "resumable_samplers.samplers",
    "create_sampler": "resumable_samplers.samplers",
    "ResumableMixtureSampler": "resumable_samplers.mixture",
    "ResumableShardSampler": "resumable_samplers.shards",
    "ResumableLengthGroupedSampler": "resumable_samplers.length",
    "ResumableTokenBudgetBatchSampler": "resumable_samplers.length",
}
# Modules whose samplers register themselves in SAMPLER_REGISTRY when imported.
_REGISTERING = (
    "resumable_samplers.samplers",
    "resumable_samplers.mixture",
    "resumable_samplers.length",
    "resumable_samplers.shards",
)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'resumable_samplers' has no attribute {name!r}")
    if name in ("SAMPLER_REGISTRY", "create_sampler"):
        for registering in _REGISTERING:  # every sampler is registered before a look-up
            importlib.import_module(registering)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULE_OF])


__all__ = [
    "PERMUTATIONS",
    "SAMPLER_REGISTRY",
    "Registry",
    "Resumable",
    "ResumableDistributedSampler",
    "ResumableLengthGroupedSampler",
    "ResumableMixtureSampler",
    "ResumableRandomSampler",
    "ResumableSampler",
    "ResumableSamplerType",
    "ResumableSequentialSampler",
    "ResumableShardSampler",
    "ResumableTokenBudgetBatchSampler",
    "__version__",
    "create_sampler",
    "randperm",
]

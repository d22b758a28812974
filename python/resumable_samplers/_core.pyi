"""The Rust extension: permutations and epoch buffers. Use the public API instead."""

from collections.abc import Callable
from typing import Any, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_LEN",
    "MAX_LEVEL_REPLICAS",
    "MAX_WEIGHT_SUM",
    "ORDER_NAMES",
    "SEED_END",
    "SEED_MIN",
    "SWAP_REGIME_LIMIT",
    "Epoch",
    "Mixture",
    "Reader",
    "ShardSizes",
    "TokenBudgetBatches",
    "check_rank",
    "default_megabatch_mult",
    "epoch_end",
    "length_grouped_epoch",
    "lengths_scan",
    "megabatch_size",
    "randperm",
    "resume_point",
    "same_order",
    "shard_len",
    "typical_batch_size",
]

MAX_LEN: int
"""``2**63 - 1``: the largest dataset length (indices are torch ``int64``s)."""

MAX_WEIGHT_SUM: int
"""``2**62``: the largest sum of a mixture's integer weights."""

MAX_LEVEL_REPLICAS: int
"""``2**20``: the most ranks of a resume level of the shard order (an elastic resume's old job)."""

SEED_MIN: int
"""``-2**63``: the smallest seed (and ``seed + epoch``) torch's generator takes."""

SEED_END: int
"""``2**64``: seeds (and ``seed + epoch``) lie below it; the core takes them modulo it."""

ORDER_NAMES: tuple[str, ...]
"""The order names: ``"torch"``, ``"torch-legacy"``, ``"lazy"``, ``"identity"``."""

SWAP_REGIME_LIMIT: int
"""214,748,364: from this length on, torch 2.6 and later shuffle with the inside-out loop."""

def randperm(
    n: int, seed: int, permutation: str = "torch"
) -> npt.NDArray[np.uint32] | npt.NDArray[np.int64]:
    """A permutation of ``[0, n)``; ``seed`` is an unsigned 64-bit value.

    ``"torch"``: ``torch.randperm(n)`` of torch 2.6 and later for a generator seeded with
    ``seed``; ``"torch-legacy"``: that of torch 2.5 and earlier (the swap loop for every ``n``);
    ``"lazy"``: the lazy bijection keyed by ``(seed, 0)``. Returns ``uint32`` when
    ``n <= 2**32`` else ``int64``. Releases the GIL; Ctrl-C interrupts.
    """

def same_order(a: str, b: str, n: int) -> bool:
    """Whether the orders named ``a`` and ``b`` give the same permutation of ``n`` items for every
    seed and epoch (equal names, or both torch generations below ``SWAP_REGIME_LIMIT``)."""

def check_rank(rank: int, num_replicas: int) -> int:
    """``rank`` as one of ``num_replicas`` ranks; ``ValueError`` in torch's wording otherwise."""

def shard_len(n: int, num_replicas: int, rank: int, offset: int, drop_last: bool) -> int:
    """How many indices a rank reads after the global positions ``[0, offset)`` were consumed."""

def epoch_end(n: int, num_replicas: int, drop_last: bool) -> int:
    """The end of an epoch of ``n`` items over ``num_replicas`` ranks in global positions:
    ``ceil(n / num_replicas) * num_replicas``, or ``floor`` with ``drop_last``."""

def resume_point(consumed: int, num_replicas: int) -> tuple[int, int]:
    """Where a job resumes after the global positions ``[0, consumed)``: ``(offset, position)``.

    Build the epoch with ``offset`` (``consumed % num_replicas``) and read from ``position``
    (``consumed // num_replicas``); rank ``r`` then reads ``G(consumed + r + j * num_replicas)``.
    """

@final
class Epoch:
    """One rank's indices for one epoch.

    Rank ``rank`` of ``num_replicas`` reads ``P[(offset + rank + j * num_replicas) % n]`` for
    ``j < len(epoch)``, where ``P`` is the epoch's permutation: ``"torch"`` or
    ``"torch-legacy"`` (seeded with ``seed + epoch``), ``"lazy"`` (keyed by ``(seed, epoch)``)
    or ``"identity"``.
    """

    def __new__(
        cls,
        n: int,
        num_replicas: int,
        rank: int,
        offset: int,
        drop_last: bool,
        permutation: str,
        seed: int,
        epoch: int,
    ) -> Epoch: ...
    def __len__(self) -> int: ...
    def consumed(self, position: int) -> int:
        """The global position consumed once every rank has read ``position`` indices."""

    def reader(self, start: int = 0, ahead: bool = True) -> Reader:
        """An iterator over the indices from position ``start`` on, as Python ints.

        With ``ahead``, an epoch that computes its indices (the lazy order, a mixture) computes
        the next chunk on a helper thread while the current one is read. Once exhausted, the
        reader no longer holds the epoch.
        """

    def array(self, start: int = 0) -> npt.NDArray[np.uint32] | npt.NDArray[np.int64]:
        """The indices from position ``start`` on, read-only (a view when the epoch is stored)."""

@final
class Reader:
    """An epoch's indices from a start position, as Python ints (made by :meth:`Epoch.reader`)."""

    @classmethod
    def deferred(cls, start: Callable[[], Reader], /) -> Reader:
        """A reader that calls ``start()`` at its first ``next()`` (and only then) and reads the
        Reader it returns, at the same speed.

        An exception ``start`` raises comes out of that ``next()``; later ones raise
        ``StopIteration``. The Reader ``start`` returned answers :meth:`position` and the length
        hint for this one from then on; before its first ``next()`` this one answers 0 to both.
        """

    def __iter__(self) -> Reader: ...
    def __next__(self) -> int: ...
    def position(self) -> int:
        """How many indices of the epoch lie before the next one."""

    def __length_hint__(self) -> int:
        """How many indices are left."""

@final
class Mixture:
    """A weighted mixture of sources over a stream of positions.

    Segment ``s`` follows ``weights[s]`` (integers, sum at most ``2**62``) from stream position
    ``starts[s]``; ``permutation`` (``"lazy"``, ``"torch"`` or ``"identity"``) orders each
    source's cycles.
    """

    def __new__(
        cls,
        lengths: list[int],
        starts: list[int],
        weights: list[list[int]],
        permutation: str,
        seed: int,
    ) -> Mixture: ...
    def epoch(
        self, n: int, num_replicas: int, rank: int, offset: int, drop_last: bool, epoch: int
    ) -> Epoch:
        """Rank ``rank``'s share of the stream positions ``[epoch * n, (epoch + 1) * n)``."""

    @staticmethod
    def epoch_start(epoch: int, num_samples: int) -> int:
        """Where epoch ``epoch`` of ``num_samples`` stream positions starts; ``ValueError``
        unless ``(epoch + 1) * num_samples`` is below ``2**64 - 1``."""

    def counts(self, position: int) -> list[int]:
        """How many of the stream positions ``[0, position)`` drew from each source."""

    def draw(self, position: int) -> tuple[int, int]:
        """The source stream position ``position`` draws from, and its draw number there."""

    @property
    def depth(self) -> int:
        """The largest depth of the schedule's tree (the proportion bound is half of it)."""

@final
class ShardSizes:
    """The shards of a dataset by size (``ConcatDataset`` order): a 1-D C-contiguous ``int64``
    array of non-negative sizes summing to at most ``2**63 - 1``."""

    def __new__(cls, sizes: npt.NDArray[np.int64]) -> ShardSizes: ...
    @property
    def n(self) -> int:
        """The number of samples."""

    @property
    def shards(self) -> int:
        """The number of non-empty shards."""

    @property
    def digest(self) -> int:
        """A digest of the non-empty shards' sizes in order, in ``[0, 2**63)``."""

    def epoch(
        self,
        window: int,
        seed: int,
        epoch: int,
        levels: list[tuple[int, int]],
        num_replicas: int,
        rank: int,
        drop_last: bool,
    ) -> Epoch:
        """Rank ``rank``'s share of epoch ``epoch`` of the shard order after the resume
        ``levels`` (``(num_replicas, position)`` pairs, oldest first)."""

# Length grouping and token-budget batches (rust/orders/length.rs). ``lengths`` is a 1-D
# C-contiguous NumPy array of any integer type in native byte order; it is read with the GIL
# released, in place (``lengths_scan``, and builds over an array nothing can write) or, for a
# build over a writable array, through a copy taken when the build starts.

_Lengths = npt.NDArray[np.integer[Any]]

def lengths_scan(
    lengths: _Lengths, limit: int = ...
) -> tuple[int, int, int, int, tuple[int, int] | None]:
    """``(n, max, sum, fingerprint, first_above)`` of ``lengths`` in one pass.

    ``fingerprint`` is a 63-bit hash of the values (whatever their type) and their count;
    ``first_above`` the first ``(index, length)`` with a length above ``limit``. Raises
    ``ValueError`` naming the first negative length.
    """

def default_megabatch_mult(n: int, batch_size: int) -> int:
    """transformers' default: ``min(n // (batch_size * 4), 50)``, at least 1."""

def megabatch_size(n: int, batch_size: int, megabatch_mult: int) -> int:
    """Samples per megabatch: ``megabatch_mult * batch_size``, capped at ``n``."""

def typical_batch_size(n: int, total: int, max_tokens: int, max_batch_size: int) -> int:
    """``max_tokens // ceil(total / n)``, between 1 and ``max_batch_size``."""

def length_grouped_epoch(
    lengths: _Lengths,
    max_len: int,
    batch_size: int,
    megabatch_mult: int,
    seed: int,
    epoch: int,
    num_replicas: int,
    rank: int,
    offset: int,
    drop_last: bool,
    permutation: str = "torch",
) -> Epoch:
    """This rank's share of transformers' length-grouped order for the generator seeded with
    ``seed + epoch`` (megabatches of ``megabatch_size(n, batch_size, megabatch_mult)``
    samples), sharded as :class:`Epoch` shards."""

@final
class TokenBudgetBatches:
    """One epoch of token-budget batches: megabatches (of
    ``megabatch_size(n, batch_size, megabatch_mult)`` samples, ``batch_size`` being the typical
    batch) sorted longest first, cut into batches of at most ``max_tokens`` padded tokens and
    ``max_batch_size`` samples, shuffled by ``torch.randperm(len(self))`` drawn after the sample
    permutation (seed ``seed + epoch``)."""

    def __new__(
        cls,
        lengths: _Lengths,
        max_len: int,
        batch_size: int,
        megabatch_mult: int,
        max_tokens: int,
        max_batch_size: int,
        seed: int,
        epoch: int,
        permutation: str = "torch",
    ) -> TokenBudgetBatches: ...
    def __len__(self) -> int: ...
    def batch(self, k: int) -> list[int]:
        """The samples of batch ``k`` (a batch id)."""

    def epoch(self, num_replicas: int, rank: int, offset: int, drop_last: bool) -> Epoch:
        """This rank's batch ids: the shuffled batch order, sharded as :class:`Epoch` shards."""

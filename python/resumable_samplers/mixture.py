"""A weighted mixture of datasets that resumes exactly, reweights on resume and seeks in O(K)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence, Sized
from typing import Any

import numpy as np

from resumable_samplers import _checks, _core, _limits, _state
from resumable_samplers._resume import EpochKey
from resumable_samplers.permutation import core_order
from resumable_samplers.samplers import (
    SAMPLER_REGISTRY,
    ResumableSampler,
    _replicas,
    _ResumableOrder,
)

MIXTURE_PERMUTATIONS: tuple[str, ...] = (_limits.LAZY, _limits.TORCH, _limits.IDENTITY)
"""The accepted values of a mixture's ``permutation``: each source's order within a cycle."""

_U64 = _limits.text(_checks.U64_MAX)  # the core's unsigned 64-bit arguments, as messages write it

MAX_WEIGHT_SUM = _limits.MAX_WEIGHT_SUM
"""Integer weights up to this sum (``2**62``, the core's limit) are used exactly; others are
scaled to it."""


def integer_weights(weights: Sequence[Any]) -> list[int]:
    """The weights as non-negative integers with the same proportions.

    Integers whose sum is at most ``2**62`` are kept as they are. Otherwise (floats, or larger
    integers) each weight is scaled exactly (as a fraction) so the sum is about ``2**62`` and
    rounded down; a positive weight never becomes 0. The result is the same on every machine.

    Raises:
        TypeError: if a weight is not a real number (or is a bool).
        ValueError: if a weight is negative, not finite, or all are zero.
    """
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence | np.ndarray):
        raise TypeError(f"weights should be a sequence of numbers, got {type(weights).__name__}")
    # Each weight as an exact fraction num / den (den a power of two for floats), brought to a
    # common denominator with integer arithmetic only.
    try:
        items = list(weights)
    except Exception as e:  # a 0-d array, a broken sequence
        raise TypeError(f"weights should be a sequence of numbers: {e!r}") from None
    ratios: list[tuple[int, int]] = []
    for k, w in enumerate(items):
        if _checks._is_bool(w) or not isinstance(w, numbers.Real | np.integer | np.floating):
            raise TypeError(f"weights[{k}] should be a real number, got {type(w).__name__}")
        if isinstance(w, numbers.Integral | np.integer):
            ratio = (int(w), 1)
        else:
            f = float(w)
            if not math.isfinite(f):
                raise ValueError(f"weights[{k}] should be finite, got {f}")
            ratio = f.as_integer_ratio()
        if ratio[0] < 0:
            raise ValueError(f"weights[{k}] should be non-negative, got {w}")
        ratios.append(ratio)
    den = math.lcm(*(d for _, d in ratios))
    exact = [n * (den // d) for n, d in ratios]
    total = sum(exact)
    if total == 0:
        raise ValueError("weights should not all be zero")
    if den == 1 and total <= MAX_WEIGHT_SUM:
        return exact
    scale = MAX_WEIGHT_SUM - len(exact)
    return [max(1, v * scale // total) if v > 0 else 0 for v in exact]


def _lengths(sources: Sequence[Any]) -> list[int]:
    if isinstance(sources, (str, bytes)) or not isinstance(sources, Sequence):
        raise TypeError(
            f"sources should be a sequence of datasets or lengths, got {type(sources).__name__}"
        )
    try:
        items = list(sources)
    except Exception as e:  # a broken sequence
        raise TypeError(f"sources should be a sequence of datasets or lengths: {e!r}") from None
    if not items:
        raise ValueError("sources should not be empty")
    lengths = []
    for k, source in enumerate(items):
        if isinstance(source, Sized) and not isinstance(source, (str, bytes)):
            lengths.append(_checks.dataset_len(f"sources[{k}]", source))
        else:
            n = _checks.as_int(f"sources[{k}]", source)
            if not 0 <= n <= _checks.MAX_LEN:
                raise ValueError(f"sources[{k}] should be a length in {_limits.LEN_RANGE}, got {n}")
            lengths.append(n)
    if sum(lengths) > _checks.MAX_LEN:
        raise ValueError(
            f"the sources' lengths should sum to at most {_limits.text(_checks.MAX_LEN)}"
        )
    return lengths


def _u64s(value: Any) -> bool:
    """Whether ``value`` is a list of ints in ``[0, 2**64 - 1]``."""
    return isinstance(value, list) and all(
        type(v) is int and 0 <= v <= _checks.U64_MAX for v in value
    )


def _int_list(state: dict[str, Any], name: str) -> list[int]:
    value = state[name]
    if not _u64s(value):
        raise ValueError(
            f"state field {name!r} should be a list of ints in [0, {_U64}], got {value!r}"
        )
    return value  # type: ignore[no-any-return]


@SAMPLER_REGISTRY.register
class ResumableMixtureSampler(_ResumableOrder, ResumableSampler):
    """A weighted mixture of datasets: a deterministic stream that draws from source ``k`` in
    proportion ``weights[k]``, resumes exactly, shards like ``DistributedSampler`` and can be
    reweighted at a resume.

    Indices refer to ``torch.utils.data.ConcatDataset(sources)``: source ``k``'s item ``i`` is
    index ``sum(len(s) for s in sources[:k]) + i``. Stream position ``p`` draws from a source
    chosen by a schedule of proportional splits; the ``j``-th draw from source ``k`` is item
    ``j mod n_k`` of the source's cycle ``j // n_k``, a fresh permutation of the source per
    cycle (so no item repeats within a cycle, and cycles carry over epochs). Epoch ``e`` is the
    stream positions ``[e * num_samples, (e + 1) * num_samples)``, sharded over replicas with
    torch's padding (or ``drop_last``) rule. The first ``m`` positions hold
    ``m * w_k / sum(w)`` draws from source ``k`` to within ``ceil(log2 K) / 2`` (within 1/2 for
    two sources, 1 for up to four), at every ``m``; any position is reached in O(log K) and any
    resume point in O(K), with no memory of size ``num_samples``.

    Args:
        sources: the datasets (anything with ``__len__``) or their lengths.
        weights: one non-negative number per source, not all zero. A source with weight 0 is
            never drawn (an empty source must have weight 0).
        num_samples: the number of stream positions per epoch; defaults to the sum of the
            sources' lengths.
        seed: keys each source's permutations; in ``[-2**63, 2**64)``.
        batch_size: the number of samples per batch (for ``start_iter`` and :meth:`seek`).
        num_replicas: the number of processes; defaults to the process group's, or 1 when
            there is none.
        rank: this process's rank; defaults to the process group's, or 0.
        drop_last: drop the tail of an epoch so every rank gets the same number of samples,
            instead of padding by wrapping around.
        permutation: each source's order within a cycle: ``"lazy"`` (a keyed permutation per
            source and cycle, O(1) memory), ``"torch"`` (cycle ``c`` of a source of ``n`` items
            is ``torch.randperm(n)`` seeded with ``seed + c``, as a random sampler over that
            source alone orders its epoch ``c``; it keeps one cycle of each source in memory,
            4 bytes per item, and a resume computes the current cycles) or ``"identity"`` (the
            source's own order).
    """

    reweight: bool = False
    """Whether :meth:`load_state_dict` accepts a state saved with other weights by default (as
    when a ``StatefulDataLoader`` restores it); see :meth:`load_state_dict`."""

    def __init__(
        self,
        sources: Sequence[Any],
        weights: Sequence[Any],
        *,
        num_samples: int | None = None,
        seed: int = 0,
        batch_size: int = 1,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
        permutation: str = "lazy",
    ) -> None:
        super().__init__(batch_size)
        self._lengths = _lengths(sources)
        self._weights = integer_weights(weights)
        if len(self._weights) != len(self._lengths):
            raise ValueError(
                f"weights should have one entry per source ({len(self._lengths)}), "
                f"got {len(self._weights)}"
            )
        for k, (n, w) in enumerate(zip(self._lengths, self._weights, strict=True)):
            if n == 0 and w > 0:
                raise ValueError(
                    f"sources[{k}] is empty but weights[{k}] is positive; give it weight 0"
                )
        if num_samples is None:
            num_samples = sum(self._lengths)
        self.num_samples = _checks.non_negative_int("num_samples", num_samples, _checks.MAX_LEN)
        self.num_replicas, self.rank = _replicas(num_replicas, rank)
        self.drop_last = _checks.as_bool("drop_last", drop_last)
        self.seed = _checks.as_int("seed", seed)
        self._permutation = _checks.choice("permutation", permutation, MIXTURE_PERMUTATIONS)
        _checks.order_key(self.seed, 0, self._permutation)
        self._segments: list[tuple[int, list[int]]] = [(0, self._weights)]
        self._mix = self._core_mixture(self._segments)

    def _core_mixture(self, segments: list[tuple[int, list[int]]]) -> _core.Mixture:
        starts = [s for s, _ in segments]
        weights = [w for _, w in segments]
        order = self._order()
        seed, _ = _checks.order_key(self.seed, 0, order)
        return _core.Mixture(self._lengths, starts, weights, order, seed)

    def _order(self) -> str:
        """The core's name of each source's order (``"torch"`` as the installed torch's)."""
        return core_order(self._permutation) if self._permutation == "torch" else self._permutation

    @property
    def weights(self) -> list[int]:
        """The weights the stream follows from now on, as integers (see
        :func:`integer_weights`)."""
        return list(self._segments[-1][1])

    @property
    def source_lengths(self) -> list[int]:
        """The length of each source."""
        return list(self._lengths)

    def counts(self, position: int) -> list[int]:
        """How many of the stream positions ``[0, position)`` drew from each source (O(K))."""
        return self._mix.counts(_checks.non_negative_int("position", position, _checks.U64_MAX))

    def __len__(self) -> int:
        """This rank's number of samples per epoch, from the current ``num_samples``,
        ``num_replicas``, ``rank`` and ``drop_last``."""
        return self._rank_len()

    def _settings(self) -> _state.Settings:
        epoch = self._checked_epoch(self.epoch)
        return _state.Settings.of(
            self.num_samples,
            self.num_replicas,
            self.rank,
            True,
            self.drop_last,
            self._order(),
            self.seed,
            epoch,
        )

    def _checked_epoch(self, value: Any, name: str = "epoch") -> int:
        """An epoch whose stream positions ``[epoch * num_samples, (epoch + 1) * num_samples)``
        all lie below ``2**64 - 1``."""
        epoch = _checks.as_int(name, value)
        if epoch < 0:
            raise ValueError(f"{name} should be a non-negative integer for a mixture, got {epoch}")
        if (epoch + 1) * self.num_samples >= _checks.U64_MAX:
            raise ValueError(
                f"{name} should keep (epoch + 1) * num_samples below {_U64} (num_samples is "
                f"{self.num_samples}), got {epoch}"
            )
        return epoch

    def _build_epoch(self, key: EpochKey) -> _core.Epoch:
        # The stream positions [epoch * n, (epoch + 1) * n) of the current schedule.
        return self._mix.epoch(
            key.n, key.num_replicas, key.rank, key.offset, key.drop_last, key.epoch
        )

    def _permuted_sizes(self) -> tuple[int, ...]:
        # Each source is permuted on its own, whatever num_samples is.
        return tuple(self._lengths)

    def _extra_state(self) -> dict[str, Any]:
        return {
            "source_lengths": list(self._lengths),
            "weight_starts": [s for s, _ in self._segments],
            "weights": [list(w) for _, w in self._segments],
        }

    def load_state_dict(self, state: dict[str, Any], reweight: bool | None = None) -> None:
        """Continue from a state saved by :meth:`state_dict` (see the shared rules of
        :class:`ResumableSampler`'s samplers), possibly with new weights.

        A state saved with other weights than this sampler's is refused unless ``reweight``
        (default: the :attr:`reweight` attribute) is true. Then the stream is what it was up to
        the saved position, and follows this sampler's weights after it; every source continues
        its current cycle exactly where it was (a source given weight 0 is paused, not lost).

        Raises:
            ValueError: if the state is malformed, belongs to other sources, ``num_samples``,
                seed or permutation, or has other weights and ``reweight`` is false.
        """
        reweight = self.reweight if reweight is None else _checks.as_bool("reweight", reweight)
        epoch, offset = _state.read(
            state, self._settings(), tuple(self._extra_state()), self._permuted_sizes()
        )
        self._checked_epoch(epoch, "state field 'epoch'")
        lengths = _int_list(state, "source_lengths")
        if lengths != self._lengths:
            raise ValueError(
                f"state field 'source_lengths' is {lengths} but this sampler's sources have "
                f"{self._lengths}; resuming would continue in a different order"
            )
        starts = _int_list(state, "weight_starts")
        weights = state["weights"]
        if (
            not isinstance(weights, list)
            or len(weights) != len(starts)
            or not starts
            or not all(_u64s(w) for w in weights)
        ):
            raise ValueError(
                f"state field 'weights' should be one list of ints in [0, {_U64}] per entry of "
                "'weight_starts'"
            )
        segments = [(s, list(w)) for s, w in zip(starts, weights, strict=True)]
        try:
            mix = self._core_mixture(segments)  # the saved schedule must be valid as it is
        except ValueError as e:
            raise ValueError(f"state fields 'weight_starts'/'weights' are invalid: {e}") from None
        if segments[-1][1] != self._weights:
            if not reweight:
                raise ValueError(
                    f"state field 'weights' is {segments[-1][1]} but this sampler has "
                    f"{self._weights}; pass reweight=True (or set sampler.reweight = True) to "
                    "continue with this sampler's weights from the saved position"
                )
            at = epoch * self.num_samples + min(offset, self.num_samples)
            if at == segments[-1][0]:
                segments[-1] = (at, list(self._weights))
            elif at > segments[-1][0]:
                segments.append((at, list(self._weights)))
            else:
                raise ValueError(
                    f"state field 'weight_starts' has a segment at {segments[-1][0]}, after the "
                    f"saved position {at}"
                )
            mix = self._core_mixture(segments)
        self._segments, self._mix = segments, mix
        self._resume.forget()  # the epochs of the previous schedule
        self.set_epoch(epoch)
        self._resume.restore(epoch, offset)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_mix", None)  # rebuilt from the segments
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._mix = self._core_mixture(self._segments)

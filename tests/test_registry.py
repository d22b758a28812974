"""The sampler registry behaves like helios-ml's ``Registry``."""

from __future__ import annotations

import warnings

import pytest

import resumable_samplers as rs
from conftest import Sized, torch_perm
from resumable_samplers import Registry

BUILTINS = ["ResumableRandomSampler", "ResumableSequentialSampler", "ResumableDistributedSampler"]


def test_builtins_are_registered_and_created_by_name() -> None:
    for name in BUILTINS:
        assert name in rs.SAMPLER_REGISTRY
        assert rs.SAMPLER_REGISTRY.get(name).__name__ == name
    assert set(BUILTINS) <= set(rs.SAMPLER_REGISTRY.keys())
    assert dict(iter(rs.SAMPLER_REGISTRY))["ResumableRandomSampler"] is rs.ResumableRandomSampler
    s = rs.create_sampler("ResumableRandomSampler", Sized(20), seed=4, batch_size=2)
    assert isinstance(s, rs.ResumableRandomSampler)
    assert list(s) == torch_perm(20, 4)
    d = rs.create_sampler("ResumableDistributedSampler", Sized(20), num_replicas=2, rank=1)
    assert isinstance(d, rs.ResumableDistributedSampler)


def test_user_samplers_by_decorator_and_by_call() -> None:
    reg = Registry("sampler")

    @reg.register
    class EveryOther(rs.ResumableSequentialSampler):
        pass

    class Plain(rs.ResumableSequentialSampler):
        pass

    assert reg.register(Plain) is Plain
    reg.register(Plain, suffix="v2")

    @reg.register(suffix="x")
    class Decorated(rs.ResumableSequentialSampler):
        pass

    assert set(reg.keys()) == {"EveryOther", "Plain", "Plain_v2", "Decorated_x"}
    assert reg.get("EveryOther") is EveryOther
    assert reg.get("Plain_v2") is Plain
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert reg.get("Decorated", suffix="x") is Decorated
    assert "found Decorated_x instead of Decorated" in str(caught[0].message)
    assert str(reg) == "sampler" and len(reg) == 4


def test_user_sampler_through_the_global_registry_and_create_sampler() -> None:
    @rs.SAMPLER_REGISTRY.register(suffix="test_registry")
    class Reversed(rs.ResumableSequentialSampler):
        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter(reversed(list(super().__iter__())))

    s = rs.create_sampler("Reversed_test_registry", Sized(5))
    assert isinstance(s, Reversed)
    assert list(s) == [4, 3, 2, 1, 0]


def test_duplicate_names_raise_value_error() -> None:
    reg = Registry("r")

    class A:
        pass

    reg.register(A)
    with pytest.raises(ValueError, match="'A' already exists in the 'r' registry"):
        reg.register(A)
    with pytest.raises(ValueError, match="ResumableRandomSampler"):
        rs.SAMPLER_REGISTRY.register(rs.ResumableRandomSampler)


def test_unknown_names_raise_key_error_listing_the_names() -> None:
    reg = Registry("r")
    with pytest.raises(KeyError, match=r"registered: \(none\)"):
        reg.get("X")
    with pytest.raises(KeyError) as info:
        rs.create_sampler("Nope", Sized(3))
    for name in BUILTINS:
        assert name in str(info.value)


def _every_sampler() -> list[rs.Resumable]:
    return [
        rs.ResumableRandomSampler(Sized(8), batch_size=2),
        rs.ResumableSequentialSampler(Sized(8)),
        rs.ResumableDistributedSampler(Sized(8), num_replicas=2, rank=1),
        rs.ResumableMixtureSampler([3, 5], [1, 1]),
        rs.ResumableLengthGroupedSampler([3, 1, 4, 1, 5, 9], 2),
        rs.ResumableTokenBudgetBatchSampler([3, 1, 4, 1, 5, 9], max_tokens=10),
        rs.ResumableShardSampler([3, 1, 4, 1, 5, 9], window=2),
    ]


def test_every_sampler_is_resumable_and_registered() -> None:
    for sampler in _every_sampler():
        assert isinstance(sampler, rs.Resumable), type(sampler).__name__
        assert rs.SAMPLER_REGISTRY.get(type(sampler).__name__) is type(sampler)
    assert "Resumable" in rs.__all__


def test_the_token_budget_batch_sampler_is_created_by_name() -> None:
    lengths = [3, 1, 4, 1, 5, 9, 2, 6]
    made = rs.create_sampler("ResumableTokenBudgetBatchSampler", lengths, 12, seed=3)
    direct = rs.ResumableTokenBudgetBatchSampler(lengths, 12, seed=3)
    assert isinstance(made, rs.ResumableTokenBudgetBatchSampler)
    assert list(made) == list(direct)


def test_non_resumable_objects_are_not_resumable() -> None:
    import torch.utils.data as tud

    assert not isinstance(tud.SequentialSampler(Sized(3)), rs.Resumable)
    assert not isinstance(tud.DistributedSampler(Sized(3), num_replicas=1, rank=0), rs.Resumable)
    assert not isinstance(tud.BatchSampler(range(3), 2, False), rs.Resumable)


def test_the_sampler_registry_refuses_a_class_that_is_not_resumable() -> None:
    import torch.utils.data as tud

    with pytest.raises(TypeError, match=r"SequentialSampler has no .*seek.*start_iter"):
        rs.SAMPLER_REGISTRY.register(tud.SequentialSampler)
    assert "SequentialSampler" not in rs.SAMPLER_REGISTRY


class _Helios(rs.ResumableSampler):
    """The helios pattern: only ``__iter__`` and ``__len__``."""

    def __init__(self, n: int, batch_size: int) -> None:
        super().__init__(batch_size)
        self.n = n

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._adjust_to_start_iter(torch_perm(self.n, self.epoch)))

    def __len__(self) -> int:
        return self.n


def test_a_helios_style_subclass_is_resumable_and_seeks() -> None:
    s = _Helios(10, batch_size=3)
    assert isinstance(s, rs.Resumable)
    s.seek(4, 2)
    assert s.epoch == 4 and s.start_iter == 2
    assert list(s) == torch_perm(10, 4)[6:]
    assert list(s) == torch_perm(10, 4)  # the start applied once
    with pytest.raises(ValueError, match="batches should be a non-negative integer, got -1"):
        s.seek(5, -1)
    assert s.epoch == 4  # a refused seek changes nothing

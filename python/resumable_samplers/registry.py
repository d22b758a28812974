"""A name-to-object registry, compatible with helios-ml's ``helios.core.Registry``."""

from __future__ import annotations

import warnings
from collections.abc import Callable, ItemsView, Iterator, KeysView
from typing import Any, TypeVar, overload

T = TypeVar("T")


class Registry:
    """Maps names to objects so that users can create registered types by name.

    Example:
        .. code-block:: python

            REGISTRY = Registry("sampler")

            @REGISTRY.register
            class MySampler: ...

            REGISTRY.register(OtherSampler, suffix="v2")  # registered as "OtherSampler_v2"

    Args:
        name: the name of the registry.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._obj_map: dict[str, Any] = {}

    @overload
    def register(self, obj: T, suffix: str | None = None) -> T: ...

    @overload
    def register(self, obj: None = None, suffix: str | None = None) -> Callable[[T], T]: ...

    def register(self, obj: Any = None, suffix: str | None = None) -> Any:
        """Register ``obj`` under its ``__name__`` (plus ``"_" + suffix`` if given).

        Works as a decorator (``@registry.register`` or ``@registry.register(suffix="x")``) and
        as a plain call.

        Raises:
            ValueError: if the name is already registered.
        """
        if obj is None:
            return lambda o: self.register(o, suffix)
        name = getattr(obj, "__name__", None)
        if not isinstance(name, str):
            raise TypeError(
                f"register() needs a class or function with a __name__, got {type(obj).__name__}"
            )
        if isinstance(suffix, str):
            name = f"{name}_{suffix}"
        if name in self._obj_map:
            raise ValueError(
                f"an object named {name!r} already exists in the {self._name!r} registry"
            )
        self._obj_map[name] = obj
        return obj

    def get(self, name: str, suffix: str | None = None) -> Any:
        """Return the object registered as ``name`` (or ``name + "_" + suffix`` as a fallback).

        Raises:
            KeyError: if nothing is registered under the name; the message lists what is.
        """
        if not isinstance(name, str):
            raise TypeError(f"the name to look up should be a str, got {type(name).__name__}")
        ret = self._obj_map.get(name)
        if ret is None and suffix is not None:
            suffixed = f"{name}_{suffix}"
            ret = self._obj_map.get(suffixed)
            if ret is not None:
                warnings.warn(f"found {suffixed} instead of {name}", stacklevel=2)
        if ret is None:
            names = ", ".join(sorted(self._obj_map)) or "(none)"
            raise KeyError(
                f"no object called {name!r} in the {self._name!r} registry; registered: {names}"
            )
        return ret

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._obj_map

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """Iterate over ``(name, object)`` pairs."""
        return iter(self._obj_map.items())

    def __len__(self) -> int:
        return len(self._obj_map)

    def keys(self) -> KeysView[str]:
        """The registered names."""
        return self._obj_map.keys()

    def items(self) -> ItemsView[str, Any]:
        """The registered ``(name, object)`` pairs."""
        return self._obj_map.items()

    def __str__(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"Registry({self._name!r}, {sorted(self._obj_map)})"

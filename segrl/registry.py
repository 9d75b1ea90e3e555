"""A small name -> object registry (verl's ``register_adv_est`` pattern).

Registration is explicit: each registry lives in the module whose objects it holds, so
importing that module is what fills it (no registration by a distant import side effect).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name no registry entry has; the message lists the registered ones."""


class Registry(Generic[T]):
    """Maps names to objects; refuses duplicates, and an unknown name lists the known ones.

    Args:
        kind: what the registry holds, used in error messages (e.g. ``"algorithm"``).

    Raises:
        ValueError: on a duplicate name (``register``).
        UnknownNameError: (a KeyError) on an unknown name (``get``), naming every registered one.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")`` above a function or class."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)

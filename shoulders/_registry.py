"""A small name → object registry shared by every concept that has a factory (backbones, strategies, scores...).

One registry per concept; a duplicate name raises, an unknown name fails with the valid names and the closest
match, so ``create_*`` factories never need if/elif chains over strings.
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names (and aliases) to registered objects.

    Args:
        kind: what is registered, used in error messages ("backbone", "strategy").
        hint: what the user can run to see the valid names (e.g. "see `shoulders zoo`").
    """

    def __init__(self, kind: str, hint: str = "") -> None:
        self.kind = kind
        self.hint = hint
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, obj: T, aliases: tuple[str, ...] = ()) -> T:
        """Registers ``obj`` under ``name`` and its aliases; a name already taken raises ``ValueError``."""
        for key in (name, *aliases):
            if key in self._items or key in self._aliases:
                raise ValueError(f"{self.kind} {key!r} is already registered")
        self._items[name] = obj
        for alias in aliases:
            self._aliases[alias] = name
        return obj

    def decorator(self, name: str, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """``@registry.decorator("full")`` form of :meth:`register`."""

        def wrap(obj: T) -> T:
            return self.register(name, obj, aliases)

        return wrap

    def canonical(self, name: str) -> str:
        """Returns the registered name for ``name`` or an alias of it; unknown names raise ``ValueError``."""
        if name in self._items:
            return name
        if name in self._aliases:
            return self._aliases[name]
        raise ValueError(self.unknown_message(name))

    def get(self, name: str) -> T:
        return self._items[self.canonical(name)]

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def names(self) -> list[str]:
        return list(self._items)

    def aliases_of(self, name: str) -> list[str]:
        return [alias for alias, target in self._aliases.items() if target == name]

    def unknown_message(self, name: str, extra_candidates: tuple[str, ...] = ()) -> str:
        candidates = [*self._items, *self._aliases, *extra_candidates]
        close = difflib.get_close_matches(name, candidates, n=1)
        msg = f"unknown {self.kind} {name!r}"
        if close:
            msg += f"; did you mean {close[0]}?"
        msg += f" valid: {', '.join(self._items)}"
        if self.hint:
            msg += f"; {self.hint}"
        return msg

"""A name -> implementation table for the package's extension points (datasets, matching
objectives, initialisations): registering a taken name is refused, so two plug-ins cannot
silently replace each other."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Registry(dict[str, T]):
    """A dict of named implementations of one ``kind`` (used in messages), filled with
    :meth:`register`.

    Args:
        kind: what the entries are, e.g. ``"dataset"``.
        entries: initial name -> implementation pairs.
    """

    def __init__(self, kind: str, entries: dict[str, T] | None = None) -> None:
        super().__init__()
        self.kind = kind
        for name, entry in (entries or {}).items():
            self.register(name)(entry)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding an implementation under ``name``; a taken name is a ValueError."""

        def add(entry: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self[name] = entry
            return entry

        return add

    def known(self) -> str:
        """The registered names, for a message."""
        return ", ".join(sorted(self))

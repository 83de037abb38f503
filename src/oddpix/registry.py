"""Named choices: a registry maps each name a params key may take to the code behind it.

Detectors, datasets, protocols, corruptions and threshold rules each have one; params validation asks
a registry for its names (``schema.choice(default, REGISTRY.names)``), so a name is written only where
its code is registered.
"""

from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")


class Registry(dict):
    """``name -> object``, in registration order; a name registered twice is an error."""

    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self[name] = obj
            return obj
        return add

    def names(self) -> tuple[str, ...]:
        return tuple(self)

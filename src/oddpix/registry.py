"""Named choices: a registry maps each name a params key may take to the code behind it.

Detectors, datasets, protocols, corruptions and threshold rules each have one; params validation asks
a registry for its names (``schema.choice(default, REGISTRY.names)``), so a name is written only where
its code is registered.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from .errors import OddpixError
from .schema import not_a_choice

T = TypeVar("T")


class Registry(dict):
    """``name -> object``, in registration order, with a readable error for an unknown name."""

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

    def get_or_fail(self, name: str, where: str) -> T:
        """The object registered as ``name``; else an error naming ``where`` and the valid names."""
        if name not in self:
            raise OddpixError(f"{where}: {not_a_choice(name, self, f'a known {self.what}')}")
        return self[name]

"""The catalog of detectors: :data:`REGISTRY` maps each detector's params name to its class.

Each detector module registers its class with the :func:`register` decorator; :mod:`oddpix.models` imports
the detector modules in the catalog's order (the order params validation and the docs list them in), so
the catalog is complete once that package is imported, before any params are read. It is a module of its
own so that a detector made of other detectors (``fusion``) can look its members up without importing the
package that registers them.
"""

from __future__ import annotations

from typing import TypeVar

from ..registry import Registry

REGISTRY = Registry("detector")  # name -> Detector class, in registration order

D = TypeVar("D", bound=type)


def register(cls: D) -> D:
    """Class decorator: adds a detector class to :data:`REGISTRY` under its ``name``."""
    return REGISTRY.register(cls.name)(cls)

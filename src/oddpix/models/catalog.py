"""The detector registry, in a module of its own so that a detector made of other detectors (``fusion``)
can look its members up without importing the package that registers them (:mod:`oddpix.models` fills it
when it is imported, before any params are read)."""

from __future__ import annotations

from ..registry import Registry

REGISTRY = Registry("detector")  # name -> Detector class; the order is the one params and the README list

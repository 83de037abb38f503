"""Detectors, one module each, all behind :class:`~oddpix.models.base.Detector`.

Importing this package fills the detector catalog (:mod:`.catalog`): each detector module registers its
class with ``@register``, and the modules are imported here in the catalog's order, the order params
validation and the docs list the detectors in (a new detector: one more name in this import, at the place
it should be listed). Model files (build, save, load) are :mod:`.store`.
"""

# isort: skip_file  (the import order below is the registration order)
from __future__ import annotations

from . import cae, ae, vae, ae_kde, aae, deep_svdd, ganomaly, gan_mse, cnn, knn, geom, ssl  # noqa: F401
from . import patch_knn, synth_seg, draem, cutpaste, fusion  # noqa: F401
from .base import SUPERVISED_HINT, Detector, FitData, Phase
from .catalog import REGISTRY
from .store import MAX_PARAMETERS, MAX_SIDE, build_detector, load_detector, save_detector

__all__ = ["REGISTRY", "SUPERVISED_HINT", "Detector", "FitData", "Phase", "build_detector", "save_detector",
           "load_detector", "MAX_PARAMETERS", "MAX_SIDE"]

"""Detectors, one module each, all behind :class:`~oddpix.models.base.Detector`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import OddpixError
from ..io import read_torch, write_torch
from ..registry import Registry
from ..schema import parse_section, to_dict
from .ae import DenseAutoencoder
from .base import SUPERVISED_HINT, Detector, FitData, Phase
from .aae import AdversarialAutoencoder
from .cae import ConvAutoencoder, ConvAutoencoderKDE
from .cnn import SupervisedCNN
from .deep_svdd import DeepSVDD
from .ganomaly import GANMSE, GANomaly
from .geom import GeometricTransformations
from .knn import NearestNeighbour
from .patch_knn import PatchKNN
from .selfsupervised import SelfSupervisedKNN
from .vae import ConvVAE

REGISTRY = Registry("detector")  # name -> Detector class; the order is the one params and the README list
for _cls in (ConvAutoencoder, DenseAutoencoder, ConvVAE, ConvAutoencoderKDE, AdversarialAutoencoder, DeepSVDD, GANomaly,
             GANMSE, SupervisedCNN, NearestNeighbour, GeometricTransformations, SelfSupervisedKNN, PatchKNN):
    REGISTRY.register(_cls.name)(_cls)

__all__ = ["REGISTRY", "SUPERVISED_HINT", "Detector", "FitData", "Phase", "build_detector", "save_detector",
           "load_detector"]


def build_detector(name: str, config: Any, input_shape: tuple[int, int, int]) -> Detector:
    return REGISTRY[name](config, input_shape)


def save_detector(detector: Detector, path: str | Path, **extra: Any) -> None:
    """Weights + the settings that built them + anything the pipeline must reapply (preprocessing)."""
    state = {k: v.detach().cpu() for k, v in detector.state_dict().items()}
    write_torch(path, {"name": detector.name, "config": to_dict(detector.config),
                       "input_shape": list(detector.input_shape), "state_dict": state, "extra": extra})


def load_detector(path: str | Path) -> tuple[Detector, dict]:
    try:
        blob = read_torch(path)
    except FileNotFoundError:
        raise OddpixError(f"no trained model at {path}; run `dvc repro` (the train stage) first") from None
    name = blob["name"]
    if name not in REGISTRY:
        raise OddpixError(f"{path} holds an unknown detector {name!r}; known: {', '.join(REGISTRY)}")
    cls = REGISTRY[name]
    config = parse_section(cls.Config, blob["config"], f"{path}:config")
    detector = cls(config, tuple(blob["input_shape"]))
    detector.load_state_dict(blob["state_dict"])
    detector.eval()
    return detector, blob.get("extra", {})

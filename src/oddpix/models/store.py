"""Model files: building a detector by name, saving it with the settings that built it, and loading a
model file back (checked before anything is allocated)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import OddpixError
from ..io import read_torch, write_torch
from ..schema import parse_section, to_dict
from .base import Detector
from .catalog import REGISTRY

MAX_PARAMETERS = 500_000_000  # a model file asking for more is refused before anything is allocated
MAX_SIDE = 4096                # largest input height / width a model file may declare


def build_detector(name: str, config: Any, input_shape: tuple[int, int, int]) -> Detector:
    return REGISTRY[name](config, input_shape)


def save_detector(detector: Detector, path: str | Path, **extra: Any) -> None:
    """Weights + the settings that built them + anything the pipeline must reapply (preprocessing)."""
    state = {k: v.detach().cpu() for k, v in detector.state_dict().items()}
    write_torch(path, {"name": detector.name, "config": to_dict(detector.config),
                       "input_shape": list(detector.input_shape), "state_dict": state, "extra": extra})


def load_detector(path: str | Path) -> tuple[Detector, dict]:
    try:
        blob = read_torch(path, "model file")
    except FileNotFoundError:
        raise OddpixError(f"no trained model at {path}; run `dvc repro` (the train stage) first") from None
    if not isinstance(blob, dict) or not {"name", "config", "input_shape", "state_dict"} <= set(blob):
        raise OddpixError(f"{path} is not a model file written by oddpix (it holds a {type(blob).__name__} "
                          "without name, config, input_shape and state_dict)")
    name = blob["name"]
    if not isinstance(name, str) or name not in REGISTRY:
        raise OddpixError(f"{path} holds an unknown detector {name!r}; known: {', '.join(REGISTRY)}")
    cls = REGISTRY[name]
    config = parse_section(cls.Config, blob["config"], f"{path}:config")
    shape = blob["input_shape"]
    if (not isinstance(shape, (list, tuple)) or len(shape) != 3 or not all(isinstance(v, int) for v in shape)
            or not (1 <= shape[0] <= 4 and 1 <= shape[1] <= MAX_SIDE and 1 <= shape[2] <= MAX_SIDE)):
        raise OddpixError(f"{path}: input_shape {shape!r} is not channels x height x width within 4 x {MAX_SIDE} x "
                          f"{MAX_SIDE}")
    _check_size(cls, config, tuple(shape), path)
    detector = cls(config, tuple(shape))
    try:
        detector.load_state_dict(blob["state_dict"])
    except (RuntimeError, TypeError, KeyError, AttributeError) as exc:
        raise OddpixError(f"{path}: the weights do not fit a {name} of this configuration "
                          f"({str(exc).strip().splitlines()[0][:200]})") from None
    detector.eval()
    extra = blob.get("extra", {})
    return detector, extra if isinstance(extra, dict) else {}


def _check_size(cls: type, config, input_shape: tuple[int, int, int], path) -> None:
    """Build the architecture on PyTorch's meta device (shapes only, no memory) and refuse one with more
    than MAX_PARAMETERS parameters, before a real allocation could take all the machine's memory."""
    try:
        with torch.device("meta"):
            n = sum(t.numel() for t in cls(config, input_shape).parameters())
    except OddpixError:
        raise
    except Exception as exc:  # an architecture these sizes cannot build
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise OddpixError(f"{path}: a {cls.name} cannot be built from its stored configuration "
                          f"({type(exc).__name__}: {first})") from None
    if n > MAX_PARAMETERS:
        raise OddpixError(f"{path}: its architecture has {n:,} parameters, more than the {MAX_PARAMETERS:,} oddpix "
                          "loads; this file was not written by an oddpix training")

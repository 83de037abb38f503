"""Score new image files with a trained pipeline's run bundle (:mod:`oddpix.bundle`: the model, its
preprocessing, the scoring settings, the KDE and the threshold).

The same code path as the pipeline's score and evaluate stages (``RunBundle.components``,
``Threshold.ranking`` / ``predict``), so an image that was in
the test split gets the score evaluation gave it. Every step from file to tensor is the one the training
images went through: the file is read (16-bit and float images scaled), resized to the size the training
images had when they were read (an image folder's ``data.folder.image_size``, 28 x 28 for the IDX
datasets), then the stored preprocessing; so a model trained on a folder scores any image of any size.
A file that cannot be read as an image gets its own error; the rest are scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch

from .data.folder import read_image_file
from .bundle import RunBundle, as_numpy
from .errors import OddpixError
from .models import REGISTRY
from .preprocess import Preprocessor

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


@dataclass
class Prediction:
    file: str
    score: Optional[float] = None
    anomaly: Optional[bool] = None
    p_value: Optional[float] = None  # share of validation normals scoring at least as high
    components: dict = field(default_factory=dict)
    error: Optional[str] = None

    def row(self) -> dict:
        return {"file": self.file, "score": self.score, "anomaly": self.anomaly, "p_value": self.p_value,
                **self.components, "error": self.error}


def collect_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, and the image files under any directory (sorted, recursively)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out


def read_image(path: Path, preprocessor: Preprocessor, channels: int) -> torch.Tensor:
    """One file as the model's 1 x C x H x W input: read (16-bit and float images scaled), resized to the
    size the training images had when they were read, then the stored preprocessing. Raises OddpixError
    with the reason when the file is not a readable image."""
    size = tuple(preprocessor.source_size) if preprocessor.source_size else None
    return preprocessor.transform(read_image_file(path, channels, size)[None])


def write_heat_maps(maps: torch.Tensor, files: list[Path], out_dir: str | Path) -> list[Path]:
    """One heat-map PNG per image (its smoothed anomaly map, inferno colours, black = 0 and white = that
    image's own maximum; the maximum itself is the ``local_max`` component) at the model's input size."""
    from PIL import Image

    from .figures import pyplot

    colours = pyplot().get_cmap("inferno")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for f, m in zip(files, maps.numpy()):  # one small PNG per file: writing, not a hot path
        scaled = m / max(float(m.max()), 1e-12)
        target = out_dir / (f.stem + "_map.png")
        Image.fromarray((colours(scaled)[..., :3] * 255).astype(np.uint8)).save(target)
        written.append(target)
    return written


def predict_files(scorer: RunBundle, paths: Iterable[str | Path], maps_dir: str | Path | None = None) -> list[Prediction]:
    files = collect_files(paths)
    if maps_dir is not None and not scorer.detector.has_maps:
        with_maps = ", ".join(name for name, cls in REGISTRY.items() if cls.has_maps)
        raise OddpixError(f"model {scorer.detector.name} has no anomaly maps (--maps needs one of: {with_maps})")
    results = [Prediction(file=str(f)) for f in files]
    expected = tuple(scorer.detector.input_shape)
    good, tensors = [], []
    for i, f in enumerate(files):
        try:
            x = read_image(f, scorer.preprocessor, scorer.channels)
            shape = tuple(x.shape[1:])
            if shape != expected:
                raise OddpixError(f"image is {shape[1]}x{shape[2]} after preprocessing; the model takes "
                                  f"{expected[1]}x{expected[2]} (train with preprocess.image_size to resize)")
        except OddpixError as exc:
            results[i].error = str(exc)
            continue
        good.append(i)
        tensors.append(x)
    if good:
        names = [files[i] for i in good]
        if maps_dir is not None and len({f.stem for f in names}) < len(names):
            raise OddpixError("--maps: two files share a name; score them in separate calls")
        comps, maps = scorer.components(torch.cat(tensors), keep_maps=maps_dir is not None)
        comps = as_numpy(comps)
        thr = scorer.threshold
        ranking, decision = thr.ranking(comps), thr.predict(comps)
        p_values = thr.p_value(comps) if thr.calibration else None
        for j, i in enumerate(good):
            results[i].score = float(ranking[j])
            results[i].anomaly = bool(decision[j])
            results[i].p_value = float(p_values[j]) if p_values is not None else None
            results[i].components = {k: float(v[j]) for k, v in comps.items()}
        if maps_dir is not None:
            write_heat_maps(maps, names, maps_dir)
    return results

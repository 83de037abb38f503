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

from pathlib import Path
from typing import Iterable, Optional

import torch

from .data.folder import read_image_file
from .bundle import RunBundle, as_numpy
from .errors import OddpixError
from .models import REGISTRY
from .predictions import MAX_ASPECT, Prediction, collect_files, predict_with
from .preprocess import Preprocessor


def read_image(path: Path, preprocessor: Preprocessor, channels: int) -> torch.Tensor:
    """One file as the model's 1 x C x H x W input: read (16-bit and float images scaled), resized to the
    size the training images had when they were read, then the stored preprocessing. Raises OddpixError
    with the reason when the file is not a readable image."""
    size = tuple(preprocessor.source_size) if preprocessor.source_size else None
    return preprocessor.transform(read_image_file(path, channels, size)[None])


def predict_files(scorer: RunBundle, paths: Iterable[str | Path], maps_dir: str | Path | None = None,
                  max_aspect: Optional[float] = MAX_ASPECT) -> list[Prediction]:
    files = collect_files(paths)
    if maps_dir is not None and not scorer.detector.has_maps:
        with_maps = ", ".join(name for name, cls in REGISTRY.items() if cls.has_maps)
        raise OddpixError(f"model {scorer.detector.name} has no anomaly maps (--maps needs one of: {with_maps})")
    expected = tuple(scorer.detector.input_shape)

    def read(f: Path) -> torch.Tensor:
        x = read_image(f, scorer.preprocessor, scorer.channels)
        shape = tuple(x.shape[1:])
        if shape != expected:
            raise OddpixError(f"image is {shape[1]}x{shape[2]} after preprocessing; the model takes "
                              f"{expected[1]}x{expected[2]} (train with preprocess.image_size to resize)")
        return x

    def score(tensors: list, keep_maps: bool):
        comps, maps = scorer.components(torch.cat(tensors), keep_maps=keep_maps)
        return as_numpy(comps), maps

    size = tuple(scorer.preprocessor.source_size) if scorer.preprocessor.source_size else None
    return predict_with(files, read, score, scorer.threshold, maps_dir, size, max_aspect)

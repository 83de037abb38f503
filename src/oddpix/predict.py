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
from typing import Iterable

import torch

from .data.folder import read_image_file
from .bundle import RunBundle, as_numpy
from .errors import OddpixError
from .models import REGISTRY
from .predictions import Prediction, collect_files, decide, write_heat_maps
from .preprocess import Preprocessor


def read_image(path: Path, preprocessor: Preprocessor, channels: int) -> torch.Tensor:
    """One file as the model's 1 x C x H x W input: read (16-bit and float images scaled), resized to the
    size the training images had when they were read, then the stored preprocessing. Raises OddpixError
    with the reason when the file is not a readable image."""
    size = tuple(preprocessor.source_size) if preprocessor.source_size else None
    return preprocessor.transform(read_image_file(path, channels, size)[None])


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
        decide(results, good, as_numpy(comps), scorer.threshold)
        if maps_dir is not None:
            write_heat_maps(maps, names, maps_dir)
    return results

"""A small generated image dataset in the MNIST format, for tests, smoke runs and benchmarks offline.

Class ``c`` of 10 is a bright elliptical blob on a ring, at angle ``c * 36`` degrees, with jitter in its
position, size, shape and brightness, on a faint random stroke texture with pixel noise: a task a
detector can learn in seconds, where each class differs from the others in a known way.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

from .sources import IDX_FILES, RawDataset, encode_idx


def pattern_images(labels: np.ndarray, size: int = 28, seed: int = 0) -> np.ndarray:
    """uint8 images (N x size x size) for the given class labels (0..9)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=np.float64)
    n = len(labels)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    yy, xx = (yy + 0.5) / size - 0.5, (xx + 0.5) / size - 0.5
    angle = labels * 2 * np.pi / 10 + rng.normal(0, 0.12, n)
    radius = rng.uniform(0.2, 0.28, n)
    cx, cy = radius * np.cos(angle), radius * np.sin(angle)
    sx, sy = rng.uniform(0.07, 0.12, n), rng.uniform(0.07, 0.12, n)
    bright = rng.uniform(0.75, 1.0, n)
    blob = bright[:, None, None] * np.exp(-0.5 * (((xx - cx[:, None, None]) / sx[:, None, None]) ** 2
                                                 + ((yy - cy[:, None, None]) / sy[:, None, None]) ** 2))
    texture = 0.12 * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 5, n)[:, None, None] * (xx + yy)
                                          + rng.uniform(0, 2 * np.pi, n)[:, None, None]))
    img = np.maximum(blob, texture) + rng.normal(0, 0.03, (n, size, size))
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def pattern_dataset(n_train_per_class: int = 100, n_test_per_class: int = 30, size: int = 28,
                    seed: int = 0, name: str = "patterns") -> RawDataset:
    y_train = np.repeat(np.arange(10), n_train_per_class)
    y_test = np.repeat(np.arange(10), n_test_per_class)
    rng = np.random.default_rng(seed)
    y_train, y_test = rng.permutation(y_train), rng.permutation(y_test)
    return RawDataset(name, pattern_images(y_train, size, seed + 1)[..., None], y_train.astype(np.int64),
                      pattern_images(y_test, size, seed + 2)[..., None], y_test.astype(np.int64), "generated")


def write_idx_folder(raw: RawDataset, folder: str | Path, gz: bool = True) -> Path:
    """Write ``raw`` as the four IDX files (gzip) plus ``MD5SUMS.uncompressed``, like a dataset mirror."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = (raw.x_train[..., 0], raw.y_train, raw.x_test[..., 0], raw.y_test)
    sums = []
    for name, array in zip(IDX_FILES, arrays):
        blob = encode_idx(array)
        sums.append(f"{hashlib.md5(blob).hexdigest()}  {name}")
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(blob, mtime=0))
        else:
            (folder / name).write_bytes(blob)
    (folder / "MD5SUMS.uncompressed").write_text("\n".join(sums) + "\n")
    return folder

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

from .idx import IDX_FILES, RawDataset, encode_idx


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


DEFECTS = ("spot", "ring", "scratch")


def defect_textures(n: int, size: int = 64, defect_share: float = 0.5, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Textured colour images with small local defects on a share of them: (uint8 N x S x S x 3 images,
    bool N x S x S masks of the defect pixels, the defect of each image: '' or one of ``DEFECTS``).

    The texture is the same family in every image (woven diagonal stripes over a slowly varying colour
    field, random phase, frequency and tint, pixel noise), so a normal image is never an exact copy of
    another. A defect is small and dark: a ``spot`` (disc of radius 1.5-3.5 px), a ``ring`` (annulus of
    radius 3-5 px, 1.5 px wide) or a ``scratch`` (a 1-2 px wide segment of 8-20 px at any angle).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    freq = rng.uniform(5.5, 6.5, n)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, (n, 2))
    stripes = 0.5 + 0.25 * np.sin(2 * np.pi * freq * (xx + yy) + phase[:, :1, None]) \
        + 0.25 * np.sin(2 * np.pi * freq * (xx - yy) + phase[:, 1:, None])
    field = 0.5 + 0.5 * np.sin(2 * np.pi * (rng.uniform(0.5, 1.5, n)[:, None, None] * xx
                                            + rng.uniform(0, 2 * np.pi, n)[:, None, None]))
    tint = np.array([0.75, 0.55, 0.35]) + rng.normal(0, 0.03, (n, 3))
    img = tint[:, None, None, :] * (0.55 + 0.3 * stripes[..., None] + 0.15 * field[..., None])
    img = img + rng.normal(0, 0.02, img.shape)
    masks = np.zeros((n, size, size), dtype=bool)
    kinds = np.full(n, "", dtype="U8")
    bad = np.flatnonzero(rng.random(n) < defect_share)
    py, px = yy * size, xx * size
    for i in bad:  # drawing a few hundred shapes: not a hot path
        kind = DEFECTS[rng.integers(len(DEFECTS))]
        cy, cx = rng.uniform(8, size - 8, 2)
        dist = np.hypot(py - cy, px - cx)
        if kind == "spot":
            mask = dist <= rng.uniform(1.5, 3.5)
        elif kind == "ring":
            r = rng.uniform(3.0, 5.0)
            mask = np.abs(dist - r) <= 0.75
        else:
            angle, length, width = rng.uniform(0, np.pi), rng.uniform(8, 20), rng.uniform(0.5, 1.0)
            u, v = np.cos(angle), np.sin(angle)
            along = (px - cx) * u + (py - cy) * v
            across = -(px - cx) * v + (py - cy) * u
            mask = (np.abs(along) <= length / 2) & (np.abs(across) <= width)
        masks[i], kinds[i] = mask, kind
        img[i][mask] *= rng.uniform(0.25, 0.45)  # darker, same hue
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8), masks, kinds


def write_defect_folder(root: str | Path, n: int = 600, size: int = 64, defect_share: float = 0.25,
                        seed: int = 0) -> Path:
    """:func:`defect_textures` as an image folder with pixel truth: ``good/``, ``defect/`` and
    ``masks/defect/`` (the layout :func:`oddpix.data.folder.load_image_folder` reads)."""
    from PIL import Image

    root = Path(root)
    images, masks, kinds = defect_textures(n, size, defect_share, seed)
    for sub in ("good", "defect", "masks/defect"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, (img, mask, kind) in enumerate(zip(images, masks, kinds)):
        name = f"{i:05d}{'_' + kind if kind else ''}.png"
        Image.fromarray(img).save(root / ("defect" if kind else "good") / name)
        if kind:
            Image.fromarray((mask * 255).astype(np.uint8)).save(root / "masks/defect" / name)
    return root

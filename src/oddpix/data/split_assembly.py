"""The parts every protocol builds its splits from: the pool of anomalous training images (drawn only when
needed), whole-group picks, the normal classes' training and test images, and :func:`assemble`, which turns
a protocol's normal, anomalous and test images into the train / val / test splits."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..errors import OddpixError
from .idx import RawDataset
from .splits import Split, class_kinds, labeled, sources

DataConfig = Any  # oddpix.data.protocols.DataConfig (not imported: protocols imports this module)


class LazyAnomalies:
    """A pool of anomalous training images, drawn without replacement and only made when needed
    (corruptions are applied to the drawn images only)."""

    def __init__(self, size: int, make):
        self.order: Optional[np.ndarray] = None
        self.used = 0
        self.size = size
        self.make = make  # index array -> Split

    def draw(self, n: int, rng: np.random.Generator, what: str) -> Split:
        if n > self.size - self.used:
            raise OddpixError(f"{what} asks for {n} anomalous training images; {self.size - self.used} are available")
        if self.order is None:
            self.order = rng.permutation(self.size)
        idx = np.sort(self.order[self.used:self.used + n])
        self.used += n
        return self.make(idx)


def pick_groups(groups: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices into ``groups`` of whole groups, in a random order, until about ``n`` images are taken (the
    prefix of groups whose size is nearest ``n``; at least one group)."""
    names, inverse = np.unique(groups, return_inverse=True)
    order = rng.permutation(len(names))
    counts = np.cumsum(np.bincount(inverse, minlength=len(names))[order])
    take = order[: max(1, int(np.argmin(np.abs(counts - n))) + 1)] if n > 0 else order[:0]
    return np.flatnonzero(np.isin(inverse, take))


def assemble(normal: Split, anomalies: LazyAnomalies, test: Split, cfg: DataConfig,
             rng: np.random.Generator, val: Optional[Split] = None,
             groups: Optional[np.ndarray] = None) -> dict[str, Split]:
    """Shuffle the normal training images into train and val (unless ``val`` is given, as a folder's
    valid/ is; whole ``groups`` at a time when given), add contamination and val anomalies."""
    if val is None:
        n_val = int(round(len(normal) * cfg.val_fraction))
        if groups is not None:
            chosen = pick_groups(groups, n_val, rng)
            n_val = len(chosen)
            rest = np.setdiff1d(np.arange(len(normal)), chosen)
        else:
            order = rng.permutation(len(normal))
            chosen, rest = order[:n_val], order[n_val:]
        if n_val < 1 or n_val >= len(normal):
            raise OddpixError(f"data.val_fraction: {cfg.val_fraction} leaves {n_val} of {len(normal)} normal "
                              "images for validation; it needs at least one for each of train and val")
        val, train = normal.take(np.sort(chosen)), normal.take(np.sort(rest))
    else:
        train, n_val = normal, len(val)
    if cfg.contamination > 0:
        n = int(round(len(train) * cfg.contamination / (1 - cfg.contamination)))
        train = Split.concat([train, anomalies.draw(max(n, 1), rng, f"data.contamination: {cfg.contamination}")])
    if cfg.val_anomaly_fraction > 0:
        n = int(round(n_val * cfg.val_anomaly_fraction / (1 - cfg.val_anomaly_fraction)))
        if n < 1:
            raise OddpixError(f"data.val_anomaly_fraction: {cfg.val_anomaly_fraction} asks for {n} anomalous "
                              "validation images; raise it or data.val_fraction")
        val = Split.concat([val, anomalies.draw(n, rng, f"data.val_anomaly_fraction: {cfg.val_anomaly_fraction}")])
    if test.y.min() == test.y.max():
        raise OddpixError("the test split has only one label (all normal or all anomalous); AUROC would be "
                          "undefined - check data.normal_classes")
    return {"train": train, "val": val, "test": test}


def normal_mask(labels: np.ndarray, cfg: DataConfig, present: np.ndarray, name: str) -> np.ndarray:
    if cfg.normal_classes == "all":
        return np.ones(len(labels), dtype=bool)
    missing = [c for c in cfg.normal_classes if c not in present]
    if missing:
        raise OddpixError(f"data.normal_classes: class {missing[0]} has no training images in {name}; "
                          f"classes present: {', '.join(map(str, present))}")
    return np.isin(labels, cfg.normal_classes)


def normal_train_images(raw: RawDataset, keep: np.ndarray) -> Split:
    """The training images ``keep`` of ``raw`` as normal images."""
    return labeled(raw.x_train[keep], raw.y_train[keep], np.zeros(len(keep)), class_kinds(raw.y_train[keep]),
                   sources(raw.name, "train", keep))


def test_images(raw: RawDataset, anomalous: np.ndarray) -> Split:
    """Every test image of ``raw``, anomalous where ``anomalous``, kinds by class."""
    return labeled(raw.x_test, raw.y_test, anomalous, class_kinds(raw.y_test),
                   sources(raw.name, "test", np.arange(len(raw.y_test))))

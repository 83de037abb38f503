"""Anomaly protocols: turn a raw dataset into labeled train / val / test splits.

Every split holds, per image: ``x`` (uint8, N x H x W x C), ``y`` (0 normal, 1 anomaly), ``label`` (the
original class) and ``kind`` (``normal`` or the kind of anomaly, e.g. ``class:7``).

* train: normal images only (a model never sees an anomaly unless a protocol option asks for it);
* val:   held-out normal training images, for early stopping and thresholds;
* test:  the dataset's full test set, untouched by any choice of the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..errors import OddpixError
from .sources import RawDataset

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    x: np.ndarray
    y: np.ndarray
    label: np.ndarray
    kind: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.x)
        if not (len(self.y) == len(self.label) == len(self.kind) == n):
            raise ValueError("split arrays differ in length")

    def __len__(self) -> int:
        return len(self.x)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"x": self.x, "y": self.y, "label": self.label, "kind": self.kind}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "Split":
        return cls(arrays["x"], arrays["y"], arrays["label"], arrays["kind"])

    def take(self, index: np.ndarray) -> "Split":
        return Split(self.x[index], self.y[index], self.label[index], self.kind[index])


def _kinds(labels: np.ndarray, is_anomaly: np.ndarray) -> np.ndarray:
    kinds = np.char.add("class:", labels.astype(str))
    return np.where(is_anomaly, kinds, "normal").astype("U32")


def one_vs_rest(raw: RawDataset, normal_classes: Iterable[int], val_fraction: float, seed: int,
                val_anomaly_fraction: float = 0.0) -> dict[str, Split]:
    """Normal = ``normal_classes``; every other class is an anomaly (kind ``class:<label>``).

    ``val_anomaly_fraction`` > 0 adds labelled anomalies from the training set's other classes to the
    validation split (that share of it), for threshold rules that need them (``best_f1``); they are
    never used to train or early-stop an unsupervised model.
    """
    normal = np.asarray(sorted(set(normal_classes)), dtype=np.int64)
    present = np.unique(raw.y_train)
    missing = [int(c) for c in normal if c not in present]
    if missing:
        raise OddpixError(f"data.normal_classes: class {missing[0]} has no training images in {raw.name}; "
                          f"classes present: {', '.join(map(str, present))}")
    rng = np.random.default_rng(seed)
    train_idx = np.flatnonzero(np.isin(raw.y_train, normal))
    train_idx = train_idx[rng.permutation(len(train_idx))]
    n_val = int(round(len(train_idx) * val_fraction))
    if n_val < 1 or n_val >= len(train_idx):
        raise OddpixError(f"data.val_fraction: {val_fraction} leaves {n_val} of {len(train_idx)} normal images "
                          "for validation; it needs at least one for each of train and val")
    val_idx, fit_idx = np.sort(train_idx[:n_val]), np.sort(train_idx[n_val:])
    if val_anomaly_fraction > 0:
        pool = np.flatnonzero(~np.isin(raw.y_train, normal))
        n_anomalies = int(round(n_val * val_anomaly_fraction / (1 - val_anomaly_fraction)))
        if n_anomalies < 1 or n_anomalies > len(pool):
            raise OddpixError(f"data.val_anomaly_fraction: {val_anomaly_fraction} asks for {n_anomalies} anomalous "
                              f"validation images; {len(pool)} are available")
        val_idx = np.sort(np.concatenate([val_idx, rng.choice(pool, n_anomalies, replace=False)]))

    def make(x: np.ndarray, labels: np.ndarray, index: np.ndarray) -> Split:
        lab = labels[index]
        anomalous = ~np.isin(lab, normal)
        return Split(x[index], anomalous.astype(np.int64), lab.astype(np.int64), _kinds(lab, anomalous))

    test_idx = np.arange(len(raw.y_test))
    splits = {"train": make(raw.x_train, raw.y_train, fit_idx), "val": make(raw.x_train, raw.y_train, val_idx),
              "test": make(raw.x_test, raw.y_test, test_idx)}
    if splits["test"].y.min() == splits["test"].y.max():
        raise OddpixError("the test split has only one label (all normal or all anomalous); AUROC would be "
                          "undefined - check data.normal_classes")
    return splits


PROTOCOLS = {"one_vs_rest": one_vs_rest}


def summarize(splits: dict[str, Split]) -> dict:
    """Counts per split, label and kind: a flat JSON that DVC tracks as metrics."""
    out: dict[str, int] = {}
    for name, split in splits.items():
        out[f"{name}_n"] = int(len(split))
        out[f"{name}_normal"] = int((split.y == 0).sum())
        out[f"{name}_anomaly"] = int((split.y == 1).sum())
        kinds, counts = np.unique(split.kind, return_counts=True)
        for kind, count in zip(kinds, counts):
            out[f"{name}_kind_{str(kind).replace(':', '_')}"] = int(count)
    return out

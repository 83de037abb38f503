"""The labeled split every stage after ``split`` reads: pixels, labels and the kind of each image, where it
came from (``source``: the file under the folder root, or ``<dataset>:<train|test>:<index>``), and where the
truth is known pixel by pixel (the corrupted protocol, a folder's masks/), a mask of the anomalous pixels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    x: np.ndarray
    y: np.ndarray
    label: np.ndarray
    kind: np.ndarray
    mask: Optional[np.ndarray] = None  # N x H x W bool: the pixels that make the image anomalous
    source: Optional[np.ndarray] = None  # str per image: where it came from ("" where unknown)

    def __post_init__(self) -> None:
        n = len(self.x)
        if self.source is None:
            self.source = np.full(n, "", dtype="U1")
        if not (len(self.y) == len(self.label) == len(self.kind) == len(self.source) == n):
            raise ValueError("split arrays differ in length")
        if self.mask is not None and (self.mask.ndim != 3 or len(self.mask) != n):
            raise ValueError(f"masks {self.mask.shape} are not one H x W mask per image ({n})")

    def __len__(self) -> int:
        return len(self.x)

    def arrays(self) -> dict[str, np.ndarray]:
        mask = {} if self.mask is None else {"mask": self.mask}
        return {"x": self.x, "y": self.y, "label": self.label, "kind": self.kind, "source": self.source, **mask}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "Split":
        return cls(arrays["x"], arrays["y"], arrays["label"], arrays["kind"], arrays.get("mask"), arrays.get("source"))

    def take(self, index: np.ndarray) -> "Split":
        mask = None if self.mask is None else self.mask[index]
        return Split(self.x[index], self.y[index], self.label[index], self.kind[index], mask, self.source[index])

    @classmethod
    def concat(cls, parts: list["Split"]) -> "Split":
        parts = [p for p in parts if len(p)]
        masks = None
        if any(p.mask is not None for p in parts):  # parts without masks have no anomalous pixels marked
            size = next(p.mask.shape[1:] for p in parts if p.mask is not None)
            masks = np.concatenate([p.mask if p.mask is not None else np.zeros((len(p), *size), bool) for p in parts])
        x, y, label, kind, source = (np.concatenate([getattr(p, f) for p in parts])
                                     for f in ("x", "y", "label", "kind", "source"))
        return cls(x, y, label, kind, masks, source)


def labeled(x: np.ndarray, labels: np.ndarray, anomalous: np.ndarray, kinds: np.ndarray,
            source: Optional[np.ndarray] = None) -> Split:
    anomalous = np.asarray(anomalous, dtype=bool)
    return Split(x, anomalous.astype(np.int64), np.asarray(labels, dtype=np.int64),
                 np.where(anomalous, kinds, "normal").astype("U48"), source=None if source is None else np.asarray(source, dtype=str))


def sources(dataset: str, part: str, index: np.ndarray) -> np.ndarray:
    """``<dataset>:<part>:<index>`` for images of an IDX dataset (``fashion_mnist:test:17``)."""
    return np.char.add(f"{dataset}:{part}:", np.asarray(index).astype(str))


def class_kinds(labels: np.ndarray) -> np.ndarray:
    return np.char.add("class:", np.asarray(labels).astype(str))

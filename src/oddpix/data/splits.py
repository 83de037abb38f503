"""The labeled split every stage after ``split`` reads: pixels, labels and the kind of each image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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

    @classmethod
    def concat(cls, parts: list["Split"]) -> "Split":
        parts = [p for p in parts if len(p)]
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("x", "y", "label", "kind")))


def labeled(x: np.ndarray, labels: np.ndarray, anomalous: np.ndarray, kinds: np.ndarray) -> Split:
    anomalous = np.asarray(anomalous, dtype=bool)
    return Split(x, anomalous.astype(np.int64), np.asarray(labels, dtype=np.int64),
                 np.where(anomalous, kinds, "normal").astype("U48"))


def class_kinds(labels: np.ndarray) -> np.ndarray:
    return np.char.add("class:", np.asarray(labels).astype(str))

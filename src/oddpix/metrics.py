"""Evaluation of scores and decisions: flat, stable metric names for `dvc metrics diff`."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from .errors import OddpixError


def metric_key(text: str) -> str:
    """``class:7`` -> ``class_7``: safe in flat metric names."""
    return re.sub(r"[^0-9A-Za-z]+", "_", str(text)).strip("_")


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    return float(skm.roc_auc_score(y, s))


def evaluate(y: np.ndarray, scores: np.ndarray, predicted: np.ndarray, kinds: np.ndarray | None = None,
             components: dict[str, np.ndarray] | None = None) -> dict:
    """Ranking metrics of ``scores`` and decision metrics of ``predicted`` (0/1) against ``y`` (0/1)."""
    y = np.asarray(y).astype(np.int64)
    s = np.asarray(scores, dtype=np.float64)
    p = np.asarray(predicted).astype(np.int64)
    if len(np.unique(y)) < 2:
        raise OddpixError("evaluation needs both normal and anomalous test images; the test split has one kind")
    if not np.all(np.isfinite(s)):
        raise OddpixError(f"{int((~np.isfinite(s)).sum())} test scores are not finite (NaN or inf); "
                          "the model diverged - lower the learning rate")
    tn, fp, fn, tp = (int(v) for v in skm.confusion_matrix(y, p, labels=[0, 1]).ravel())
    out = {
        "auroc": auroc(y, s),
        "auprc": float(skm.average_precision_score(y, s)),
        "accuracy": float(skm.accuracy_score(y, p)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, p)),
        "precision": float(skm.precision_score(y, p, zero_division=0)),
        "recall": float(skm.recall_score(y, p, zero_division=0)),
        "f1": float(skm.f1_score(y, p, zero_division=0)),
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "n_test": int(len(y)), "n_test_anomaly": int(y.sum()),
    }
    for name, values in (components or {}).items():
        out[f"auroc_{metric_key(name)}"] = auroc(y, np.asarray(values, dtype=np.float64))
    if kinds is not None:
        kinds = np.asarray(kinds).astype(str)
        normal = y == 0
        for kind in sorted(set(kinds[y == 1])):
            mask = normal | (kinds == kind)
            key = metric_key(kind)
            out[f"auroc_{key}"] = auroc(y[mask], s[mask])
            out[f"detected_{key}"] = float(p[kinds == kind].mean())
    return out


def curves(y: np.ndarray, scores: np.ndarray, max_points: int = 400) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ROC and precision-recall curves, thinned to at most ``max_points`` rows each for DVC plots."""
    fpr, tpr, _ = skm.roc_curve(y, scores)
    precision, recall, _ = skm.precision_recall_curve(y, scores)

    def thin(frame: pd.DataFrame) -> pd.DataFrame:
        if len(frame) <= max_points:
            return frame
        idx = np.unique(np.linspace(0, len(frame) - 1, max_points).round().astype(int))
        return frame.iloc[idx].reset_index(drop=True)

    roc = thin(pd.DataFrame({"fpr": fpr, "tpr": tpr}))
    pr = thin(pd.DataFrame({"recall": recall[::-1], "precision": precision[::-1]}))
    return roc, pr


def pro_score(maps: np.ndarray, masks: np.ndarray, max_fpr: float = 0.3, steps: int = 200) -> float:
    """Per-region overlap (Bergmann et al. 2020, MVTec AD): each connected region of the true masks counts
    the same whatever its size; for thresholds giving a false-positive rate on the normal pixels of 0 to
    ``max_fpr``, the mean share of each region's pixels above the threshold, integrated over that FPR
    range and divided by ``max_fpr`` (1 is perfect, a random map about ``max_fpr`` / 2)."""
    from scipy import ndimage

    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]  # 4-connected within an image, never across images
    regions, n = ndimage.label(masks, structure)
    if n == 0:
        return float("nan")
    inside = regions > 0
    ids, values = regions[inside], maps[inside]
    sizes = np.bincount(ids, minlength=n + 1)[1:]
    fprs = np.linspace(0.0, max_fpr, steps + 1)
    thresholds = np.quantile(maps[~masks].astype(np.float64), 1.0 - fprs)
    overlap = np.array([(np.bincount(ids, weights=values > t, minlength=n + 1)[1:] / sizes).mean()
                        for t in thresholds])
    return float(((overlap[1:] + overlap[:-1]) / 2 * np.diff(fprs)).sum() / max_fpr)


def pixel_metrics(maps: np.ndarray, masks: np.ndarray, y: np.ndarray, kinds: np.ndarray | None = None) -> dict:
    """Pixel-level AUROC and PRO of anomaly maps (N x H x W) against the true masks, over the images whose
    every pixel's truth is known: the normal ones and the anomalous ones with a mask (an image anomalous as
    a whole, e.g. another class, has no pixel truth and is left out); ``pixel_auroc_<kind>`` per kind."""
    maps = np.asarray(maps, dtype=np.float32)
    masks = np.asarray(masks, dtype=bool)
    y = np.asarray(y)
    known = (y == 0) | masks.any(axis=(1, 2))
    if not masks[known].any():
        return {}
    out = {"pixel_auroc": auroc(masks[known].ravel(), maps[known].ravel()),
           "pro": pro_score(maps[known], masks[known])}
    if kinds is not None:
        kinds = np.asarray(kinds).astype(str)
        for kind in sorted(set(kinds[known & (y == 1)])):
            sel = known & ((y == 0) | (kinds == kind))
            if masks[sel].any():
                out[f"pixel_auroc_{metric_key(kind)}"] = auroc(masks[sel].ravel(), maps[sel].ravel())
    return out

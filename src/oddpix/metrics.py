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


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
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
        "auroc": _auroc(y, s),
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
        out[f"auroc_{metric_key(name)}"] = _auroc(y, np.asarray(values, dtype=np.float64))
    if kinds is not None:
        kinds = np.asarray(kinds).astype(str)
        normal = y == 0
        for kind in sorted(set(kinds[y == 1])):
            mask = normal | (kinds == kind)
            key = metric_key(kind)
            out[f"auroc_{key}"] = _auroc(y[mask], s[mask])
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

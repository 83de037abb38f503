"""Figures a user reads after a run: score histograms with the threshold, reconstruction grids."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .thresholds import Threshold  # noqa: E402


def score_histogram(val_normal: np.ndarray, test_normal: np.ndarray, test_anomaly: np.ndarray,
                    threshold: Threshold, title: str = ""):
    """Overlaid histograms of normal and anomalous scores, with the threshold as vertical lines."""
    fig, ax = plt.subplots(figsize=(7, 4))
    every = np.concatenate([val_normal, test_normal, test_anomaly])
    every = every[np.isfinite(every)]
    lo, hi = np.percentile(every, [0.5, 99.5]) if len(every) else (0.0, 1.0)
    lo, hi = min(lo, threshold.high), max(hi, threshold.high)
    if threshold.low is not None:
        lo = min(lo, threshold.low)
    bins = np.linspace(lo, hi, 60) if hi > lo else 30
    for values, label, color in ((val_normal, "val normal", "tab:green"), (test_normal, "test normal", "tab:blue"),
                                 (test_anomaly, "test anomaly", "tab:red")):
        if len(values):
            ax.hist(np.clip(values, lo, hi), bins=bins, alpha=0.45, density=True, label=f"{label} (n={len(values)})",
                    color=color)
    ax.axvline(threshold.high, color="black", linestyle="--", label=f"threshold {threshold.high:.4g}")
    if threshold.low is not None:
        ax.axvline(threshold.low, color="black", linestyle=":", label=f"lower threshold {threshold.low:.4g}")
    ax.set_xlabel(f"score: {threshold.component} ({threshold.rule})")
    ax.set_ylabel("density")
    ax.set_title(title or "score distribution")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _show(ax, img: np.ndarray, cmap: str | None = None) -> None:
    """``img`` is C x H x W in [0, 1] (or H x W for heat maps)."""
    if img.ndim == 3:
        img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
    ax.imshow(img, cmap=cmap or ("gray" if img.ndim == 2 else None), vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def reconstruction_grid(images: np.ndarray, recons: np.ndarray, scores: np.ndarray, labels: list[str]):
    """Columns = images; rows = original, reconstruction, |difference| heat map."""
    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(1.4 * n, 4.6), squeeze=False)
    for i in range(n):
        _show(axes[0, i], images[i])
        axes[0, i].set_title(f"{labels[i]}\n{scores[i]:.3g}", fontsize=7)
        _show(axes[1, i], recons[i])
        diff = np.abs(images[i] - recons[i]).mean(axis=0)
        _show(axes[2, i], diff / max(float(diff.max()), 1e-8), cmap="inferno")
    for row, name in enumerate(("original", "reconstruction", "|difference|")):
        axes[row, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig

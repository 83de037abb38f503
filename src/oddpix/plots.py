"""Figures a user reads after a run: score histograms with the threshold, reconstruction grids, the
latent space in 2-D with the KDE's density, and the most and least anomalous test images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .figures import frame, pyplot, show_image
from .schema import num
from .fitted_threshold import Bound


@dataclass(frozen=True)
class PlotsConfig:
    n_images: int = num(8, ge=1, le=64)
    dpi: int = num(100, ge=30, le=600)


def score_histogram(val_normal: list[np.ndarray], test_normal: list[np.ndarray], test_anomaly: list[np.ndarray],
                    bounds: list[Bound], rule: str, title: str = ""):
    """One panel per thresholded component: histograms of normal and anomalous scores, threshold lines."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(bounds), figsize=(7 * len(bounds), 4), squeeze=False)
    for ax, vn, tn, ta, bound in zip(axes[0], val_normal, test_normal, test_anomaly, bounds):
        every = np.concatenate([vn, tn, ta])
        every = every[np.isfinite(every)]
        lo, hi = np.percentile(every, [0.5, 99.5]) if len(every) else (0.0, 1.0)
        lo, hi = min(lo, bound.high), max(hi, bound.high)
        if bound.low is not None:
            lo = min(lo, bound.low)
        bins = np.linspace(lo, hi, 60) if hi > lo else 30
        for values, label, color in ((vn, "val normal", "tab:green"), (tn, "test normal", "tab:blue"),
                                     (ta, "test anomaly", "tab:red")):
            if len(values):
                clipped = int(((values < lo) | (values > hi)).sum())
                note = f", {clipped} beyond the axis, counted in the edge bins" if clipped else ""
                ax.hist(np.clip(values, lo, hi), bins=bins, alpha=0.45, density=True,
                        label=f"{label} (n={len(values)}{note})", color=color)
        ax.axvline(bound.high, color="black", linestyle="--", label=f"threshold {bound.high:.4g}")
        if bound.low is not None:
            ax.axvline(bound.low, color="black", linestyle=":", label=f"lower threshold {bound.low:.4g}")
        ax.set_xlabel(f"score: {bound.component} ({rule})")
        ax.set_ylabel("density")
        ax.set_title(title or "score distribution")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def failure_panels(ranking: np.ndarray, y: np.ndarray, n: int) -> list[tuple[str, np.ndarray]]:
    """Which test images the extremes and anomaly-map figures show, by row: the most anomalous, the normals
    that score highest (false alarms where the threshold flags them), the anomalies that score lowest
    (misses where it does not) and the least anomalous. Indices into the test split, each row in the order
    it is drawn; ties keep the split's order."""
    order = np.argsort(-ranking, kind="stable")
    normals, anomalies = order[y[order] == 0], order[y[order] == 1]
    rows = [("most anomalous", order[:n]), ("highest normals\n(false alarms)", normals[:n]),
            ("lowest anomalies\n(misses)", anomalies[::-1][:n]), ("least anomalous", order[::-1][:n])]
    return [(name, idx.copy()) for name, idx in rows]  # contiguous: they index tensors


def _gray(img: np.ndarray) -> np.ndarray:
    """C x H x W in [0, 1] -> H x W (the channel mean)."""
    return img.mean(axis=0) if img.ndim == 3 else img


def anomaly_map_grid(groups: list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None, list[str]]],
                     title: str = "", flags: list[list[bool]] | None = None):
    """Per group (e.g. the most anomalous, the false alarms, the misses) two or three rows: the images, their
    anomaly maps over them (one colour scale for the whole figure, with its colour bar) and the true masks
    where known. ``groups``: (name, images C x H x W, maps H x W, masks H x W or None, captions);
    ``flags``: per group, whether the threshold flags each image (a red frame)."""
    plt = pyplot()
    n = max(len(images) for _, images, _, _, _ in groups)
    rows = sum(3 if masks is not None else 2 for *_, masks, _ in groups)
    top = max((float(np.max(maps)) for _, _, maps, _, _ in groups if len(maps)), default=1.0) or 1.0
    fig, axes = plt.subplots(rows, n, figsize=(1.4 * n + 0.9, 1.6 * rows + 0.5), squeeze=False)
    r, shown = 0, None
    for g, (name, images, maps, masks, captions) in enumerate(groups):
        names = ["image", "anomaly map"] + (["true mask"] if masks is not None else [])
        for k, row_name in enumerate(names):
            for i in range(n):
                ax = axes[r + k, i]
                if i >= len(images):
                    ax.axis("off")
                    continue
                if k == 0:
                    show_image(ax, images[i])
                    ax.set_title(captions[i], fontsize=7)
                    frame(ax, flags[g][i] if flags else None)
                elif k == 1:
                    ax.imshow(_gray(images[i]), cmap="gray", vmin=0, vmax=1)
                    shown = ax.imshow(maps[i], cmap="inferno", alpha=0.6, vmin=0, vmax=top)
                    ax.set_xticks([])
                    ax.set_yticks([])
                else:
                    show_image(ax, masks[i].astype(np.float32))
            axes[r + k, 0].set_ylabel(f"{name}\n{row_name}" if k == 0 else row_name, fontsize=8)
        r += len(names)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.92, 1))
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes.ravel().tolist(), fraction=0.025, pad=0.01)
        bar.set_label("anomaly map (local score)", fontsize=8)
    return fig


def image_strip(rows: list[tuple[str, np.ndarray, list[str]]], title: str = "", flags: list[list[bool]] | None = None):
    """Rows of images (C x H x W in [0, 1]) with a row name and a caption per image; ``flags``: per row,
    whether the threshold flags each image (a red frame)."""
    plt = pyplot()
    n = max(len(images) for _, images, _ in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.4 * n, 1.95 * len(rows) + (0.4 if title else 0)),
                             squeeze=False)
    for r, (name, images, captions) in enumerate(rows):
        for i in range(n):
            ax = axes[r, i]
            if i < len(images):
                show_image(ax, images[i])
                ax.set_title(captions[i], fontsize=7)
                frame(ax, flags[r][i] if flags else None)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def latent_map(points: np.ndarray, y: np.ndarray, grid: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
               explained: tuple[float, float], title: str = "", train: np.ndarray | None = None,
               totals: tuple[int, int] | None = None, train_total: int | None = None):
    """Test codes on the first two principal axes of the training codes, normal vs anomaly (as many of each
    drawn, at most, so that neither hides the other), the training codes in grey beneath, and the log
    density of the latent KDE on that plane as contours (``grid`` = X, Y, log density). ``totals``: how many
    normal and anomalous test codes there are in all."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    if train is not None and len(train):
        drawn = f"{len(train)} of {train_total}" if train_total and train_total != len(train) else f"n={len(train)}"
        ax.scatter(train[:, 0], train[:, 1], s=3, alpha=0.25, color="0.6", label=f"training ({drawn})")
    if grid is not None:
        gx, gy, gz = grid
        levels = np.linspace(np.percentile(gz, 5), gz.max(), 12)
        cs = ax.contour(gx, gy, gz, levels=levels, cmap="Greens", linewidths=0.8)
        fig.colorbar(cs, ax=ax, label="KDE log density on this plane")
    for label, color, name in ((1, "tab:red", "anomaly"), (0, "tab:blue", "normal")):  # normals on top
        mask = y == label
        total = totals[label] if totals else int(mask.sum())
        shown = f"{int(mask.sum())} of {total}" if total != mask.sum() else f"n={total}"
        ax.scatter(points[mask, 0], points[mask, 1], s=5, alpha=0.5, color=color, label=f"test {name} ({shown})")
    ax.set_xlabel(f"PC 1 ({100 * explained[0]:.0f} % of training variance)")
    ax.set_ylabel(f"PC 2 ({100 * explained[1]:.0f} %)")
    ax.set_title(title or "latent space", fontsize=9)
    ax.legend(fontsize=8, markerscale=3)
    fig.tight_layout()
    return fig

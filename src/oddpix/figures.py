"""Image grids shared by training and the plots stage: matplotlib on the file-only backend, and the grid
of originals over reconstructions (GANs draw it while they train, the plots stage after scoring). Kept
apart from :mod:`oddpix.plots` so that a detector's code does not depend on the pipeline's figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import write_figure


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, imported on first use (it costs about 0.3 s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 100) -> None:
    """Write ``fig`` atomically as a PNG and free it."""
    write_figure(path, fig, dpi)
    pyplot().close(fig)


def show_image(ax, img: np.ndarray, cmap: str | None = None) -> None:
    """``img`` is C x H x W in [0, 1] (or H x W for heat maps)."""
    if img.ndim == 3:
        img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
    ax.imshow(img, cmap=cmap or ("gray" if img.ndim == 2 else None), vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def frame(ax, flagged: bool | None) -> None:
    """A red frame around an image the threshold flags (none when the decision is not known)."""
    if flagged is None:
        return
    for spine in ax.spines.values():
        spine.set_visible(bool(flagged))
        spine.set_edgecolor("tab:red")
        spine.set_linewidth(2.5)


def reconstruction_grid(images: np.ndarray, recons: np.ndarray, scores: np.ndarray, labels: list[str],
                        flags: np.ndarray | None = None, title: str = ""):
    """Columns = images; rows = original, reconstruction, |difference| heat map (each scaled to its own
    largest difference). ``flags``: whether the threshold flags each column (a red frame, "flagged")."""
    plt = pyplot()
    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(1.4 * n, 4.6 + (0.4 if title else 0)), squeeze=False)
    for i in range(n):
        show_image(axes[0, i], images[i])
        decided = "" if flags is None else ("\nflagged" if flags[i] else "\nnot flagged")
        axes[0, i].set_title(f"{labels[i]}\n{scores[i]:.3g}{decided}", fontsize=7)
        frame(axes[0, i], None if flags is None else bool(flags[i]))
        show_image(axes[1, i], recons[i])
        diff = np.abs(images[i] - recons[i]).mean(axis=0)
        show_image(axes[2, i], diff / max(float(diff.max()), 1e-8), cmap="inferno")
    for row, name in enumerate(("original", "reconstruction", "|difference|\n(own scale)")):
        axes[row, 0].set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def save_reconstruction_samples(path: str | Path, originals, recons, caption: str, dpi: int = 80) -> None:
    """A training-time grid of originals over reconstructions (tensors in [0, 1]), captioned e.g. ``step 200``."""
    originals, recons = originals.detach().cpu(), recons.detach().cpu()
    scores = (originals - recons).abs().flatten(1).mean(1).numpy()
    save_figure(reconstruction_grid(originals.numpy(), recons.numpy(), scores, [caption] * len(originals)), path, dpi)

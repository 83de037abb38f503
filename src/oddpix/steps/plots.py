"""Plots stage: score histograms with the threshold, reconstructions, extremes, corruptions, latent map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import Params, reads
from ..density import load_kde
from ..io import read_json, read_npz
from ..models import load_detector
from ..preprocess import Preprocessor
from ..thresholds import Threshold, component_values
from .common import components, log, read_prepared, read_scores


def _kind_label(kind: str, classes: tuple[str, ...] | None) -> str:
    """``class:7`` -> the class name (``Sneaker``), ``corruption:dot`` -> ``dot``, ``normal`` stays."""
    prefix, _, rest = kind.partition(":")
    if prefix == "class" and classes and rest.isdigit() and int(rest) < len(classes):
        return classes[int(rest)]
    return rest or kind


@reads("seed", "model", "data.dataset", "plots")
def plots(params: Params, prepared_dir: str | Path, model_path: str | Path, scores_dir: str | Path,
          threshold_path: str | Path, latents_path: str | Path, kde_path: str | Path, out_dir: str | Path) -> None:
    from .. import plots as figures
    from ..data.sources import DATASETS

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dpi = params.plots.dpi

    def save(name: str, fig) -> None:
        figures.save_figure(fig, out_dir / name, dpi)

    val, test = read_scores(scores_dir, "val"), read_scores(scores_dir, "test")
    thr = Threshold.from_dict(read_json(threshold_path))
    y, y_val = test["y"].to_numpy(), val["y"].to_numpy()
    title = f"{params.model} on {params.data.dataset}"
    val_comps, test_comps = components(val), components(test)
    per = [(component_values(val_comps, b.component, "plots"), component_values(test_comps, b.component, "plots"))
           for b in thr.bounds]
    save("score_histogram.png", figures.score_histogram(
        [v[y_val == 0] for v, _ in per], [t[y == 0] for _, t in per], [t[y == 1] for _, t in per], thr.bounds,
        thr.rule, title))

    detector, extra = load_detector(model_path)
    prep = Preprocessor.from_dict(extra["preprocess"])
    x, _ = read_prepared(prepared_dir, "test")
    ranking = thr.ranking(test_comps)
    spec = DATASETS.get(params.data.dataset)
    labels = [_kind_label(k, spec.classes if spec else None) for k in test["kind"]]
    n = params.plots.n_images

    rng = np.random.default_rng(params.seed)
    pick = np.concatenate([rng.permutation(np.flatnonzero(y == 0))[: (n + 1) // 2],
                           rng.permutation(np.flatnonzero(y == 1))[: n // 2]])
    recon = detector.reconstruct(x[pick])
    if recon is not None:
        save("reconstructions.png", figures.reconstruction_grid(
            prep.inverse(x[pick]).numpy(), prep.inverse(recon).numpy(), ranking[pick],
            [("anomaly " if y[i] else "normal ") + labels[i] for i in pick]))

    order = np.argsort(-ranking, kind="stable")
    rows = []
    for name, idx in (("most anomalous", order[:n]), ("least anomalous", order[::-1][:n].copy())):
        captions = [f"{labels[i] if y[i] else 'normal'}\n{ranking[i]:.3g}" for i in idx]
        rows.append((name, prep.inverse(x[idx]).numpy(), captions))
    save("extremes.png", figures.image_strip(rows))

    kinds = test["kind"].to_numpy().astype(str)
    corruption_types = sorted({k.split(":", 1)[1] for k in kinds if k.startswith("corruption:")})
    if corruption_types:  # a gallery of each corruption type in the test split
        rows = []
        for t in corruption_types:
            idx = np.flatnonzero(kinds == f"corruption:{t}")[:n]
            rows.append((t, prep.inverse(x[idx]).numpy(), [f"{labels[i]}\n{ranking[i]:.3g}" for i in idx]))
        save("corruptions.png", figures.image_strip(rows))

    kde = load_kde(kde_path)
    latents = read_npz(latents_path) if detector.has_encoder else {}
    if "train" in latents:
        train_codes = torch.from_numpy(latents["train"]).double()
        mean = train_codes.mean(0)
        _, sv, v = torch.linalg.svd(train_codes - mean, full_matrices=False)
        axes = v[:2].T
        explained = (sv[:2] ** 2 / (sv ** 2).sum()).tolist()
        test_codes = torch.from_numpy(latents["test"]).double()
        show = rng.permutation(len(test_codes))[:3000]
        pts = ((test_codes[show] - mean) @ axes).numpy()
        grid = None
        if kde is not None:
            lo, hi = np.percentile(pts, 1, axis=0), np.percentile(pts, 99, axis=0)
            gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 60), np.linspace(lo[1], hi[1], 60))
            plane = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1)) @ axes.T + mean
            grid = (gx, gy, kde.log_density(plane.float()).numpy().reshape(gx.shape))
        save("latent_space.png", figures.latent_map(pts, y[show], grid, (explained[0], explained[1]), title))
    log(f"plots: written to {out_dir}")

"""Plots stage: score histograms with the threshold, reconstructions, extremes, anomaly maps, corruptions,
latent map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..bundle import RunBundle
from ..config import Params, reads
from ..data.sources import DATASETS
from ..density import latent_plane
from ..figures import reconstruction_grid, save_figure
from ..fitted_threshold import component_values
from ..io import read_npz
from ..maps import LocalConfig
from ..plots import anomaly_map_grid, image_strip, latent_map, score_histogram
from ..preprocess import Preprocessor
from ..scoring import anomaly_maps
from .common import components, log, read_prepared, read_scores


def _kind_label(kind: str, classes: tuple[str, ...] | None) -> str:
    """``class:7`` -> the class name (``Sneaker``), ``corruption:dot`` -> ``dot``, ``normal`` stays."""
    prefix, _, rest = kind.partition(":")
    if prefix == "class" and classes and rest.isdigit() and int(rest) < len(classes):
        return classes[int(rest)]
    return rest or kind


def _caption(anomalous: bool, label: str) -> str:
    """``anomaly Sneaker``, ``normal T-shirt/top``; a label that already says it stays alone (``normal``)."""
    kind = "anomaly" if anomalous else "normal"
    return label if label == kind else f"{kind} {label}"


def _short_source(source: str, width: int = 14) -> str:
    """``fashion_mnist:test:17`` -> ``test #17``; a file -> its name, cut to ``width`` characters."""
    parts = source.split(":")
    if len(parts) == 3 and parts[2].isdigit():
        return f"{parts[1]} #{parts[2]}"
    name = Path(source).name
    return name if len(name) <= width else name[: width - 1] + "…"


def _image_figures(params, detector, prep: Preprocessor, x: torch.Tensor, test, ranking: np.ndarray, labels: list[str],
                   rng: np.random.Generator, local: LocalConfig, mask: np.ndarray | None) -> dict:
    """Reconstructions (detectors that reconstruct), the most and least anomalous images, their anomaly
    maps (detectors with maps; with the true masks where known), corruptions."""
    out = {}
    y, n = test["y"].to_numpy(), params.plots.n_images
    pick = np.concatenate([rng.permutation(np.flatnonzero(y == 0))[: (n + 1) // 2],
                           rng.permutation(np.flatnonzero(y == 1))[: n // 2]])
    recon = detector.reconstruct(x[pick])
    if recon is not None:
        out["reconstructions.png"] = reconstruction_grid(
            prep.inverse(x[pick]).numpy(), prep.inverse(recon).numpy(), ranking[pick],
            [_caption(bool(y[i]), labels[i]) for i in pick])
    order = np.argsort(-ranking, kind="stable")
    sources = test["source"].astype(str).to_numpy()

    def caption(i: int) -> str:  # kind and score, as the extremes and the anomaly maps show them
        return f"{labels[i] if y[i] else 'normal'}\n{ranking[i]:.3g}"
    rows = []
    for name, idx in (("most anomalous", order[:n]), ("least anomalous", order[::-1][:n].copy())):
        rows.append((name, prep.inverse(x[idx]).numpy(), [
            caption(i) + (f"\n{_short_source(sources[i])}" if sources[i] else "") for i in idx]))
    out["extremes.png"] = image_strip(rows)
    if detector.has_maps:  # where the detector sees the anomaly, on the most and least anomalous images
        groups = []
        for name, idx in (("most anomalous", order[:n]), ("least anomalous", order[::-1][:n].copy())):
            maps = anomaly_maps(detector, x[idx], local=local).numpy()
            groups.append((name, prep.inverse(x[idx]).numpy(), maps, None if mask is None else mask[idx],
                           [caption(i) for i in idx]))
        out["anomaly_maps.png"] = anomaly_map_grid(groups)
    kinds = test["kind"].to_numpy().astype(str)
    corruption_types = sorted({k.split(":", 1)[1] for k in kinds if k.startswith("corruption:")})
    if corruption_types:  # a gallery of each corruption type in the test split
        out["corruptions.png"] = image_strip([
            (t, prep.inverse(x[idx]).numpy(), [f"{labels[i]}\n{ranking[i]:.3g}" for i in idx])
            for t in corruption_types for idx in [np.flatnonzero(kinds == f"corruption:{t}")[:n]]])
    return out


def _latent_figure(latents: dict, kde, y: np.ndarray, rng: np.random.Generator, title: str):
    """The test codes on the training codes' first two principal axes, over the KDE's density there."""
    plane = latent_plane(torch.from_numpy(latents["train"]))
    test_codes = torch.from_numpy(latents["test"])
    show = rng.permutation(len(test_codes))[:3000]
    pts = plane.project(test_codes[show]).numpy()
    grid = None
    if kde is not None:
        lo, hi = np.percentile(pts, 1, axis=0), np.percentile(pts, 99, axis=0)
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 60), np.linspace(lo[1], hi[1], 60))
        codes = plane.lift(torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1)))
        grid = (gx, gy, kde.log_density(codes.float()).numpy().reshape(gx.shape))
    return latent_map(pts, y[show], grid, plane.explained, title)


@reads("seed", "model", "data.dataset", "plots")
def plots(params: Params, prepared_dir: str | Path, model_path: str | Path, scores_dir: str | Path,
          threshold_path: str | Path, latents_path: str | Path, kde_path: str | Path, out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    val, test = read_scores(scores_dir, "val"), read_scores(scores_dir, "test")
    bundle = RunBundle.read(model_path, kde_path, threshold_path)
    thr = bundle.threshold
    y, y_val = test["y"].to_numpy(), val["y"].to_numpy()
    title = f"{params.model} on {params.data.dataset}"
    val_comps, test_comps = components(val), components(test)
    per = [(component_values(val_comps, b.component, "plots"), component_values(test_comps, b.component, "plots"))
           for b in thr.bounds]
    pictures = {"score_histogram.png": score_histogram(
        [v[y_val == 0] for v, _ in per], [t[y == 0] for _, t in per], [t[y == 1] for _, t in per], thr.bounds,
        thr.rule, title)}

    detector = bundle.detector
    x, meta = read_prepared(prepared_dir, "test")
    spec = DATASETS.get(params.data.dataset)
    labels = [_kind_label(k, spec.classes if spec else None) for k in test["kind"]]
    rng = np.random.default_rng(params.seed)
    pictures.update(_image_figures(params, detector, bundle.preprocessor, x, test, thr.ranking(test_comps), labels,
                                   rng, bundle.scoring.local, meta.get("mask")))
    latents = read_npz(latents_path) if detector.has_encoder else {}
    if "train" in latents:
        pictures["latent_space.png"] = _latent_figure(latents, bundle.kde, y, rng, title)
    for name, fig in pictures.items():
        save_figure(fig, out_dir / name, params.plots.dpi)
    log(f"plots: written to {out_dir}")

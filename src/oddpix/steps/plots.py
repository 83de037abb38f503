"""Plots stage: score histograms with the threshold, reconstructions, extremes, anomaly maps, corruptions,
latent map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..bundle import RunBundle
from ..config import Params, reads
from ..data.sources import DATASETS, class_name
from ..density import latent_plane
from ..figures import reconstruction_grid, save_figure
from ..fitted_threshold import component_values
from ..io import read_npz
from ..maps import LocalConfig
from ..metrics import auroc
from ..plots import anomaly_map_grid, failure_panels, image_strip, latent_map, score_histogram
from ..preprocess import Preprocessor
from ..scoring import anomaly_maps
from .common import components, log, read_prepared, read_scores


def _kind_label(kind: str, classes: tuple[str, ...] | None) -> str:
    """``class:7`` -> the class name (``Sneaker``), ``corruption:dot`` -> ``dot``, ``normal`` stays."""
    prefix, _, rest = kind.partition(":")
    if prefix == "class" and rest.isdigit():
        return class_name(int(rest), classes)
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


def normal_names(params: Params, classes: tuple[str, ...] | None) -> str:
    """The normal classes as a title names them: ``T-shirt/top``, ``0, 1``, ``Uninfected``, ``all``."""
    chosen = params.data.normal_classes
    if not isinstance(chosen, list):
        return str(chosen)
    return ", ".join(class_name(c, classes) for c in chosen)


def _image_figures(params, detector, prep: Preprocessor, x: torch.Tensor, test, ranking: np.ndarray,
                   flagged: np.ndarray, labels: list[str], rng: np.random.Generator, local: LocalConfig,
                   mask: np.ndarray | None, title: str) -> dict:
    """Reconstructions (detectors that reconstruct), the most and least anomalous images with the false
    alarms and the misses between them, their anomaly maps (detectors with maps; with the true masks where
    known), corruptions. A red frame: the threshold flags that image."""
    out = {}
    y, n = test["y"].to_numpy(), params.plots.n_images
    pick = np.concatenate([rng.permutation(np.flatnonzero(y == 0))[: (n + 1) // 2],
                           rng.permutation(np.flatnonzero(y == 1))[: n // 2]])
    recon = detector.reconstruct(x[pick])
    if recon is not None:
        out["reconstructions.png"] = reconstruction_grid(
            prep.inverse(x[pick]).numpy(), prep.inverse(recon).numpy(), ranking[pick],
            [_caption(bool(y[i]), labels[i]) for i in pick], flags=flagged[pick], title=title)
    sources = test["source"].astype(str).to_numpy()

    def caption(i: int) -> str:  # kind, score and decision, as the extremes and the anomaly maps show them
        return f"{labels[i] if y[i] else 'normal'}\n{ranking[i]:.3g} {'flagged' if flagged[i] else 'passed'}"
    panels = failure_panels(ranking, y, n)
    rows = [(name, prep.inverse(x[idx]).numpy(),
             [caption(i) + (f"\n{_short_source(sources[i])}" if sources[i] else "") for i in idx]) for name, idx in panels]
    flags = [[bool(flagged[i]) for i in idx] for _, idx in panels]
    out["extremes.png"] = image_strip(rows, title=f"{title}; red frame: flagged", flags=flags)
    if detector.has_maps:  # where the detector sees the anomaly: the extremes and the failures
        shown = np.concatenate([idx for _, idx in panels[:3]])
        # one batch of exactly these images (a full scoring batch would be mostly padding)
        every = anomaly_maps(detector, x[shown], batch_size=max(len(shown), 1), local=local).numpy()
        groups, start = [], 0
        for name, idx in panels[:3]:
            maps, start = every[start:start + len(idx)], start + len(idx)
            groups.append((name, prep.inverse(x[idx]).numpy(), maps, None if mask is None else mask[idx],
                           [caption(i) for i in idx]))
        out["anomaly_maps.png"] = anomaly_map_grid(groups, title=f"{title}; red frame: flagged", flags=flags[:3])
    kinds = test["kind"].to_numpy().astype(str)
    corruption_types = sorted({k.split(":", 1)[1] for k in kinds if k.startswith("corruption:")})
    if corruption_types:  # a gallery of each corruption type in the test split
        groups = [(t, np.flatnonzero(kinds == f"corruption:{t}")[:n]) for t in corruption_types]
        out["corruptions.png"] = image_strip(
            [(t, prep.inverse(x[idx]).numpy(), [caption(i) for i in idx]) for t, idx in groups],
            title=f"{title}; red frame: flagged", flags=[[bool(flagged[i]) for i in idx] for _, idx in groups])
    return out


LATENT_POINTS = 1000


def _latent_figure(latents: dict, kde, y: np.ndarray, rng: np.random.Generator, title: str):
    """The test codes on the training codes' first two principal axes, over the KDE's density there."""
    plane = latent_plane(torch.from_numpy(latents["train"]))
    test_codes = torch.from_numpy(latents["test"])
    # at most LATENT_POINTS of each kind: 9,000 anomalies would bury 1,000 normals
    show = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == k))[:LATENT_POINTS] for k in (0, 1)]))
    pts = plane.project(test_codes[show]).numpy()
    train = plane.project(torch.from_numpy(latents["train"][rng.permutation(len(latents["train"]))[:LATENT_POINTS]]))
    grid = None
    if kde is not None:
        lo, hi = np.percentile(pts, 1, axis=0), np.percentile(pts, 99, axis=0)
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 60), np.linspace(lo[1], hi[1], 60))
        codes = plane.lift(torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1)))
        grid = (gx, gy, kde.log_density(codes.float()).numpy().reshape(gx.shape))
    return latent_map(pts, y[show], grid, plane.explained, title, train=train.numpy(),
                      totals=(int((y == 0).sum()), int((y == 1).sum())), train_total=len(latents["train"]))


@reads("seed", "model", "data.dataset", "data.normal_classes", "plots")
def plots(params: Params, prepared_dir: str | Path, model_path: str | Path, scores_dir: str | Path,
          threshold_path: str | Path, latents_path: str | Path, kde_path: str | Path, out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    val, test = read_scores(scores_dir, "val"), read_scores(scores_dir, "test")
    bundle = RunBundle.read(model_path, kde_path, threshold_path)
    thr = bundle.threshold
    y, y_val = test["y"].to_numpy(), val["y"].to_numpy()
    spec = DATASETS.get(params.data.dataset)
    classes = spec.classes if spec else None
    title = f"{params.model} on {params.data.dataset} (normal: {normal_names(params, classes)})"
    val_comps, test_comps = components(val), components(test)
    ranking = thr.ranking(test_comps)
    scored = f"{title}: {thr.component}, AUROC {auroc(y, ranking):.3f}"
    per = [(component_values(val_comps, b.component, "plots"), component_values(test_comps, b.component, "plots"))
           for b in thr.bounds]
    pictures = {"score_histogram.png": score_histogram(
        [v[y_val == 0] for v, _ in per], [t[y == 0] for _, t in per], [t[y == 1] for _, t in per], thr.bounds,
        thr.rule, scored)}

    detector = bundle.detector
    x, meta = read_prepared(prepared_dir, "test")
    labels = [_kind_label(k, classes) for k in test["kind"]]
    rng = np.random.default_rng(params.seed)
    pictures.update(_image_figures(params, detector, bundle.preprocessor, x, test, ranking,
                                   thr.predict(test_comps).astype(bool), labels, rng, bundle.scoring.local,
                                   meta.get("mask"), scored))
    latents = read_npz(latents_path) if detector.has_encoder else {}
    if "train" in latents:
        pictures["latent_space.png"] = _latent_figure(latents, bundle.kde, y, rng, title)
    for name, fig in pictures.items():
        save_figure(fig, out_dir / name, params.plots.dpi)
    log(f"plots: written to {out_dir}")

"""One function per DVC stage: read the stage's inputs, call the library, write outputs atomically.

The click scripts in ``stages/`` only parse paths and call these; all logic lives in the modules named
for what they do (``data``, ``preprocess``, ``models``, ``density``, ``thresholds``, ``metrics``, ``plots``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import Params
from .data.protocols import SPLITS, Split, make_splits, summarize
from .data.sources import FolderImages, RawDataset, load_idx_dataset, load_image_folder
from .density import LatentKDE
from .errors import OddpixError
from .io import read_json, read_npz, read_torch, write_csv, write_figure, write_json, write_npz, write_torch
from .metrics import curves, evaluate as evaluate_scores, metric_key
from .models import FitData, build_detector, load_detector, save_detector
from .preprocess import Preprocessor
from .runtime import batched, resolve_device, seed_everything
from .thresholds import Threshold, fit_threshold
from .training import FitContext

META_COLUMNS = ("index", "y", "label", "kind")


def log(message: str) -> None:
    print(message, flush=True)


def needed_datasets(params: Params) -> list[str]:
    names = [params.data.dataset]
    if params.data.protocol == "cross_dataset":
        names.append(params.data.anomaly_dataset)
    return names


# -- download -------------------------------------------------------------------------------------

def download(params: Params, out_dir: str | Path, cache_dir: str | Path = "data/downloads") -> None:
    """Materialize every dataset the protocol needs as ``<name>.npz`` (and nothing else) in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = {f"{name}.npz" for name in needed_datasets(params)}
    for stale in out_dir.glob("*.npz"):
        if stale.name not in wanted:
            stale.unlink()
    for name in needed_datasets(params):
        if name == "folder":
            f = params.data.folder
            images = load_image_folder(f.root, f.image_size, f.channels, warn=log)
            write_npz(out_dir / "folder.npz", **images.arrays())
            counts = ", ".join(f"{c} {int((images.y == k).sum())}" for k, c in enumerate(images.classes))
            log(f"folder: {len(images.y)} images ({counts}) from {f.root} at {f.image_size}x{f.image_size}, "
                f"{len(images.skipped)} unreadable file(s) skipped")
            continue
        raw = load_idx_dataset(name, mirror=params.data.mirror, checksums=params.data.checksums,
                               download=params.data.download, cache_dir=cache_dir)
        write_npz(out_dir / f"{name}.npz", **raw.arrays())
        log(f"{name}: {len(raw.x_train)} train + {len(raw.x_test)} test images from {raw.source}")


def _read_raw(raw_dir: Path, name: str):
    path = raw_dir / f"{name}.npz"
    if not path.exists():
        raise OddpixError(f"{path} is missing; run the download stage (`dvc repro download`)")
    arrays = read_npz(path)
    if name == "folder":
        return FolderImages.from_arrays(arrays)
    return RawDataset(name, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], str(path))


# -- split ----------------------------------------------------------------------------------------

def split(params: Params, raw_dir: str | Path, out_dir: str | Path, summary_path: str | Path) -> None:
    data = {name: _read_raw(Path(raw_dir), name) for name in needed_datasets(params)}
    splits = make_splits(params.data, data, params.seed)
    for name, part in splits.items():
        write_npz(Path(out_dir) / f"{name}.npz", **part.arrays())
    summary = summarize(splits)
    if "folder" in data:
        summary["skipped_files"] = len(data["folder"].skipped)
    write_json(summary_path, summary)
    log("split: " + ", ".join(f"{n} {len(s)} ({int(s.y.sum())} anomalous)" for n, s in splits.items()))


def read_split(directory: str | Path, name: str) -> Split:
    path = Path(directory) / f"{name}.npz"
    if not path.exists():
        raise OddpixError(f"{path} is missing; run the stage that makes it (`dvc repro`)")
    return Split.from_arrays(read_npz(path))


# -- preprocess -----------------------------------------------------------------------------------

def preprocess(params: Params, split_dir: str | Path, out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    parts = {name: read_split(split_dir, name) for name in SPLITS}
    prep = Preprocessor.from_config(params.preprocess).fit(parts["train"].x[parts["train"].y == 0])
    for name, part in parts.items():
        x = prep.transform(part.x).numpy()
        write_npz(out_dir / f"{name}.npz", x=x, y=part.y, label=part.label, kind=part.kind)
    write_json(out_dir / "preprocess.json", prep.to_dict())
    log(f"preprocess: images -> float32 {tuple(x.shape[1:])}, normalize={prep.normalize}")


def read_prepared(directory: str | Path, name: str) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    arrays = read_split(directory, name).arrays()
    return torch.from_numpy(arrays.pop("x")), arrays


# -- train ----------------------------------------------------------------------------------------

def train(params: Params, prepared_dir: str | Path, model_path: str | Path, history_path: str | Path,
          metrics_path: str | Path, samples_dir: str | Path | None = None) -> None:
    generator = seed_everything(params.seed)
    device = resolve_device(params.device)
    train_x, train_meta = read_prepared(prepared_dir, "train")
    val_x, val_meta = read_prepared(prepared_dir, "val")
    detector = build_detector(params.model, params.model_config, tuple(train_x.shape[1:]))
    n_params = sum(p.numel() for p in detector.parameters())
    log(f"train: {params.model} ({n_params:,} parameters) on {len(train_x)} images, device {device}")
    if samples_dir is not None:  # sample grids of this run only (a DVC output: always there, maybe empty)
        samples_dir = Path(samples_dir)
        samples_dir.mkdir(parents=True, exist_ok=True)
        for old in samples_dir.glob("*.png"):
            old.unlink()
    start = time.perf_counter()
    history = detector.fit(FitData(train_x, val_x, torch.from_numpy(train_meta["y"]),
                                   torch.from_numpy(val_meta["y"])),
                           FitContext(device, generator, sample_dir=samples_dir))
    seconds = time.perf_counter() - start
    detector.cpu()
    save_detector(detector, model_path, preprocess=read_json(Path(prepared_dir) / "preprocess.json"),
                  seed=params.seed)
    frame = pd.DataFrame(history).drop(columns=["seconds"], errors="ignore")
    write_csv(history_path, frame)
    final = [r for r in history if r.get("phase") == history[-1].get("phase")]  # e.g. after pretraining
    best = min(final, key=lambda r: r.get("val_loss", r.get("loss", 0.0)))
    write_json(metrics_path, {"epochs_run": len(history), "best_epoch": int(best["epoch"]),
                              **{f"final_{k}": float(v) for k, v in history[-1].items()
                                 if k not in ("epoch", "seconds", "phase")},
                              "best_val_loss": float(best.get("val_loss", float("nan"))),
                              "n_parameters": int(n_params), **detector.fit_report})
    log(f"train: done in {seconds:.1f}s, best epoch {best['epoch']}")


# -- encode (latents + KDE) -----------------------------------------------------------------------

def encode(params: Params, prepared_dir: str | Path, model_path: str | Path, latents_path: str | Path,
           kde_path: str | Path) -> None:
    generator = seed_everything(params.seed)
    device = resolve_device(params.device)
    detector, _ = load_detector(model_path)
    if not detector.has_encoder:
        write_npz(latents_path)
        write_torch(kde_path, {"fitted": False, "reason": f"{detector.name} has no encoder"})
        log(f"encode: {detector.name} has no encoder; no latent codes or KDE")
        return
    detector.to(device)
    codes = {}
    normal_val = None
    for name in SPLITS:
        x, meta = read_prepared(prepared_dir, name)
        codes[name] = batched(detector.encode, x, params.score.batch_size, device)
        if name == "val":
            normal_val = codes[name][torch.from_numpy(meta["y"] == 0)]
    write_npz(latents_path, **{k: v.numpy() for k, v in codes.items()})
    if not params.kde.enabled:
        write_torch(kde_path, {"fitted": False, "reason": "kde.enabled is false"})
        log(f"encode: {codes['train'].shape[1]}-d latent codes written; KDE disabled")
        return
    kde = LatentKDE.fit(codes["train"], params.kde.bandwidth, normal_val, params.kde.max_train, generator)
    write_torch(kde_path, {"fitted": True, **kde.state()})
    log(f"encode: {codes['train'].shape[1]}-d codes, KDE on {len(kde.data)} train codes, "
        f"bandwidth {kde.bandwidth:.4g} ({kde.rule})")


def load_kde(kde_path: str | Path) -> LatentKDE | None:
    state = read_torch(kde_path)
    if not state.pop("fitted", False):
        return None
    return LatentKDE.from_state(state)


# -- score ----------------------------------------------------------------------------------------

def score(params: Params, prepared_dir: str | Path, model_path: str | Path, latents_path: str | Path,
          kde_path: str | Path, out_dir: str | Path) -> None:
    seed_everything(params.seed)
    device = resolve_device(params.device)
    detector, _ = load_detector(model_path)
    detector.to(device)
    kde = load_kde(kde_path)
    latents = read_npz(latents_path) if kde is not None else {}
    for name in ("val", "test"):
        x, meta = read_prepared(prepared_dir, name)
        comps = batched(detector.score, x, params.score.batch_size, device)
        if kde is not None:
            comps["density"] = -kde.log_density(torch.from_numpy(latents[name]))
        frame = pd.DataFrame({"index": np.arange(len(x)), "y": meta["y"], "label": meta["label"],
                              "kind": meta["kind"], **{k: v.double().numpy() for k, v in comps.items()}})
        write_csv(Path(out_dir) / f"{name}.csv", frame)
        log(f"score: {name}: {len(frame)} images, components {', '.join(comps)}")


def read_scores(directory: str | Path, name: str) -> pd.DataFrame:
    path = Path(directory) / f"{name}.csv"
    if not path.exists():
        raise OddpixError(f"{path} is missing; run the score stage (`dvc repro score`)")
    return pd.read_csv(path, keep_default_na=False)


def _components(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: frame[c].to_numpy(dtype=np.float64) for c in frame.columns if c not in META_COLUMNS}


def _component(frame: pd.DataFrame, component: str, path: str) -> np.ndarray:
    if component not in frame.columns:
        comps = [c for c in frame.columns if c not in META_COLUMNS]
        raise OddpixError(f"score.component: {component!r} is not in {path}; valid choices: {', '.join(comps)}")
    return frame[component].to_numpy(dtype=np.float64)


# -- threshold ------------------------------------------------------------------------------------

def threshold(params: Params, scores_dir: str | Path, out_path: str | Path) -> None:
    val = read_scores(scores_dir, "val")
    _component(val, params.score.component, f"{scores_dir}/val.csv")  # a readable error if it is missing
    thr = fit_threshold(params.threshold, _components(val), params.score.component, val["y"].to_numpy())
    write_json(out_path, thr.to_dict())
    rules = [f"{b.component} > {b.high:.5g}" + (f" or < {b.low:.5g}" if b.low is not None else "")
             for b in thr.bounds]
    log(f"threshold: {thr.rule}: anomalous when " + " or ".join(rules))


# -- evaluate -------------------------------------------------------------------------------------

def evaluate(params: Params, scores_dir: str | Path, threshold_path: str | Path, metrics_path: str | Path,
             curves_dir: str | Path) -> dict:
    test = read_scores(scores_dir, "test")
    thr = Threshold.from_dict(read_json(threshold_path))
    comps = _components(test)
    for name in thr.components:
        _component(test, name, f"{scores_dir}/test.csv")
    s = thr.ranking(comps)
    y = test["y"].to_numpy()
    predicted = thr.predict(comps)
    result = evaluate_scores(y, s, predicted, test["kind"].to_numpy(), comps)
    bounds = {}
    if len(thr.bounds) > 1:
        for b in thr.bounds:
            bounds[f"threshold_{metric_key(b.component)}"] = b.high
    metrics = {"model": params.model, "component": thr.component, "threshold_rule": thr.rule,
               "threshold": thr.high, **({"threshold_low": thr.low} if thr.low is not None else {}), **bounds,
               **result}
    write_json(metrics_path, metrics)
    roc, pr = curves(y, s)
    write_csv(Path(curves_dir) / "roc.csv", roc)
    write_csv(Path(curves_dir) / "pr.csv", pr)
    names = np.array(["normal", "anomaly"])
    write_csv(Path(curves_dir) / "confusion.csv", pd.DataFrame({"actual": names[y], "predicted": names[predicted]}))
    log(f"evaluate: AUROC {result['auroc']:.4f}  AUPRC {result['auprc']:.4f}  accuracy {result['accuracy']:.4f}  "
        f"F1 {result['f1']:.4f}  ({thr.rule} threshold {thr.high:.5g})")
    return metrics


# -- plots ----------------------------------------------------------------------------------------

def _kind_label(kind: str, classes: tuple[str, ...] | None) -> str:
    """``class:7`` -> the class name (``Sneaker``), ``corruption:dot`` -> ``dot``, ``normal`` stays."""
    prefix, _, rest = kind.partition(":")
    if prefix == "class" and classes and rest.isdigit() and int(rest) < len(classes):
        return classes[int(rest)]
    return rest or kind


def plots(params: Params, prepared_dir: str | Path, model_path: str | Path, scores_dir: str | Path,
          threshold_path: str | Path, latents_path: str | Path, kde_path: str | Path, out_dir: str | Path) -> None:
    from . import plots as figures
    from .data.sources import DATASETS

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dpi = params.plots.dpi

    def save(name: str, fig) -> None:
        write_figure(out_dir / name, fig, dpi)
        figures.plt.close(fig)

    val, test = read_scores(scores_dir, "val"), read_scores(scores_dir, "test")
    thr = Threshold.from_dict(read_json(threshold_path))
    y, y_val = test["y"].to_numpy(), val["y"].to_numpy()
    title = f"{params.model} on {params.data.dataset}"
    per = [(_component(val, b.component, "val.csv"), _component(test, b.component, "test.csv")) for b in thr.bounds]
    save("score_histogram.png", figures.score_histogram(
        [v[y_val == 0] for v, _ in per], [t[y == 0] for _, t in per], [t[y == 1] for _, t in per], thr.bounds,
        thr.rule, title))

    detector, extra = load_detector(model_path)
    prep = Preprocessor.from_dict(extra["preprocess"])
    x, _ = read_prepared(prepared_dir, "test")
    ranking = thr.ranking(_components(test))
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

"""Train stage: fit the chosen detector, save it with its preprocessing, history and training metrics."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import torch

from ..config import Params, reads
from ..io import read_json, write_csv, write_json, write_text
from ..models import FitData, build_detector, save_detector
from ..runtime import resolve_device, seed_everything
from ..training import FitContext
from .common import log, read_prepared


@reads("seed", "device", "model", "models.${model}")
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
        for old in [*samples_dir.glob("*.png"), samples_dir / "README.txt"]:
            old.unlink(missing_ok=True)
    start = time.perf_counter()
    history = detector.fit(FitData(train_x, val_x, torch.from_numpy(train_meta["y"]),
                                   torch.from_numpy(val_meta["y"])),
                           FitContext(device, generator, sample_dir=samples_dir))
    seconds = time.perf_counter() - start
    if samples_dir is not None and not any(samples_dir.glob("*.png")):  # DVC would warn of an empty output
        write_text(samples_dir / "README.txt", f"{params.model} draws no samples while training; the GAN "
                   "detectors (ganomaly, gan_mse) put their sample grids here.\n")
    detector.cpu()
    save_detector(detector, model_path, preprocess=read_json(Path(prepared_dir) / "preprocess.json"),
                  seed=params.seed)
    frame = pd.DataFrame(history, columns=None if history else ["epoch", "loss", "val_loss"])
    write_csv(history_path, frame.drop(columns=["seconds"], errors="ignore"))
    epochs = _epoch_metrics(history) if history else {}  # a detector that only remembers has no epochs
    write_json(metrics_path, {**epochs, "n_parameters": int(n_params), **detector.fit_report})
    log(f"train: done in {seconds:.1f}s" + (f", best epoch {epochs['best_epoch']}" if history else ""))


def _epoch_metrics(history: list[dict]) -> dict:
    final = [r for r in history if r.get("phase") == history[-1].get("phase")]  # e.g. after pretraining
    best = min(final, key=lambda r: r.get("val_loss", r.get("loss", 0.0)))
    return {"epochs_run": len(history), "best_epoch": int(best["epoch"]),
            **{f"final_{k}": float(v) for k, v in history[-1].items() if k not in ("epoch", "seconds", "phase")},
            "best_val_loss": float(best.get("val_loss", float("nan")))}

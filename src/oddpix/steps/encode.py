"""Encode stage: latent codes of every split, and the Gaussian KDE fitted on the training codes."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import Params, reads
from ..data.splits import SPLITS
from ..bundle_files import model_id, write_kde
from ..density import LatentKDE
from ..io import write_npz
from ..models import load_detector
from ..runtime import batched, resolve_device, seed_everything
from ..scoring import full_batches
from .common import log, read_prepared, require_finite


@reads("seed", "device", "kde", "score.batch_size")
def encode(params: Params, prepared_dir: str | Path, model_path: str | Path, latents_path: str | Path,
           kde_path: str | Path) -> None:
    generator = seed_everything(params.seed)
    device = resolve_device(params.device)
    detector, _ = load_detector(model_path)
    model = model_id(model_path)
    if not detector.has_encoder:
        write_npz(latents_path)
        write_kde(kde_path, None, model, f"{detector.name} has no encoder")
        log(f"encode: {detector.name} has no encoder; no latent codes or KDE")
        return
    detector.to(device)
    codes = {}
    normal_val = None
    for name in SPLITS:
        x, meta = read_prepared(prepared_dir, name)
        size = params.score.batch_size
        codes[name] = batched(full_batches(detector.encode, size), x, size, device)
        require_finite(codes[name], f"encode: the latent codes of {name}", f"the model {model_path} is broken (did "
                       "its training diverge?); retrain it, e.g. with a lower learning rate")
        if name == "val":
            normal_val = codes[name][torch.from_numpy(meta["y"] == 0)]
    write_npz(latents_path, **{k: v.numpy() for k, v in codes.items()})
    if not params.kde.enabled:
        write_kde(kde_path, None, model, "kde.enabled is false")
        log(f"encode: {codes['train'].shape[1]}-d latent codes written; KDE disabled")
        return
    kde = LatentKDE.fit(codes["train"], params.kde.bandwidth, normal_val, params.kde.max_train, generator)
    write_kde(kde_path, kde, model)
    log(f"encode: {codes['train'].shape[1]}-d codes, KDE on {len(kde.data)} train codes, "
        f"bandwidth {kde.bandwidth:.4g} ({kde.rule})")

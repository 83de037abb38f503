"""Score stage: every score component of the validation and test images (plus ``density`` from the KDE)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import Params, reads
from ..bundle import RunBundle, ScoringSettings
from ..bundle_files import write_run
from ..io import read_npz, write_csv, write_npz
from ..runtime import resolve_device, seed_everything
from .common import log, read_prepared, require_finite


@reads("seed", "device", "score.batch_size", "score.local")
def score(params: Params, prepared_dir: str | Path, model_path: str | Path, latents_path: str | Path,
          kde_path: str | Path, out_dir: str | Path) -> None:
    seed_everything(params.seed)
    device = resolve_device(params.device)
    bundle = RunBundle.read(model_path, kde_path, scoring=ScoringSettings(params.score.batch_size, params.score.local))
    detector, kde = bundle.detector.to(device), bundle.kde
    latents = read_npz(latents_path) if kde is not None else {}
    for name in ("val", "test"):
        x, meta = read_prepared(prepared_dir, name)
        codes = torch.from_numpy(latents[name]) if kde is not None else None
        keep = name == "test" and "mask" in meta and detector.has_maps  # the truth per pixel: keep the maps
        comps, maps = bundle.components(x, keep_maps=keep, device=device, codes=codes)
        for key, values in comps.items():
            require_finite(values, f"score: {name}: component {key}", f"the model {model_path} gives no usable "
                           "scores (did its training diverge?); retrain it, e.g. with a lower learning rate")
        frame = pd.DataFrame({"index": np.arange(len(x)), "source": meta["source"], "y": meta["y"],
                              "label": meta["label"], "kind": meta["kind"],
                              **{k: v.double().numpy() for k, v in comps.items()}})
        write_csv(Path(out_dir) / f"{name}.csv", frame)
        log(f"score: {name}: {len(frame)} images, components {', '.join(comps)}")
        if keep:
            write_npz(Path(out_dir) / "maps.npz", map=maps.numpy().astype(np.float16), mask=meta["mask"])
            log(f"score: test: anomaly maps {tuple(maps.shape[1:])} with the true masks in maps.npz")
    write_run(out_dir, bundle.model_id, bundle.scoring.to_dict())

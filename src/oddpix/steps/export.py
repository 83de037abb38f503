"""Export stage: the trained run (detector, KDE, threshold) as a bundle that scores without PyTorch."""

from __future__ import annotations

from pathlib import Path

from ..bundle import RunBundle
from ..config import Params, reads
from ..export import export as write_bundle
from ..schema import to_dict
from ..served import read_manifest
from ..provenance import code_version
from .common import log


@reads("seed", "data", "model", "models.${model}")
def export(params: Params, model_path: str | Path, kde_path: str | Path, threshold_path: str | Path,
           out_dir: str | Path) -> None:
    bundle = RunBundle.read(model_path, kde_path, threshold_path)
    came_from = {"seed": params.seed, "data": to_dict(params.data), "model": params.model,
                 "models": {params.model: to_dict(params.model_config)}}  # preprocessing, scoring, threshold: their own keys
    write_bundle(bundle, out_dir, params=came_from, code_version=code_version())
    manifest = read_manifest(out_dir)
    worst = max(manifest["check"]["relative_differences"].values())
    log(f"export: {out_dir} ({manifest['detector']}, {len(manifest['components'])} components"
        f"{', a map' if manifest['map'] else ''}); largest relative difference to PyTorch {worst:.2g}")

"""Threshold stage: the decision rule, fitted on the validation scores only."""

from __future__ import annotations

from pathlib import Path

from ..config import Params, reads
from ..bundle_files import read_run, write_threshold
from ..thresholds import fit_threshold
from .common import components, log, read_scores


@reads("score.component", "threshold")
def threshold(params: Params, scores_dir: str | Path, out_path: str | Path) -> None:
    val = read_scores(scores_dir, "val")
    comps = components(val, f"{scores_dir}/val.csv")
    thr = fit_threshold(params.threshold, comps, params.score.component, val["y"].to_numpy())
    normal = val["y"].to_numpy() == 0
    thr.calibrate({k: v[normal] for k, v in comps.items()})  # predict's p-values
    write_threshold(out_path, thr, read_run(scores_dir))  # with the model and scoring settings of the scores
    log(f"threshold: {thr.rule}: anomalous when {thr.describe()}")

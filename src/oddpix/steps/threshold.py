"""Threshold stage: the decision rule, fitted on the validation scores only."""

from __future__ import annotations

from pathlib import Path

from ..config import Params, reads
from ..io import write_json
from ..schema import to_dict
from ..thresholds import fit_threshold
from .common import components, log, read_scores


@reads("score.component", "score.batch_size", "score.local", "threshold")
def threshold(params: Params, scores_dir: str | Path, out_path: str | Path) -> None:
    val = read_scores(scores_dir, "val")
    comps = components(val, f"{scores_dir}/val.csv")
    thr = fit_threshold(params.threshold, comps, params.score.component, val["y"].to_numpy())
    normal = val["y"].to_numpy() == 0
    thr.calibrate({k: v[normal] for k, v in comps.items()})  # predict's p-values
    # what predict must reapply: the local scores' settings, and the batch size (scores do not depend on
    # the other images of a batch, but on its size, in the last digits)
    thr.scoring = {"local": to_dict(params.score.local), "batch_size": params.score.batch_size}
    write_json(out_path, thr.to_dict())
    log(f"threshold: {thr.rule}: anomalous when {thr.describe()}")

"""Evaluate stage: AUROC, AUPRC, accuracy, F1, per-kind results, ROC / PR curves, the confusion table, and the
decision on every test image (its source, score, calibrated p-value and whether it is flagged)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Params, reads
from ..io import read_json, read_npz, write_csv, write_json
from ..metrics import curves, evaluate as evaluate_scores, metric_key, pixel_metrics
from ..fitted_threshold import Threshold
from .common import components, log, read_scores


@reads("model")
def evaluate(params: Params, scores_dir: str | Path, threshold_path: str | Path, metrics_path: str | Path,
             curves_dir: str | Path, predictions_path: str | Path) -> dict:
    test = read_scores(scores_dir, "test")
    thr = Threshold.from_dict(read_json(threshold_path))
    comps = components(test, f"{scores_dir}/test.csv")
    s = thr.ranking(comps)
    y = test["y"].to_numpy()
    predicted = thr.predict(comps)
    result = evaluate_scores(y, s, predicted, test["kind"].to_numpy(), comps)
    val = read_scores(scores_dir, "val")  # the rule was fitted there: its false alarms on the normals it saw
    val_normal = val["y"].to_numpy() == 0
    result["false_alarm_rate"] = float(result["fp"] / max(result["fp"] + result["tn"], 1))
    result["false_alarm_rate_val"] = float(thr.predict(components(val, f"{scores_dir}/val.csv"))[val_normal].mean())
    target = thr.false_alarm_target()
    if target is not None:  # what the rule promises, next to what it gave
        result["false_alarm_target"] = target
    maps_path = Path(scores_dir) / "maps.npz"
    if maps_path.exists():  # the truth is known per pixel (corrupted protocol): how well the maps localise
        maps = read_npz(maps_path)
        result.update(pixel_metrics(maps["map"], maps["mask"], y, test["kind"].to_numpy()))
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
    write_csv(predictions_path, pd.DataFrame({
        "index": test["index"], "source": test["source"], "y": y,
        "kind": test["kind"], "score": s, "p_value": thr.p_value(comps) if thr.calibration else np.nan,
        "anomaly": predicted}))
    names = np.array(["normal", "anomaly"])
    write_csv(Path(curves_dir) / "confusion.csv", pd.DataFrame({"actual": names[y], "predicted": names[predicted]}))
    log(f"evaluate: AUROC {result['auroc']:.4f}  AUPRC {result['auprc']:.4f}  accuracy {result['accuracy']:.4f}  "
        f"F1 {result['f1']:.4f}  ({thr.rule}: {thr.describe()}; false alarms on test normals "
        f"{result['false_alarm_rate']:.1%}" + (f" (the rule aims at {target:.2%})" if target is not None else "")
        + f", on the validation normals it was fitted on {result['false_alarm_rate_val']:.1%}; "
        f"anomalies detected {result['recall']:.1%})"
        + (f"; pixel AUROC {result['pixel_auroc']:.4f}  PRO {result['pro']:.4f}" if "pixel_auroc" in result else ""))
    return metrics

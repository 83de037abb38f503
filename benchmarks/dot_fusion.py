"""Would fusing two local detectors find the dot better? patch_knn (patch_max) and ae (local_topk) on the
corrupted protocol with only `dot` corruptions (every class normal), the same split (same seed); each score
standardised on its run's validation normals, then averaged (and maxed). Prints image AUROCs.

    python benchmarks/dot_fusion.py --dataset fashion_mnist

Runs the pipeline's stage functions in-process (as benchmarks/accuracy.py); scratch runs are kept under
--work so a second call only recomputes the fusion.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import roc_auc_score

from oddpix.sweep import run_stages, set_key

MEMBERS = (("patch_knn", "patch_max", {}), ("ae", "local_topk", {"score.component": "local_topk"}))


@click.command()
@click.option("--dataset", default="fashion_mnist", show_default=True)
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--work", default="/tmp/oddpix-dot-fusion", show_default=True)
def main(dataset, params_file, work):
    z, y, sources = {}, None, None
    for model, component, extra in MEMBERS:
        raw = yaml.safe_load(Path(params_file).read_text())
        for key, value in {"model": model, "data.dataset": dataset, "data.protocol": "corrupted",
                           "data.normal_classes": "all", "data.corruption.types": ["dot"], **extra}.items():
            set_key(raw, key, value)
        root = Path(work) / dataset / model
        if not (root / "scores/test.csv").exists():
            run_stages(raw, root)
        val, test = pd.read_csv(root / "scores/val.csv"), pd.read_csv(root / "scores/test.csv")
        normal = val.loc[val.y == 0, component]
        z[model] = ((test[component] - normal.mean()) / normal.std()).to_numpy()
        if sources is not None and test["source"].tolist() != sources:
            raise SystemExit("the two runs scored different test images")
        y, sources = test["y"].to_numpy(), test["source"].tolist()
    a, b = z["patch_knn"], z["ae"]
    for name, s in (("patch_knn patch_max", a), ("ae local_topk", b), ("mean of the z-scores", (a + b) / 2),
                    ("max of the z-scores", np.maximum(a, b))):
        click.echo(f"{dataset} dot: {name}: image AUROC {roc_auc_score(y, s):.4f}")


if __name__ == "__main__":
    main()

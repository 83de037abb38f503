"""Would fusing two local detectors find the anomalies better? Two runs of one local set-up
(benchmarks/local.py's set-ups) on the same split (same seed); each member's score standardised on its
run's validation normals, then averaged (and maxed). Prints image AUROCs, overall and per anomaly kind.

* ``dot``: patch_knn (patch_max) and ae (local_topk) on the corrupted protocol, only `dot` corruptions;
* ``tiles``: the magnetic tiles, both after local contrast normalisation: patch_knn with 30 nearest images
  (patch_max) and ssl (fused) - the pits the one finds, the cracks and uneven grinding the other;
* ``tiles_seg``: the same patch_knn and synth_seg (seg_max), both after local contrast normalisation.

    python benchmarks/fusion.py --setup dot --dataset fashion_mnist
    python benchmarks/fusion.py --setup tiles --seed 43
    python benchmarks/fusion.py --setup tiles_seg --seed 43

Runs the pipeline's stage functions in-process (as benchmarks/accuracy.py); scratch runs are kept under
--work so a second call only recomputes the fusion.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local import configure  # noqa: E402

from oddpix.sweep import run_stages, set_key  # noqa: E402

TILES_PATCH_KNN = ("patch_knn", "patch_max", {"preprocess.normalize": "local", "models.patch_knn.gallery": 30})
# fusion set-up -> (the benchmarks/local.py set-up its runs are, its two members: model, component, params)
MEMBERS = {
    "dot": ("dot", (("patch_knn", "patch_max", {}), ("ae", "local_topk", {"score.component": "local_topk"}))),
    "tiles": ("tiles", (TILES_PATCH_KNN, ("ssl", "fused", {"preprocess.normalize": "local"}))),
    "tiles_seg": ("tiles", (TILES_PATCH_KNN, ("synth_seg", "seg_max", {"preprocess.normalize": "local"}))),
}


@click.command()
@click.option("--setup", type=click.Choice(sorted(MEMBERS)), default="dot", show_default=True)
@click.option("--dataset", default="fashion_mnist", show_default=True, help="dot: the dataset")
@click.option("--size", default=64, show_default=True, help="tiles: image size")
@click.option("--root", default=None, help="tiles: the magnetic-tiles folder (default: $ODDPIX_DATA_MIRROR/magnetic-tiles)")
@click.option("--seed", default=None, type=int, help="the split and training seed (default: params.yaml's)")
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--work", default="/tmp/oddpix-fusion", show_default=True)
def main(setup, dataset, size, root, seed, params_file, work):
    z, y, test = {}, None, None
    base, members = MEMBERS[setup]
    for model, component, extra in members:
        raw = yaml.safe_load(Path(params_file).read_text())
        set_key(raw, "model", model)
        run = Path(work) / base / dataset / f"seed{seed}" / model  # a member's runs are shared by the set-ups
        name = configure(raw, base, dataset, size, root, run.parent)
        for key, value in {**extra, **({"seed": seed} if seed is not None else {})}.items():
            set_key(raw, key, value)
        if not (run / "scores/test.csv").exists():
            run_stages(raw, run)
        val, scores = pd.read_csv(run / "scores/val.csv"), pd.read_csv(run / "scores/test.csv")
        normal = val.loc[val.y == 0, component]
        z[model] = ((scores[component] - normal.mean()) / normal.std()).to_numpy()
        if test is not None and scores["source"].tolist() != test["source"].tolist():
            raise SystemExit("the two runs scored different test images")
        y, test = scores["y"].to_numpy(), scores
    (a_name, a_comp, _), (b_name, b_comp, _) = members
    a, b = z[a_name], z[b_name]
    kinds = sorted(k for k in test["kind"].unique() if k != "normal")
    pick = {k: test.kind.isin([k, "normal"]).to_numpy() for k in kinds}  # one kind against the normals
    for label, s in ((f"{a_name} {a_comp}", a), (f"{b_name} {b_comp}", b), ("mean of the z-scores", (a + b) / 2),
                     ("max of the z-scores", np.maximum(a, b))):
        per = ", ".join(f"{k.split(':')[-1]} {roc_auc_score(y[pick[k]], s[pick[k]]):.3f}" for k in kinds) \
            if len(kinds) > 1 else ""
        click.echo(f"{name} {setup} seed {seed}: {label}: image AUROC {roc_auc_score(y, s):.4f}"
                   + (f" ({per})" if per else ""))


if __name__ == "__main__":
    main()

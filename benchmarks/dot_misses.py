"""Which dots does a detector miss? Splits the anomalies of a scored `dot` run (corrupted protocol, only dot
corruptions) by what the dot did to the image, and gives the image AUROC of each kind against all normals:

* ``white, free``: a white dot on the background, no stroke within 2 px;
* ``white, touching``: a white dot within 2 px of a stroke (it thickens the stroke or adds a blob to it);
* ``black``: a black dot inside a stroke or a bright garment (a hole).

The run is any workspace the pipeline scored with the dot corruption alone, e.g. a `dvc exp run` in this
repository (its `data/prepared/` and `data/scores/` with `maps.npz`, the true masks)::

    dvc exp run -S data.dataset=mnist -S data.protocol=corrupted -S data.normal_classes=all \
      -S 'data.corruption.types=[dot]' -S model=patch_knn
    python benchmarks/dot_misses.py . --component patch_max
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from oddpix.steps.common import read_prepared


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--component", default="patch_max", show_default=True)
def main(run, component):
    run = Path(run)
    x, _ = read_prepared(run / "data/prepared", "test")
    masks = np.load(run / "data/scores/maps.npz")["mask"].astype(bool)
    scores = pd.read_csv(run / "data/scores/test.csv")
    y, s = scores["y"].to_numpy(), scores[component].to_numpy()
    img = x.numpy().max(1)  # the brightest channel
    bright = img > 0.5 * (img.min() + img.max())
    anomalies = np.flatnonzero(y == 1)
    white = np.array([bright[i][masks[i]].mean() > 0.5 for i in anomalies])
    ring = np.stack([ndimage.binary_dilation(masks[i], iterations=2) & ~masks[i] for i in anomalies])
    touching = (ring & bright[anomalies]).any(axis=(1, 2))
    normal = s[y == 0]
    for name, pick in (("white, free", white & ~touching), ("white, touching", white & touching), ("black", ~white)):
        if pick.any():
            auroc = roc_auc_score(np.r_[np.zeros(len(normal)), np.ones(pick.sum())], np.r_[normal, s[anomalies][pick]])
            click.echo(f"{name}: {pick.sum()} of {len(anomalies)} dots, image AUROC {auroc:.4f}")
    click.echo(f"all: image AUROC {roc_auc_score(y, s):.4f}")


if __name__ == "__main__":
    main()

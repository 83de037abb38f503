"""The plots stage's figures show where a detector fails, and say what they show."""

from pathlib import Path

import numpy as np

from oddpix import pipeline
from oddpix.plots import failure_panels
from oddpix.steps import plots as plots_step
from tests.conftest import trained_params


def test_failure_panels_pick_the_highest_normals_and_the_lowest_anomalies():
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    ranking = np.array([0.1, 0.9, 0.2, 0.8, 0.05, 0.7, 0.3, 0.95])
    rows = dict(failure_panels(ranking, y, 2))
    assert list(rows["most anomalous"]) == [7, 1]
    assert list(rows["highest normals\n(false alarms)"]) == [1, 6]
    assert list(rows["lowest anomalies\n(misses)"]) == [4, 5]
    assert list(rows["least anomalous"]) == [4, 0]


def test_extremes_show_the_false_alarms_and_the_misses_with_their_decisions(trained, monkeypatch, tmp_path):
    root, metrics = trained
    assert metrics["fp"] > 0 and metrics["fn"] > 0  # this generated task has both kinds of failure
    figures = {}
    monkeypatch.setattr(plots_step, "save_figure", lambda fig, path, dpi=100: figures.__setitem__(Path(path).name, fig))
    params = trained_params(root)
    paths = pipeline.STAGE["plots"].paths(root)
    plots_step.plots(params, **{**paths, "out_dir": tmp_path})
    n = params.plots.n_images

    extremes = figures["extremes.png"]
    rows = [[ax.get_title() for ax in extremes.axes[r * n:(r + 1) * n]] for r in range(4)]
    names = [extremes.axes[r * n].get_ylabel() for r in range(4)]
    assert names == ["most anomalous", "highest normals\n(false alarms)", "lowest anomalies\n(misses)", "least anomalous"]
    false_alarms = [t for t in rows[1] if t.startswith("normal\n") and " flagged" in t]
    misses = [t for t in rows[2] if not t.startswith("normal\n") and " passed" in t]
    assert len(false_alarms) == min(metrics["fp"], n) and len(misses) == min(metrics["fn"], n), rows
    assert all(t.startswith("normal\n") for t in rows[1]) and not any(t.startswith("normal\n") for t in rows[2])
    red = [any(s.get_visible() for s in ax.spines.values()) for ax in extremes.axes[n:2 * n]]
    assert red == [" flagged" in t for t in rows[1]]  # a red frame exactly where the threshold flags
    title = extremes._suptitle.get_text()
    assert title.startswith("cae on fashion_mnist (normal: T-shirt/top): reconstruction, AUROC ")
    assert f"AUROC {metrics['auroc']:.3f}" in title

    recon = figures["reconstructions.png"]
    decided = [ax.get_title().rsplit("\n", 1)[-1] for ax in recon.axes[:n]]
    assert set(decided) <= {"flagged", "not flagged"} and "flagged" in decided

    maps = figures["anomaly_maps.png"]
    assert any(ax.get_label() == "<colorbar>" for ax in maps.axes)  # one colour scale, with its bar
    assert [maps.axes[r * n].get_ylabel().split("\n")[0] for r in (0, 2, 4)] == [
        "most anomalous", "highest normals", "lowest anomalies"]

    legend = [t.get_text() for t in figures["latent_space.png"].axes[0].get_legend().get_texts()]
    assert legend[0].startswith("training (n=") and "test anomaly (n=270)" in legend


def test_latent_space_draws_at_most_as_many_anomalies_as_normals_and_says_so(trained, monkeypatch, tmp_path):
    monkeypatch.setattr(plots_step, "LATENT_POINTS", 20)
    root, _ = trained
    latents = dict(np.load(root / pipeline.LAYOUT["latents"]))
    import pandas as pd

    y = pd.read_csv(root / pipeline.LAYOUT["scores"] / "test.csv")["y"].to_numpy()
    fig = plots_step._latent_figure(latents, None, y, np.random.default_rng(0), "t")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["training (20 of 90)", "test anomaly (20 of 270)", "test normal (20 of 30)"]

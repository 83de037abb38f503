"""The stage functions chained in-process on generated data (fast), and the stage scripts' error output."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from oddpix import pipeline
from oddpix.io import read_json, read_npz
from tests.conftest import TRAINED_SCORE, run_pipeline

ROOT = Path(__file__).resolve().parents[1]


def test_pipeline_functions_end_to_end_and_deterministic(tmp_path, mirror, tiny_params, trained):
    params = tiny_params(data={"mirror": str(mirror), "checksums": "mirror", "download": False},
                         score=TRAINED_SCORE)
    first = run_pipeline(params, tmp_path / "a")
    assert first == trained[1]  # same params and seed: identical metrics
    assert first["auroc"] > 0.9 and first["model"] == "cae" and first["component"] == "reconstruction"
    assert first["n_test"] == 300 and first["tp"] + first["fn"] == 270
    assert read_json(tmp_path / "a/metrics/metrics.json") == first
    scores = pd.read_csv(tmp_path / "a/data/scores/test.csv", keep_default_na=False)
    assert list(scores.columns[:5]) == ["index", "source", "y", "label", "kind"]
    # every scored image is traced to its place in the dataset (here the test split, in order)
    assert list(scores["source"]) == [f"fashion_mnist:test:{i}" for i in range(300)]
    # the decision per image: its score, calibrated p-value (share of validation normals at least as high)
    predictions = pd.read_csv(tmp_path / "a/data/predictions.csv", keep_default_na=False)
    assert list(predictions.columns) == ["index", "source", "y", "kind", "score", "p_value", "anomaly"]
    assert predictions["anomaly"].sum() == first["tp"] + first["fp"]
    val_normal = pd.read_csv(tmp_path / "a/data/scores/val.csv").query("y == 0")["reconstruction"].to_numpy()
    expected = [(1 + (val_normal >= s).sum()) / (1 + len(val_normal)) for s in predictions["score"]]
    np.testing.assert_allclose(predictions["p_value"], expected)
    assert predictions.query("y == 1")["p_value"].mean() < 0.2 < predictions.query("y == 0")["p_value"].mean()
    assert {"reconstruction", "bce", "mse", "density"} <= set(scores.columns)
    assert first["auroc_density"] > 0.8
    history = pd.read_csv(tmp_path / "a/plots/train/history.csv")
    assert list(history.columns) == ["epoch", "loss", "val_loss"] and len(history) >= 1
    for png in ("score_histogram.png", "reconstructions.png", "extremes.png", "latent_space.png"):
        data = (tmp_path / "a/plots/images" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    thr = read_json(tmp_path / "a/models/threshold.json")
    val = pd.read_csv(tmp_path / "a/data/scores/val.csv")["reconstruction"]
    assert thr["rule"] == "percentile" and thr["bounds"][0]["high"] == pytest.approx(np.percentile(val, 95))
    confusion = pd.read_csv(tmp_path / "a/plots/curves/confusion.csv")
    assert len(confusion) == 300 and (confusion["predicted"] == "anomaly").sum() == first["tp"] + first["fp"]
    # the false alarms the rule gives on test normals, next to those on the validation normals it was fitted on
    assert first["false_alarm_rate"] == pytest.approx(first["fp"] / (first["fp"] + first["tn"]))
    assert first["false_alarm_rate_val"] == pytest.approx((val > thr["bounds"][0]["high"]).mean())
    assert first["false_alarm_target"] == pytest.approx(0.05)  # what the default rule (percentile 95) aims at


def test_stage_script_reports_bad_params_in_one_line(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("model: cae\nmodels:\n  cae:\n    lr: 0\n")
    proc = subprocess.run([sys.executable, str(ROOT / "stages/train.py"), "--params", str(bad)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: params: models.cae.lr: 0.0 is out of range; it must be > 0.0"
    assert "Traceback" not in proc.stderr + proc.stdout


def test_missing_input_is_a_readable_error(tmp_path, tiny_params):
    from oddpix.errors import OddpixError

    with pytest.raises(OddpixError, match=r"raw/fashion_mnist.npz is missing; run the download stage"):
        pipeline.run(tiny_params(), tmp_path, stages=("split",))


def _cell_tree(root):
    """Two classes of RGB 'cells': round blobs (Uninfected) and blobs with dark spots (Parasitized)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:40]
    for name, n, spots in (("Uninfected", 100, False), ("Parasitized", 30, True)):
        (root / name).mkdir(parents=True)
        for i in range(n):
            r = rng.uniform(12, 16)
            cell = ((yy - 20) ** 2 + (xx - 20) ** 2 < r ** 2).astype(float)
            img = np.stack([0.9 * cell, 0.5 * cell, 0.6 * cell], -1)
            if spots:
                for _ in range(3):
                    cy, cx = rng.integers(12, 28, 2)
                    img[(yy - cy) ** 2 + (xx - cx) ** 2 < 8] = (0.2, 0.9, 1.0)
            img += rng.normal(0, 0.03, img.shape)
            Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(root / name / f"{i}.png")
    (root / "Parasitized" / "Thumbs.db").write_bytes(b"junk")
    return root


@pytest.mark.parametrize("model", ["cae", "ae"])
@pytest.mark.parametrize("protocol", ["cross_dataset", "corrupted", "folder"])
def test_every_protocol_runs_with_every_detector(tmp_path, patterns, tiny_params, protocol, model):
    from oddpix.data.synthetic import pattern_dataset, write_idx_folder

    mirror = tmp_path / "mirror"
    write_idx_folder(patterns, mirror / "mnist")
    write_idx_folder(pattern_dataset(40, 20, seed=7), mirror / "fashion-mnist")
    data = {"mirror": str(mirror), "checksums": "mirror", "download": False}
    if protocol == "cross_dataset":
        # normal: the blobs of class 0 at their usual place; anomalies: another dataset's images
        data.update(dataset="mnist", protocol="cross_dataset", anomaly_dataset="fashion_mnist", normal_classes=[0])
    elif protocol == "corrupted":
        data.update(dataset="mnist", protocol="corrupted", normal_classes="all", corruption={"fraction": 0.3})
    else:
        root = _cell_tree(tmp_path / "cell_images")
        data.update(dataset="folder", protocol="folder", normal_classes=["Uninfected"],
                    folder={"root": str(root), "image_size": 24, "channels": 3, "test_fraction": 0.3})
    models = {"cae": {"channels": [8, 16], "latent_dim": 8, "epochs": 30, "batch_size": 16},
              "ae": {"hidden": [64], "latent_dim": 8, "epochs": 30, "batch_size": 16}} if protocol == "folder" else None
    params = tiny_params(model=model, data=data, **({"models": models} if models else {}))
    from oddpix import pipeline

    # the figures once per protocol (cae's); ae's are drawn by the end-to-end DVC experiment
    metrics = pipeline.run(params, tmp_path / "run", plots=model == "cae")
    assert metrics["model"] == model and 0.0 <= metrics["auroc"] <= 1.0
    kinds = [k for k in metrics if k.startswith("auroc_")
             and k[6:] not in ("reconstruction", "bce", "mse", "density", "local_max", "local_topk")]
    split = read_json(tmp_path / "run/metrics/split.json")
    if protocol == "corrupted":
        assert {f"auroc_corruption_{t}" for t in ("invert", "noise", "interpolate", "overlap", "underscore", "dot")} \
            <= set(kinds)
        assert "detected_corruption_dot" in metrics
        if model == "cae":
            assert (tmp_path / "run/plots/images/corruptions.png").stat().st_size > 3000
        assert metrics["auroc_corruption_invert"] > 0.9  # an inverted image is unlike anything in training
        # the pixel truth of the corruptions: maps kept, pixel AUROC and PRO reported, per kind too
        assert 0.5 < metrics["pixel_auroc"] <= 1.0 and 0.0 < metrics["pro"] <= 1.0
        assert metrics["pixel_auroc_corruption_dot"] > 0.7  # a bright disc is badly reconstructed
        assert read_npz(tmp_path / "run/data/scores/maps.npz")["map"].shape == (300, 28, 28)
        if model == "cae":
            assert (tmp_path / "run/plots/images/anomaly_maps.png").stat().st_size > 5000  # with the true masks
    elif protocol == "cross_dataset":
        assert kinds == [f"auroc_class_{c}" for c in range(1, 10)] + ["auroc_dataset_fashion_mnist"]
        assert split["test_kind_dataset_fashion_mnist"] == 200
    else:
        assert kinds == ["auroc_class_Parasitized"] and split["skipped_files"] == 1
        assert split["test_anomaly"] == 9 and split["test_normal"] == 30
        assert metrics["auroc"] > 0.8  # dark spots on a cell are easy to see


def test_knn_baseline_runs_through_the_pipeline_without_an_encoder(tmp_path, mirror, tiny_params):
    params = tiny_params(model="knn", data={"mirror": str(mirror), "checksums": "mirror", "download": False})
    metrics = run_pipeline(params, tmp_path)
    assert metrics["model"] == "knn" and metrics["component"] == "distance" and metrics["auroc"] > 0.9
    scores = pd.read_csv(tmp_path / "data/scores/test.csv", keep_default_na=False)
    assert "distance" in scores.columns and "density" not in scores.columns
    assert (tmp_path / "plots/images/score_histogram.png").stat().st_size > 5000

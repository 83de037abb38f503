"""The stage functions chained in-process on generated data (fast), and the stage scripts' error output."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from oddpix import pipeline
from oddpix.io import read_json
from tests.conftest import run_pipeline

ROOT = Path(__file__).resolve().parents[1]


def test_pipeline_functions_end_to_end_and_deterministic(tmp_path, mirror, tiny_params, trained):
    params = tiny_params(data={"mirror": str(mirror), "checksums": "mirror", "download": False})
    first = run_pipeline(params, tmp_path / "a")
    assert first == trained[1]  # same params and seed: identical metrics
    assert first["auroc"] > 0.9 and first["model"] == "cae" and first["component"] == "reconstruction"
    assert first["n_test"] == 300 and first["tp"] + first["fn"] == 270
    assert read_json(tmp_path / "a/metrics/metrics.json") == first
    scores = pd.read_csv(tmp_path / "a/scores/test.csv", keep_default_na=False)
    assert list(scores.columns[:4]) == ["index", "y", "label", "kind"]
    assert {"reconstruction", "bce", "mse", "density"} <= set(scores.columns)
    assert first["auroc_density"] > 0.8
    history = pd.read_csv(tmp_path / "a/plots/history.csv")
    assert list(history.columns) == ["epoch", "loss", "val_loss"] and len(history) >= 1
    for png in ("score_histogram.png", "reconstructions.png", "extremes.png", "latent_space.png"):
        data = (tmp_path / "a/images" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    thr = read_json(tmp_path / "a/models/threshold.json")
    val = pd.read_csv(tmp_path / "a/scores/val.csv")["reconstruction"]
    assert thr["bounds"][0]["high"] == pytest.approx(val.mean() + 3 * val.std())
    confusion = pd.read_csv(tmp_path / "a/curves/confusion.csv")
    assert len(confusion) == 300 and (confusion["predicted"] == "anomaly").sum() == first["tp"] + first["fp"]


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
        pipeline.split(tiny_params(), tmp_path / "raw", tmp_path / "split", tmp_path / "s.json")

"""Hostile input and faults: one readable error, nothing half-written, no silent garbage."""

import pandas as pd
import pytest
import torch

from oddpix import pipeline
from oddpix.errors import OddpixError


def prepare(params, root):
    pipeline.download(params, root / "raw", root / "cache")
    pipeline.split(params, root / "raw", root / "split", root / "split.json")
    pipeline.preprocess(params, root / "split", root / "prepared")


def test_a_diverging_training_stops_at_once_and_saves_nothing(tmp_path, tiny_params, mirror):
    params = tiny_params(data={"mirror": str(mirror), "checksums": "mirror", "download": False},
                         models={"cae": {"channels": [8, 16], "latent_dim": 8, "epochs": 3, "lr": 1e6}})
    prepare(params, tmp_path)
    with pytest.raises(OddpixError) as err:
        pipeline.train(params, tmp_path / "prepared", tmp_path / "model.pt", tmp_path / "history.csv",
                       tmp_path / "train.json")
    message = str(err.value)
    assert message.startswith("cae: the training loss is not finite at epoch 1 (")
    assert "Try a lower learning rate (models.cae.lr is 1e+06; e.g. -S models.cae.lr=100000)" in message
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "train.json").exists()


def test_stages_refuse_scores_that_are_not_numbers(tmp_path, tiny_params):
    scores = tmp_path / "scores"
    scores.mkdir()
    frame = pd.DataFrame({"index": [0, 1, 2], "y": [0, 0, 0], "label": [0, 0, 0], "kind": ["", "", ""],
                          "reconstruction": [0.1, float("nan"), 0.3]})
    frame.to_csv(scores / "val.csv", index=False)
    text = (scores / "val.csv").read_text()
    assert "\n1,0,0,,\n" in text  # NaN is written as an empty cell, as the issue saw
    with pytest.raises(OddpixError, match=r"val.csv: component reconstruction: 1 of 3 values are not finite numbers "
                                          r"\(NaN, infinite or empty\); rerun the score stage"):
        pipeline.threshold(tiny_params(), scores, tmp_path / "threshold.json")
    assert not (tmp_path / "threshold.json").exists()


def test_model_files_are_byte_reproducible(tmp_path, tiny_params):
    """The same model saved twice is the same file, so a retrain with the same seed keeps its DVC hash."""
    from oddpix.models import build_detector, save_detector

    files = []
    for i in range(2):
        torch.manual_seed(0)
        det = build_detector("ae", tiny_params().models["ae"], (1, 28, 28))
        save_detector(det, tmp_path / str(i) / "detector.pt")
        files.append((tmp_path / str(i) / "detector.pt").read_bytes())
    assert files[0] == files[1]

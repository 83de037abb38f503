"""Hostile input and faults: one readable error, nothing half-written, no silent garbage."""

import io
import json

import pandas as pd
import pytest
import torch

from oddpix import pipeline
from oddpix.errors import OddpixError
from oddpix.steps.threshold import threshold
from oddpix.steps.train import train


def prepare(params, root):
    pipeline.run(params, root, stages=("download", "split", "preprocess"))


def test_a_diverging_training_stops_at_once_and_saves_nothing(tmp_path, tiny_params, mirror):
    params = tiny_params(data={"mirror": str(mirror), "checksums": "mirror", "download": False},
                         models={"cae": {"channels": [8, 16], "latent_dim": 8, "epochs": 3, "lr": 1e6}})
    prepare(params, tmp_path)
    with pytest.raises(OddpixError) as err:
        train(params, pipeline.path(tmp_path, "prepared"), tmp_path / "model.pt", tmp_path / "history.csv",
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
        threshold(tiny_params(), scores, tmp_path / "threshold.json")
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


def write_size_mixed_folder(root, patterns, bits=8):
    """good/ (pattern class 0) and bad/ (class 1) images at assorted sizes, as a user's folder would be."""
    import numpy as np
    from PIL import Image

    sizes = [(48, 48), (50, 50), (64, 40), (30, 36)]
    for name, cls in (("good", 0), ("bad", 1)):
        (root / name).mkdir(parents=True)
        images = patterns.x_train[patterns.y_train == cls][:40, ..., 0]
        for i, img in enumerate(images):
            h, w = sizes[i % len(sizes)]
            picture = Image.fromarray(img).resize((w, h), Image.BILINEAR)
            if bits == 16:  # the same picture in 16 bits
                picture = Image.fromarray(np.asarray(picture, dtype=np.uint16) * 257)
            picture.save(root / name / f"{name}_{i:02d}.png")
    return root


def test_a_folder_trained_model_scores_its_own_images_of_any_size(tmp_path, tiny_params, patterns):
    from click.testing import CliRunner

    from conftest import run_pipeline
    from oddpix.cli import main

    root = write_size_mixed_folder(tmp_path / "cells", patterns)
    data = {"dataset": "folder", "protocol": "folder", "normal_classes": ["good"],
            "folder": {"root": str(root), "image_size": 24, "channels": 1, "test_fraction": 0.3}}
    run_pipeline(tiny_params(model="knn", data=data), tmp_path / "run")
    d = tmp_path / "run"
    result = CliRunner().invoke(main, ["predict", str(root), "--format", "csv", "--model", str(d / "models/detector.pt"),
                                       "--kde", str(d / "models/kde.pt"), "--threshold", str(d / "models/threshold.json")])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(io.StringIO(result.stdout), keep_default_na=False)
    assert len(rows) == 80 and (rows["error"] == "").all()
    # every test image of the run is one of the folder's files: predict gives it the score evaluation gave it
    scored = rows["score"].to_numpy()
    test = pd.read_csv(d / "data/scores/test.csv")
    for s in test["distance"]:
        assert abs(scored - s).min() < 1e-6 * max(1.0, abs(s))


def test_16_bit_images_are_scaled_not_clipped(tmp_path, patterns):
    import numpy as np

    from oddpix.data.folder import load_image_folder, read_image_file

    eight = load_image_folder(write_size_mixed_folder(tmp_path / "a", patterns), 24, 1, warn=lambda m: None)
    sixteen = load_image_folder(write_size_mixed_folder(tmp_path / "b", patterns, bits=16), 24, 1, warn=lambda m: None)
    assert np.abs(eight.x.astype(int) - sixteen.x.astype(int)).max() <= 1 and sixteen.x.max() > 200
    assert sixteen.x.min() < 50  # a clipped read would have made every dark pixel 255

    from PIL import Image

    Image.fromarray(np.full((8, 8), 2.5, dtype=np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(OddpixError, match="floating-point image whose values are not all in"):
        read_image_file(tmp_path / "float.tif", 1)
    Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32)).save(tmp_path / "half.tif")
    assert (read_image_file(tmp_path / "half.tif", 1) == 128).all()


def test_a_decompression_bomb_is_one_error_line(tmp_path):
    from PIL import Image

    from oddpix.data.folder import read_image_file

    Image.new("L", (9000, 9000)).save(tmp_path / "huge.png")  # 81 M pixels, a few hundred bytes on disk
    with pytest.raises(OddpixError, match=r"9000x9000 pixels is more than the 64,000,000 oddpix reads"):
        read_image_file(tmp_path / "huge.png", 1)


def test_bad_model_files_are_one_error_line_never_an_unsafe_hint(tmp_path, tiny_params):
    import os
    import pickle

    from click.testing import CliRunner

    from oddpix.cli import main
    from oddpix.models import build_detector, load_detector, save_detector

    (tmp_path / "random.pt").write_bytes(os.urandom(4096))
    (tmp_path / "pickle.pt").write_bytes(pickle.dumps({"name": "ae", "x": {1, 2}}))  # not loadable safely
    torch.save([1, 2, 3], tmp_path / "list.pt")
    good = build_detector("ae", tiny_params().models["ae"], (1, 28, 28))
    save_detector(good, tmp_path / "good.pt")
    (tmp_path / "truncated.pt").write_bytes((tmp_path / "good.pt").read_bytes()[:2000])
    blob = torch.load(tmp_path / "good.pt", weights_only=True)
    blob["config"]["hidden"] = [200000, 200000]  # 40 billion weights: must be refused before allocating
    torch.save(blob, tmp_path / "huge.pt")
    blob["config"]["hidden"] = [64]
    blob["input_shape"] = [1, 10**6, 10**6]
    torch.save(blob, tmp_path / "wide.pt")
    expected = {"random.pt": "is not a model file written by oddpix, or it is damaged",
                "pickle.pt": "is not a model file written by oddpix, or it is damaged",
                "truncated.pt": "is not a model file written by oddpix, or it is damaged",
                "list.pt": "is not a model file written by oddpix (it holds a list",
                "huge.pt": "parameters, more than the 500,000,000 oddpix loads",
                "wide.pt": "is not channels x height x width within 4 x 4096 x 4096"}
    for name, message in expected.items():
        with pytest.raises(OddpixError, match=message.replace("(", r"\(")):
            load_detector(tmp_path / name)
        result = CliRunner().invoke(main, ["predict", str(tmp_path), "--model", str(tmp_path / name)])
        assert result.exit_code == 1 and result.output.startswith("error: ") and message in result.output
        assert "Traceback" not in result.output and "weights_only" not in result.output
    from oddpix.density import load_kde

    for name in ("random.pt", "list.pt", "good.pt"):  # the KDE file: the same
        with pytest.raises(OddpixError, match="is not a KDE file written by oddpix") as err:
            load_kde(tmp_path / name)
        assert "weights_only" not in str(err.value)


def test_a_missing_idx_file_is_named(tmp_path, patterns, monkeypatch):
    import dataclasses

    from oddpix.data import sources
    from oddpix.data.sources import MIRROR_ENV, load_dataset
    from oddpix.data.synthetic import write_idx_folder

    # only the broken mirror may be found: not a mirror of the machine, not Debian's system folder
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.setitem(sources.DATASETS, "fashion_mnist",
                        dataclasses.replace(sources.DATASETS["fashion_mnist"], system_dirs=()))

    folder = write_idx_folder(patterns, tmp_path / "mirror" / "fashion-mnist")
    for f in folder.glob("t10k-labels-idx1-ubyte*"):
        f.unlink()
    with pytest.raises(OddpixError, match=r"\(missing t10k-labels-idx1-ubyte\[\.gz\]\)"):
        load_dataset("fashion_mnist", mirror=str(tmp_path / "mirror"), checksums="off", download=False)


def test_an_empty_normal_class_folder_says_so(tmp_path, tiny_params, patterns):
    from conftest import run_pipeline

    root = write_size_mixed_folder(tmp_path / "cells", patterns)
    (root / "empty").mkdir()
    data = {"dataset": "folder", "protocol": "folder", "normal_classes": ["empty"],
            "folder": {"root": str(root), "image_size": 24, "channels": 1}}
    with pytest.raises(OddpixError, match="data.normal_classes: class 'empty' has no readable images"):
        run_pipeline(tiny_params(model="knn", data=data), tmp_path / "run")


@pytest.mark.parametrize("model", ["cae", "knn"])
def test_an_images_score_does_not_depend_on_the_other_images_scored_with_it(model, tiny_params, pattern_splits):
    from oddpix.models import FitData, build_detector
    from oddpix.preprocess import Preprocessor
    from oddpix.runtime import seed_everything
    from oddpix.scoring import score_components
    from oddpix.training import FitContext

    prep = Preprocessor()
    train, test = prep.transform(pattern_splits["train"].x), prep.transform(pattern_splits["test"].x)
    det = build_detector(model, tiny_params().models[model], (1, 28, 28))
    det.fit(FitData(train, train[:20]), FitContext(torch.device("cpu"), seed_everything(0), log=lambda m: None))
    det.eval()
    alone = score_components(det, test[:3], batch_size=64)
    among = score_components(det, test[:150], batch_size=64)
    for key, values in alone.items():
        assert torch.equal(values, among[key][:3]), key  # exactly, not approximately


def mutations(blob: bytes, rng) -> list[bytes]:
    """Damaged versions of a file: truncated, bytes flipped, random bytes, empty."""
    out = [b"", rng.bytes(len(blob) // 2 + 1)]
    for _ in range(6):
        cut = int(rng.integers(1, len(blob)))
        out.append(blob[:cut])
        flipped = bytearray(blob)
        for i in rng.integers(0, len(blob), size=8):
            flipped[i] ^= 0xFF
        out.append(bytes(flipped))
    return out


def test_fuzzed_readers_fail_with_one_error_never_another_exception(tmp_path, patterns, tiny_params):
    """IDX files (plain and gzip), image files and model files, damaged at random: each read either works
    or raises OddpixError (one `error:` line), never any other exception."""
    import gzip
    import shutil

    import numpy as np
    from PIL import Image

    from oddpix.data.folder import read_image_file
    from oddpix.data.sources import load_dataset
    from oddpix.data.synthetic import write_idx_folder
    from oddpix.models import build_detector, load_detector, save_detector

    rng = np.random.default_rng(0)
    clean = write_idx_folder(patterns, tmp_path / "clean" / "fashion-mnist")
    target = clean / "t10k-labels-idx1-ubyte.gz"
    original = target.read_bytes()
    variants = mutations(original, rng) + mutations(gzip.decompress(original), rng)
    variants.append(gzip.compress(bytes([0, 0, 8, 1]) + (2 ** 32 - 1).to_bytes(4, "big")))  # claims 4 G labels
    for i, blob in enumerate(variants):
        mirror = tmp_path / f"m{i}"
        shutil.copytree(clean, mirror / "fashion-mnist")
        (mirror / "fashion-mnist" / target.name).write_bytes(blob)
        try:
            load_dataset("fashion_mnist", mirror=str(mirror), checksums="off", download=False)
        except OddpixError:
            pass

    Image.fromarray(patterns.x_test[0, ..., 0]).save(tmp_path / "img.png")
    for i, blob in enumerate(mutations((tmp_path / "img.png").read_bytes(), rng)):
        (tmp_path / f"bad{i}.png").write_bytes(blob)
        try:
            read_image_file(tmp_path / f"bad{i}.png", 1, (28, 28))
        except OddpixError:
            pass

    save_detector(build_detector("ae", tiny_params().models["ae"], (1, 28, 28)), tmp_path / "good.pt")
    for i, blob in enumerate(mutations((tmp_path / "good.pt").read_bytes(), rng)):
        (tmp_path / f"bad{i}.pt").write_bytes(blob)
        try:
            load_detector(tmp_path / f"bad{i}.pt")
        except OddpixError:
            pass

    # KDE files: damaged bytes, and well-formed files whose contents are impossible
    import torch

    from oddpix.density import LatentKDE, load_kde, save_kde
    from oddpix.io import write_torch

    kde = LatentKDE.fit(torch.randn(50, 4), "scott")
    save_kde(tmp_path / "kde.pt", kde, model_id="m")
    assert load_kde(tmp_path / "kde.pt").bandwidth == kde.bandwidth
    for i, blob in enumerate(mutations((tmp_path / "kde.pt").read_bytes(), rng)):
        (tmp_path / f"kde{i}.pt").write_bytes(blob)
        try:
            load_kde(tmp_path / f"kde{i}.pt")
        except OddpixError:
            pass
    good = {"fitted": True, **kde.state()}
    for change in ({"bandwidth": 0.0}, {"bandwidth": float("nan")}, {"bandwidth": "1"}, {"data": torch.ones(3)},
                   {"std": torch.zeros(4)}, {"mean": torch.zeros(5)}, {"data": torch.full((3, 4), float("inf"))},
                   {"extra": 1}, {"rule": 3}):
        write_torch(tmp_path / "crafted.pt", {**good, **change})
        with pytest.raises(OddpixError, match="is not a KDE file written by oddpix"):
            load_kde(tmp_path / "crafted.pt")

    # threshold files: damaged bytes (the structured edits: tests/test_hostile_files.py)
    from oddpix.fitted_threshold import Bound, Threshold

    thr = Threshold("zscore", [Bound("reconstruction", 1.0)], calibration=[0.1, 0.2])
    text = json.dumps(thr.to_dict()).encode()
    assert Threshold.from_dict(json.loads(text)).high == 1.0
    for blob in mutations(text, rng):
        try:
            Threshold.from_dict(json.loads(blob.decode("utf-8", "replace")))
        except (OddpixError, ValueError):  # ValueError: not JSON at all (bundle.py reports it as one line)
            pass


def test_captions_and_histograms_say_what_they_show():
    import numpy as np

    from oddpix.plots import score_histogram
    from oddpix.steps.plots import _caption
    from oddpix.fitted_threshold import Bound

    assert _caption(False, "normal") == "normal" and _caption(False, "T-shirt/top") == "normal T-shirt/top"
    assert _caption(True, "Sneaker") == "anomaly Sneaker"
    normal = np.r_[np.linspace(0, 1, 500), 50.0]  # one far outlier beyond the axis
    fig = score_histogram([normal], [normal], [np.linspace(1, 2, 100)], [Bound("reconstruction", 1.0)], "zscore")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("beyond the axis, counted in the edge bins" in t for t in labels[:2])

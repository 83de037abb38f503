import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from oddpix.cli import main
from oddpix.io import read_npz


@pytest.fixture
def image_dir(tmp_path, trained):
    root, _ = trained
    test = read_npz(root / "data/split/test.npz")
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    picks = [0, 5, 17, 42]
    for i in picks:
        Image.fromarray(test["x"][i, ..., 0]).save(folder / "sub" / f"img_{i:03d}.png")
    (folder / "broken.png").write_text("this is not a picture")
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(folder / "too_big.png")
    return folder, picks


def run(root, *args):
    return CliRunner().invoke(main, ["predict", *args, "--model", str(root / "models/detector.pt"),
                                     "--kde", str(root / "models/kde.pt"),
                                     "--threshold", str(root / "models/threshold.json")])


def test_predict_gives_the_evaluation_scores_and_reports_bad_files(trained, image_dir):
    root, _ = trained
    folder, picks = image_dir
    result = run(root, str(folder), "--format", "json", "--components")
    assert result.exit_code == 1  # some files failed, the rest were scored
    rows = {r["file"].rsplit("/", 1)[-1]: r for r in json.loads(result.stdout)}
    assert "not a readable image" in rows["broken.png"]["error"] and rows["broken.png"]["score"] is None
    # another size is read at the training images' size (28x28), as evaluation read them
    assert rows["too_big.png"]["error"] is None and rows["too_big.png"]["score"] is not None
    scores = pd.read_csv(root / "data/scores/test.csv", keep_default_na=False)
    threshold = json.loads((root / "models/threshold.json").read_text())["bounds"][0]["high"]
    for i in picks:
        row = rows[f"img_{i:03d}.png"]
        assert row["error"] is None
        assert row["score"] == pytest.approx(scores["reconstruction"][i], rel=1e-5)
        assert row["density"] == pytest.approx(scores["density"][i], rel=1e-5)
        for name in ("local_max", "local_topk"):  # the run's score.local settings travel with the threshold
            assert row[name] == pytest.approx(scores[name][i], rel=1e-5)
        assert row["anomaly"] == bool(scores["reconstruction"][i] > threshold)
        # the calibrated score: the share of validation normals scoring at least as high (conformal)
        val = pd.read_csv(root / "data/scores/val.csv", keep_default_na=False)
        normal = val["reconstruction"][val["y"] == 0].to_numpy()
        assert row["p_value"] == pytest.approx((1 + (normal >= row["score"]).sum()) / (1 + len(normal)))


def test_predict_table_and_csv(trained, image_dir):
    root, _ = trained
    folder, _ = image_dir
    good = sorted(str(p) for p in (folder / "sub").glob("*.png"))
    table = run(root, *good)
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["file", "score", "anomaly", "p_value"] and len(lines) == 5
    assert all(line.split()[2] in ("yes", "no") for line in lines[1:])
    as_csv = run(root, good[0], "--format", "csv")
    assert as_csv.stdout.splitlines()[0] == "file,score,anomaly,p_value,error,note"
    assert "scored by " in table.stderr and "cae, model " in table.stderr  # which model and run scored


def test_predict_says_when_it_resizes_and_refuses_a_distorting_resize(trained, tmp_path):
    root, _ = trained
    Image.fromarray(np.full((24, 32), 128, np.uint8)).save(tmp_path / "wide.png")    # 32x24: aspect 1.33
    Image.fromarray(np.full((20, 60), 128, np.uint8)).save(tmp_path / "banner.png")  # 60x20: aspect 3
    Image.fromarray(np.full((28, 28), 128, np.uint8)).save(tmp_path / "fits.png")
    result = run(root, str(tmp_path), "--format", "json", "--max-aspect", "1.5")
    rows = {r["file"].rsplit("/", 1)[-1]: r for r in json.loads(result.stdout)}
    assert rows["wide.png"]["note"] == "resized from 32x24 to 28x28 (bilinear)" and rows["wide.png"]["score"] is not None
    assert rows["fits.png"]["note"] is None and rows["fits.png"]["score"] is not None
    assert rows["banner.png"]["score"] is None and "a change of aspect ratio of 3.00x (more than 1.5)" in rows["banner.png"]["error"]
    assert result.exit_code == 1 and "note: 1 image(s) resized to the model's input" in result.stderr
    relaxed = run(root, str(tmp_path / "banner.png"), "--format", "json")  # by default: resized, as training was
    assert relaxed.exit_code == 0 and json.loads(relaxed.stdout)[0]["note"] == "resized from 60x20 to 28x28 (bilinear)"


def test_predict_without_a_model_is_one_readable_line(tmp_path):
    result = CliRunner().invoke(main, ["predict", str(tmp_path), "--model", str(tmp_path / "none.pt")])
    assert result.exit_code == 1
    assert "error: no trained model at" in result.output and "Traceback" not in result.output


def test_predict_writes_one_heat_map_per_scored_image(trained, image_dir, tmp_path):
    root, _ = trained
    folder, picks = image_dir
    result = run(root, str(folder / "sub"), "--maps", str(tmp_path / "maps"))
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "maps").iterdir())
    assert written == [f"img_{i:03d}_map.png" for i in picks]
    heat = np.array(Image.open(tmp_path / "maps" / written[0]))
    assert heat.shape == (28, 28, 3) and heat.max() > 200  # the hottest pixel is near white-yellow
    knn_model = tmp_path / "knn.pt"
    from oddpix.models import build_detector, save_detector
    from oddpix.models.knn import KNNConfig
    save_detector(build_detector("knn", KNNConfig(), (1, 28, 28)), knn_model, preprocess={"normalize": "unit"})
    knn_threshold = json.loads((root / "models/threshold.json").read_text())
    knn_threshold["bounds"][0]["component"] = "distance"
    (tmp_path / "knn_threshold.json").write_text(json.dumps({**knn_threshold, "model_id": None}))
    result = CliRunner().invoke(main, ["predict", str(folder / "sub"), "--maps", str(tmp_path / "m2"),
                                       "--model", str(knn_model), "--kde", str(tmp_path / "none.pt"),
                                       "--threshold", str(tmp_path / "knn_threshold.json")])
    assert result.exit_code == 1 and result.output.strip() == \
        "error: model knn has no anomaly maps (--maps needs one of: cae, ae, vae, ae_kde, aae, ganomaly, gan_mse, " \
        "patch_knn, synth_seg, draem, cutpaste, fusion)"


def test_a_kde_or_threshold_of_another_model_is_refused(trained, image_dir, tmp_path):
    """The run bundle's parts name the model they belong to: mixing two runs' files is one error line."""
    from oddpix.models import build_detector, save_detector
    from oddpix.models.knn import KNNConfig

    root, _ = trained
    folder, _ = image_dir
    knn_model = tmp_path / "knn.pt"
    save_detector(build_detector("knn", KNNConfig(), (1, 28, 28)), knn_model, preprocess={"normalize": "unit"})
    mixed = CliRunner().invoke(main, ["predict", str(folder / "sub"), "--model", str(knn_model),
                                      "--kde", str(root / "models/kde.pt"),
                                      "--threshold", str(root / "models/threshold.json")])
    assert mixed.exit_code == 1 and "Traceback" not in mixed.output
    assert "kde.pt was fitted on the codes of another model than" in mixed.output
    copied = tmp_path / "cae.pt"  # the same bytes elsewhere: the same model
    copied.write_bytes((root / "models/detector.pt").read_bytes())
    ok = run_with(copied, root, str(folder / "sub"))
    assert ok.exit_code == 0, ok.output
    thr = json.loads((root / "models/threshold.json").read_text())
    (tmp_path / "other_threshold.json").write_text(json.dumps({**thr, "model_id": "0" * 16}))
    other = CliRunner().invoke(main, ["predict", str(folder / "sub"), "--model", str(root / "models/detector.pt"),
                                      "--kde", str(root / "models/kde.pt"),
                                      "--threshold", str(tmp_path / "other_threshold.json")])
    assert other.exit_code == 1 and "was fitted on the scores of another model" in other.output


def run_with(model, root, *args):
    return CliRunner().invoke(main, ["predict", *args, "--model", str(model), "--kde", str(root / "models/kde.pt"),
                                     "--threshold", str(root / "models/threshold.json")])

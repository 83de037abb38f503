"""Hostile settings and files: impossible params stop before anything runs, damaged or crafted threshold
and model files stop with one line naming the field, NaN scores are errors, heat maps are written safely."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from oddpix.cli import main
from oddpix.errors import ConfigError, OddpixError
from oddpix.io import read_npz


@pytest.mark.parametrize("raw, message", [
    ({"seed": 2 ** 32}, "params: seed: 4294967296 is out of range; it must be <= 4294967295"),
    ({"seed": 2 ** 40}, "params: seed: 1099511627776 is out of range"),
    ({"preprocess": {"image_size": 4096}}, "params: preprocess.image_size: 4096 is out of range; it must be <= 1024"),
    ({"preprocess": {"channels": 2}}, "params: preprocess.channels: 2 is not a valid choice; valid choices: 1 (grayscale), 3 (RGB)"),
    ({"kde": {"bandwidth": 0}}, "params: kde.bandwidth: 0 is not a usable bandwidth; valid: a number in [0.001, 1000]"),
    ({"kde": {"bandwidth": 1e-300}}, "params: kde.bandwidth: 1e-300 is not a usable bandwidth"),
    ({"kde": {"bandwidth": -1}}, "params: kde.bandwidth: -1 is not a usable bandwidth"),
])
def test_impossible_settings_stop_on_load(raw, message):
    from oddpix.config import parse_params

    with pytest.raises(ConfigError) as info:
        parse_params(raw)
    assert str(info.value).startswith(message), str(info.value)


def test_an_image_size_the_memory_cannot_hold_stops_the_preprocess_stage(tmp_path, tiny_params, mirror, monkeypatch):
    from oddpix import pipeline
    from oddpix.steps import preprocess as stage

    data = {"mirror": str(mirror), "checksums": "mirror", "download": False}
    pipeline.run(tiny_params(data=data), tmp_path, stages=("download", "split"))
    n = sum(len(read_npz(tmp_path / f"data/split/{s}.npz")["y"]) for s in ("train", "val", "test"))
    monkeypatch.setattr(stage, "physical_memory_bytes", lambda: 10 ** 9)  # a machine with 1 GB
    with pytest.raises(OddpixError, match=rf"preprocess.image_size: 1024x1024 px makes the {n:,} images "
                                          r"[\d.]+ GB as float32 tensors and this machine has 1.0 GB; choose an "
                                          r"image_size of at most \d+"):
        pipeline.run(tiny_params(data=data, preprocess={"image_size": 1024}), tmp_path, stages=("preprocess",))
    assert not (tmp_path / "data/prepared").exists()  # stopped before allocating anything
    pipeline.run(tiny_params(data=data), tmp_path, stages=("preprocess",))  # 28 x 28 fits
    assert (tmp_path / "data/prepared/train.npz").exists()


@pytest.fixture
def workspace(tmp_path, trained):
    """A copy of the trained workspace's models, to damage."""
    root, _ = trained
    shutil.copytree(root / "models", tmp_path / "models")
    test = read_npz(root / "data/split/test.npz")
    (tmp_path / "images").mkdir()
    for i in range(4):
        Image.fromarray(test["x"][i, ..., 0]).save(tmp_path / "images" / f"img{i}.png")
    return tmp_path


def predict(ws, *args, model="models/detector.pt"):
    return CliRunner().invoke(main, ["predict", str(ws / "images"), *args, "--model", str(ws / model),
                                     "--kde", str(ws / "models/kde.pt"), "--threshold", str(ws / "models/threshold.json")])


def edit_threshold(ws, change):
    path = ws / "models/threshold.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("change, message", [
    (lambda d: d["bounds"][0].update(high=float("nan")), "bounds[0].high: nan is not a finite number"),
    (lambda d: d["bounds"][0].update(high="0.5"), "bounds[0].high: '0.5' is not a finite number"),
    (lambda d: d["bounds"][0].update(high=[1]), "bounds[0].high: [1] is not a finite number"),
    (lambda d: d["bounds"][0].pop("component"), "bounds[0]: 'component' is missing"),
    (lambda d: d["bounds"][0].update(std=0), "bounds[0].std: 0 must be > 0"),
    (lambda d: d["bounds"][0].update(low=1e9), "bounds[0]: low 1e+09 is not below high"),
    (lambda d: d.update(bounds=[]), "bounds: expected a non-empty list"),
    (lambda d: d.pop("rule"), "'rule' is missing"),
    (lambda d: d.update(extra=1), "unknown key 'extra'"),
    (lambda d: d.update(calibration=[2.0, 1.0]), "calibration: the validation normals' scores are stored sorted"),
    (lambda d: d.update(calibration="x"), "calibration: expected a list of numbers"),
])
def test_a_damaged_threshold_file_stops_with_one_line(workspace, change, message):
    edit_threshold(workspace, change)
    result = predict(workspace)
    assert result.exit_code == 1 and result.exception is None or isinstance(result.exception, SystemExit)
    assert message in result.output and "Traceback" not in result.output, result.output


def test_a_truncated_threshold_file_stops_with_one_line(workspace):
    path = workspace / "models/threshold.json"
    path.write_text(path.read_text()[:40])
    result = predict(workspace)
    assert result.exit_code == 1 and "not a readable threshold file (JSONDecodeError)" in result.output


def _tamper_model(ws, change):
    """Edit the model file; the KDE and threshold then no longer name it (an edit changes its identity), so
    the threshold is told to belong to any model and the KDE is left out, reaching the model's own checks."""
    path = ws / "models/detector.pt"
    blob = torch.load(path, weights_only=False)
    change(blob)
    torch.save(blob, path)
    edit_threshold(ws, lambda d: d.update(model_id=None))
    (ws / "models/kde.pt").unlink()


def _preprocess_of(blob):
    return blob["extra"]["preprocess"]


@pytest.mark.parametrize("change, message", [
    (lambda p: p.update(source_size=[60000, 60000]), "source_size: 60000 is not an image side (1 to 1024 px)"),
    (lambda p: p.update(local_sigma=1e7), "local_sigma: 10000000.0 is not in (0, 64] px"),
    (lambda p: p.update(surprise=1), "unknown key 'surprise'"),
    (lambda p: p.pop("normalize"), "'normalize' is missing"),
    (lambda p: p.update(normalize="zscore"), "normalize: 'zscore' is not one of unit, standardize, local"),
    (lambda p: p.update(channels=2), "channels: 2 is not 1, 3 or null"),
    (lambda p: p.update(normalize="standardize", mean=[0.5], std=[0.0]), "std: [0.0] must be positive"),
])
def test_a_crafted_model_files_preprocessing_is_refused(workspace, change, message):
    _tamper_model(workspace, lambda blob: change(_preprocess_of(blob)))
    result = predict(workspace)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, result.output


def test_nan_scores_are_errors_not_normal_images(workspace):
    def poison(blob):
        for value in blob["state_dict"].values():
            if value.is_floating_point():
                value.fill_(float("nan"))
    _tamper_model(workspace, poison)
    result = predict(workspace, "--format", "json")
    assert result.exit_code == 1
    rows = json.loads(result.stdout)
    assert all(r["score"] is None and r["anomaly"] is None and "NaN or infinite" in r["error"] for r in rows)


def test_heat_maps_are_written_safely_and_the_scores_survive_a_failure(workspace):
    maps = workspace / "maps"
    # onto an existing file: one line per image, the scores still printed
    maps.write_text("a file")
    result = predict(workspace, "--maps", str(maps), "--format", "json")
    rows = json.loads(result.stdout)
    assert result.exit_code == 1 and all(r["score"] is not None for r in rows)
    assert all("heat map not written" in r["error"] and "is a file, not a folder" in r["error"] for r in rows)
    maps.unlink()
    # a link planted where a map goes is replaced, not followed out of the folder
    maps.mkdir()
    outside = workspace / "outside.txt"
    outside.write_text("keep me")
    os.symlink(outside, maps / "img0_map.png")
    result = predict(workspace, "--maps", str(maps))
    assert result.exit_code == 0, result.output
    assert outside.read_text() == "keep me" and not (maps / "img0_map.png").is_symlink()
    assert Image.open(maps / "img0_map.png").size == (28, 28)
    assert not [p for p in maps.iterdir() if p.name.startswith(".map-")]  # no temporary file left
    if os.geteuid() != 0:  # root writes anywhere: a read-only folder only stops other users
        shutil.rmtree(maps)
        maps.mkdir()
        maps.chmod(0o500)
        result = predict(workspace, "--maps", str(maps), "--format", "json")
        rows = json.loads(result.stdout)
        assert result.exit_code == 1 and all(r["score"] is not None and "cannot write into" in r["error"] for r in rows)


def test_a_record_of_the_wrong_shape_or_of_another_cell_is_run_again(tmp_path):
    from oddpix.config import read_raw_params
    from oddpix.io import write_json
    from oddpix.sweep import Cell, plan
    from oddpix.sweep.records import params_hash
    from oddpix.sweep.cells import apply_settings

    base = read_raw_params("params.yaml")
    cell = Cell("fashion_mnist", "knn", 0, 42)
    path = cell.path(tmp_path)
    good = {"cell": {"dataset": "fashion_mnist", "model": "knn", "cls": 0, "seed": 42, "settings": []},
            "status": "ok", "code_version": "v1", "params_hash": params_hash(apply_settings(base, cell.overrides())),
            "metrics": {"auroc": 0.9}}
    write_json(path, good)
    assert cell in plan(base, [cell], tmp_path, "v1").done  # the record stands for its cell
    for broken in ([1, 2], "text", {**good, "cell": {**good["cell"], "cls": 3}}, {**good, "metrics": [0.9]}):
        write_json(path, broken)
        assert plan(base, [cell], tmp_path, "v1").todo == [cell], broken


def test_a_records_path_stays_under_the_reports_folder(tmp_path):
    from oddpix.sweep import Cell

    for name in ("../../../x", "/etc/x", "a/../../b", ".."):
        path = Cell(name, "knn", 0, 42).path(tmp_path / "reports").resolve()
        assert path.is_relative_to((tmp_path / "reports").resolve()) and path.parent.parent.name not in ("", ".."), path
    assert Cell("fashion_mnist", "knn", 0, 42).path("r").as_posix() == "r/fashion_mnist/knn/c0-s42.json"


def test_a_huge_class_range_is_refused_before_it_is_built():
    import time

    from oddpix.leaderboard import parse_classes

    start = time.perf_counter()
    with pytest.raises(OddpixError, match=r"--classes: '0-9999999999' is not a range of class numbers from 0 to 999"):
        parse_classes("0-9999999999")
    assert time.perf_counter() - start < 1
    assert parse_classes("0-2,7") == [0, 1, 2, 7]
    with pytest.raises(OddpixError, match="not a range"):
        parse_classes("5-2")


def test_masks_are_read_whatever_their_values_and_surprises_are_warned(tmp_path):
    from oddpix.data.folder import load_image_folder, read_mask_file
    from oddpix.data.synthetic import write_defect_folder

    root = write_defect_folder(tmp_path / "t", n=20, size=32, defect_share=0.5, seed=1)
    masks = sorted((root / "masks" / "defect").glob("*.png"))
    truth = [np.asarray(Image.open(m)) > 127 for m in masks]
    assert all(t.any() for t in truth)
    image = root / "defect" / masks[0].name
    for values in (np.uint8, np.uint16):  # 0/1 and 16-bit 0/1000 read as the same marked pixels
        scale = 1 if values is np.uint8 else 1000
        Image.fromarray((truth[0] * scale).astype(values)).save(masks[0])
        got, notes = read_mask_file(masks[0], image, 32)
        assert np.array_equal(got, truth[0]) and notes == []
    # a smoothed (non-binary) mask and one of another size: read, and said so
    soft = truth[1].astype(np.float64) * 200
    soft[1:, :] = np.maximum(soft[1:, :], soft[:-1, :] * 0.3)
    Image.fromarray(soft.astype(np.uint8)).save(masks[1])
    Image.fromarray(truth[2].astype(np.uint8) * 255).resize((64, 64), Image.NEAREST).save(masks[2])
    warnings = []
    folder = load_image_folder(root, 32, 3, warn=warnings.append)
    assert any(w.startswith("warning: 1 mask(s) are not binary") and masks[1].name in w for w in warnings), warnings
    assert any(w.startswith("warning: 1 mask(s) differ in size from their images") and "is 64x64, its image 32x32" in w
               for w in warnings), warnings
    by_name = {str(f).rsplit("/", 1)[-1]: m for f, m in zip(folder.files, folder.masks)}
    assert np.array_equal(by_name[masks[0].name], truth[0]) and np.array_equal(by_name[masks[2].name], truth[2])
    assert np.array_equal(by_name[masks[1].name], truth[1])  # above half of 200: the mask, not its fringe of 60


def test_a_key_given_twice_in_params_yaml_is_refused(tmp_path):
    from oddpix.config import load_params

    (tmp_path / "params.yaml").write_text("model: cae\nseed: 1\nmodel: ae\n")
    with pytest.raises(ConfigError, match=r"is not valid YAML: the key 'model' is given twice \(line 3, column 1\)$"):
        load_params(tmp_path / "params.yaml")


def test_a_sweep_whose_every_cell_is_invalid_runs_and_writes_nothing(tmp_path, tiny_params):
    from oddpix import leaderboard as lb
    from oddpix.sweep import cells_of

    out = tmp_path / "board"
    out.mkdir()
    (out / "leaderboard.md").write_text("the last good table")
    request = lb.Request(models=["knn", "knn"], classes=[0, 1], datasets=[], seeds=1, settings=("models.knn.kk=1",))
    with pytest.raises(OddpixError, match=r"the params of every cell are invalid, nothing was run or written .*models.knn.kk"):
        lb.run(request, {"device": "cpu"}, "local", tmp_path / "reports", out, log=lambda m: None)
    assert (out / "leaderboard.md").read_text() == "the last good table" and not (tmp_path / "reports").exists()
    assert len(cells_of("mnist", ["knn", "knn"], [0, 0, 1], [42, 42])) == 2  # each cell once


def test_file_reading_respects_exif_names_reasons_and_never_blocks(tmp_path):
    from oddpix.data.folder import EXIF_ORIENTATION, load_image_folder, read_image_file

    picture = np.zeros((10, 20), np.uint8)
    picture[:, :10] = 255  # bright left half, 20 wide and 10 high as stored
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # the camera was turned: shown rotated 90 degrees clockwise
    Image.fromarray(picture).save(tmp_path / "turned.png", exif=exif.tobytes())
    upright = read_image_file(tmp_path / "turned.png", 1)[..., 0]
    assert upright.shape == (20, 10) and upright[:10].min() == 255 and upright[10:].max() == 0  # bright on top
    os.mkfifo(tmp_path / "pipe.png")  # opening a FIFO for reading would wait for a writer forever
    with pytest.raises(OddpixError, match="not a regular file"):
        read_image_file(tmp_path / "pipe.png", 1)
    # a folder's skip warning says why
    (tmp_path / "f" / "good").mkdir(parents=True)
    Image.fromarray((np.arange(64 * 64, dtype=np.int32).reshape(64, 64) * 100)).save(tmp_path / "f/good/deep.tif")
    Image.fromarray(picture).save(tmp_path / "f/good/ok.png")
    warnings = []
    load_image_folder(tmp_path / "f", 16, 1, warn=warnings.append)
    assert any("deep.tif: a 32-bit integer image with values 0..409500; save it as 8 or 16 bit" in w for w in warnings), warnings


def test_a_full_disk_during_a_stage_is_one_line(tmp_path, monkeypatch):
    import errno

    from oddpix.stage import stage_command
    from oddpix.steps import params as step

    (tmp_path / "params.yaml").write_text("device: cpu\n")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "data/params.ok"))
    monkeypatch.setattr(step, "write_text", full)  # the disk fills up as the stage writes its output
    result = CliRunner().invoke(stage_command("params"), ["--params", str(tmp_path / "params.yaml"),
                                                          "--root", str(tmp_path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().endswith("No space left on device (free some space and run again)"), result.output
    assert result.output.startswith("error: stage params: ")

import numpy as np
import pytest
from PIL import Image

from oddpix.config import parse_params
from oddpix.data.protocols import make_splits, match_images, summarize
from oddpix.data.folder import load_image_folder
from oddpix.data.synthetic import pattern_dataset
from oddpix.errors import ConfigError, OddpixError


def data_cfg(**raw):
    return parse_params({"data": raw}).data


def test_one_vs_rest_splits(patterns):
    splits = make_splits(data_cfg(normal_classes=[0, 3], val_fraction=0.2), {"fashion_mnist": patterns}, seed=1)
    train, val, test = splits["train"], splits["val"], splits["test"]
    assert set(np.unique(train.label)) == {0, 3} and train.y.sum() == 0
    assert set(np.unique(val.label)) == {0, 3} and val.y.sum() == 0
    assert len(train) + len(val) == 200 and len(val) == 40
    flat = {img.tobytes() for img in train.x}
    assert not any(img.tobytes() in flat for img in val.x)  # val is held out, not a copy
    assert len(test) == len(patterns.y_test)
    np.testing.assert_array_equal(test.y, (~np.isin(patterns.y_test, [0, 3])).astype(int))
    assert set(test.kind[test.y == 0]) == {"normal"}
    assert set(test.kind[test.y == 1]) == {f"class:{c}" for c in (1, 2, 4, 5, 6, 7, 8, 9)}
    assert test.x.dtype == np.uint8 and test.x.shape[1:] == (28, 28, 1)


def test_splits_are_deterministic_by_seed(patterns):
    cfg = data_cfg(normal_classes=[0], contamination=0.1)
    a = make_splits(cfg, {"fashion_mnist": patterns}, seed=5)
    b = make_splits(cfg, {"fashion_mnist": patterns}, seed=5)
    c = make_splits(cfg, {"fashion_mnist": patterns}, seed=6)
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(a[name].x, b[name].x)
        np.testing.assert_array_equal(a[name].kind, b[name].kind)
    assert not np.array_equal(a["val"].x, c["val"].x)


def test_contamination_mixes_anomalies_into_training(patterns):
    splits = make_splits(data_cfg(normal_classes=[0], contamination=0.1), {"fashion_mnist": patterns}, seed=0)
    train = splits["train"]
    assert (train.y == 0).sum() == 90 and (train.y == 1).sum() == 10  # 10 of 100 = 10 %
    assert set(train.label[train.y == 1]) <= set(range(1, 10))
    assert all(k.startswith("class:") for k in train.kind[train.y == 1])
    assert splits["val"].y.sum() == 0


def test_labelled_validation_anomalies(patterns):
    splits = make_splits(data_cfg(normal_classes=[0], val_anomaly_fraction=0.2), {"fashion_mnist": patterns}, 0)
    val = splits["val"]
    assert (val.y == 0).sum() == 10 and (val.y == 1).sum() == 2  # 2 of 12 = 20 % (rounded)
    assert splits["train"].y.sum() == 0
    with pytest.raises(OddpixError, match="asks for 0 anomalous validation images"):
        make_splits(data_cfg(normal_classes=[0], val_anomaly_fraction=0.01), {"fashion_mnist": patterns}, 0)


def test_cross_dataset_matches_size_and_channels():
    normal = pattern_dataset(20, 10, size=28, seed=1, name="mnist")
    other = pattern_dataset(5, 4, size=32, seed=2, name="fashion_mnist")
    other.x_train = np.repeat(other.x_train, 3, axis=3)  # an RGB dataset of another size
    other.x_test = np.repeat(other.x_test, 3, axis=3)
    cfg = data_cfg(dataset="mnist", protocol="cross_dataset", anomaly_dataset="fashion_mnist", normal_classes="all",
                   contamination=0.05)
    splits = make_splits(cfg, {"mnist": normal, "fashion_mnist": other}, seed=0)
    test = splits["test"]
    assert test.x.shape[1:] == (28, 28, 1)
    assert (test.y == 0).sum() == 100 and (test.y == 1).sum() == 40
    assert set(test.kind[test.y == 1]) == {"dataset:fashion_mnist"}
    assert set(splits["train"].kind[splits["train"].y == 1]) == {"dataset:fashion_mnist"}
    assert splits["train"].x.shape[1:] == (28, 28, 1)


def test_match_images_resizes_and_converts():
    x = np.full((2, 8, 8, 3), 200, np.uint8)
    out = match_images(x, (4, 4), 1)
    assert out.shape == (2, 4, 4, 1) and out.dtype == np.uint8 and (out == 200).all()


def test_corrupted_protocol_marks_each_corrupted_test_image(patterns):
    cfg = data_cfg(protocol="corrupted", normal_classes="all", corruption={"fraction": 0.3},
                   val_anomaly_fraction=0.2, contamination=0.05)
    splits = make_splits(cfg, {"fashion_mnist": patterns}, seed=0)
    test = splits["test"]
    assert (test.y == 1).sum() == 90  # 30 % of 300
    kinds = set(test.kind[test.y == 1])
    assert kinds == {f"corruption:{t}" for t in ("invert", "noise", "interpolate", "overlap", "underscore", "dot")}
    changed = np.any(test.x != patterns.x_test, axis=(1, 2, 3))
    np.testing.assert_array_equal(changed, test.y == 1)  # exactly the corrupted images differ
    # the mask marks exactly the pixels each corruption changed; clean images have none
    np.testing.assert_array_equal(test.mask, np.any(test.x != patterns.x_test, axis=3))
    dots = test.kind == "corruption:dot"
    assert 0 < test.mask[dots].sum(axis=(1, 2)).max() <= 29  # a disc of radius <= 3
    assert splits["train"].mask is None
    np.testing.assert_array_equal(test.label, patterns.y_test)
    assert splits["val"].y.sum() >= 1 and splits["train"].y.sum() >= 1
    assert all(k.startswith("corruption:") for k in splits["train"].kind[splits["train"].y == 1])


def make_tree(root, sizes=(("Parasitized", 12), ("Uninfected", 30))):
    rng = np.random.default_rng(0)
    for name, n in sizes:
        (root / name).mkdir(parents=True)
        for i in range(n):
            size = int(rng.integers(40, 90))  # cell images come in many sizes
            img = rng.integers(0, 256, (size, size + 3, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / name / f"{name[:3]}_{i}.png")
    if (root / "Uninfected").is_dir():
        (root / "Uninfected" / "Thumbs.db").write_bytes(b"\x00\x01not an image")
    return root


def test_image_folder_is_read_resized_and_bad_files_are_named(tmp_path):
    root = make_tree(tmp_path / "cell_images")
    warnings = []
    images = load_image_folder(root, image_size=24, channels=3, warn=warnings.append)
    assert images.x.shape == (42, 24, 24, 3) and images.classes == ("Parasitized", "Uninfected")
    assert images.skipped == ["Uninfected/Thumbs.db"]
    assert warnings == ["note: skipped 1 hidden or system file(s) (e.g. Uninfected/Thumbs.db)"]
    (root / "Parasitized" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")  # hidden: counted the same way
    (root / "Parasitized" / "notes.txt").write_text("not an image")              # unreadable: warned by name
    warnings.clear()
    again = load_image_folder(root, image_size=24, channels=3, warn=warnings.append)
    assert sorted(again.skipped) == ["Parasitized/.DS_Store", "Parasitized/notes.txt", "Uninfected/Thumbs.db"]
    assert warnings == [f"warning: skipping {root / 'Parasitized/notes.txt'}: not a readable image (UnidentifiedImageError)",
                        "note: skipped 2 hidden or system file(s) (e.g. Parasitized/.DS_Store)"]
    gray = load_image_folder(root, image_size=16, channels=1, warn=lambda m: None)
    assert gray.x.shape == (42, 16, 16, 1)


def test_folder_protocol_splits_per_class(tmp_path):
    root = make_tree(tmp_path / "cells")
    images = load_image_folder(root, 16, 3, warn=lambda m: None)
    cfg = data_cfg(dataset="folder", protocol="folder", normal_classes=["Uninfected"],
                   folder={"root": str(root), "image_size": 16, "test_fraction": 0.25})
    splits = make_splits(cfg, {"folder": images}, seed=0)
    test = splits["test"]
    assert (test.y == 0).sum() == 8 and (test.y == 1).sum() == 3  # 25 % of 30 and of 12
    assert set(test.kind) == {"normal", "class:Parasitized"}
    assert len(splits["train"]) + len(splits["val"]) == 22 and splits["train"].y.sum() == 0
    with pytest.raises(OddpixError, match="no folder 'Healthy' with images"):
        make_splits(data_cfg(dataset="folder", protocol="folder", normal_classes=["Healthy"],
                             folder={"root": str(root)}), {"folder": images}, 0)


def test_folder_that_comes_split_is_used_as_split_or_merged(tmp_path):
    root = tmp_path / "chest"
    make_tree(root / "train", (("NORMAL", 20), ("PNEUMONIA", 6)))
    make_tree(root / "valid", (("NORMAL", 5), ("PNEUMONIA", 2)))
    make_tree(root / "test", (("NORMAL", 7), ("PNEUMONIA", 4)))
    images = load_image_folder(root, 16, 3, warn=lambda m: None)
    assert images.classes == ("NORMAL", "PNEUMONIA") and len(images.x) == 44  # not "classes: test, train, valid"
    folder = {"root": str(root), "image_size": 16}
    splits = make_splits(data_cfg(dataset="folder", protocol="folder", normal_classes=["NORMAL"], folder=folder),
                         {"folder": images}, seed=0)
    # use: the folder's own split, each image traced to its file
    assert all(s.startswith("test/") for s in splits["test"].source) and len(splits["test"]) == 11
    assert (splits["test"].y == 1).sum() == 4
    assert all(s.startswith("valid/NORMAL/") for s in splits["val"].source) and len(splits["val"]) == 5
    assert all(s.startswith("train/NORMAL/") for s in splits["train"].source) and len(splits["train"]) == 20
    # merge: pooled, then split per class by test_fraction
    merged = make_splits(data_cfg(dataset="folder", protocol="folder", normal_classes=["NORMAL"],
                                  folder={**folder, "given_split": "merge", "test_fraction": 0.25}),
                         {"folder": images}, seed=0)
    assert len(merged["test"]) == 8 + 3 and {s.split("/")[0] for s in merged["test"].source} > {"test"}
    assert len(merged["train"]) + len(merged["val"]) == 32 - 8
    (root / "val" / "NORMAL").mkdir(parents=True)  # val/ beside valid/: which one is the validation split?
    with pytest.raises(OddpixError, match="two of test, train, val, valid .* name the same split"):
        load_image_folder(root, 16, 3, warn=lambda m: None)
    with pytest.raises(ConfigError, match=r"data.folder.given_split: 'mix' is not a valid choice.*use, merge"):
        parse_params({"data": {"folder": {"given_split": "mix"}}})


def test_every_image_of_a_split_is_traced_to_its_source(patterns, tmp_path):
    cfg = data_cfg(normal_classes=[3])
    splits = make_splits(cfg, {"fashion_mnist": patterns}, seed=0)
    for name, split in splits.items():
        part, index = np.char.partition(np.char.partition(split.source, ":")[:, 2], ":")[:, [0, 2]].T
        assert set(part) == {"train" if name != "test" else "test"}
        original = (patterns.x_train if name != "test" else patterns.x_test)[index.astype(int)]
        np.testing.assert_array_equal(split.x, original)  # the source names the very image
    root = make_tree(tmp_path / "cells")
    images = load_image_folder(root, 16, 3, warn=lambda m: None)
    folder_splits = make_splits(data_cfg(dataset="folder", protocol="folder", normal_classes=["Uninfected"],
                                         folder={"root": str(root), "image_size": 16}), {"folder": images}, 0)
    test = folder_splits["test"]
    assert all((root / s).is_file() for s in test.source)
    np.testing.assert_array_equal(test.y == 1, np.char.startswith(test.source, "Parasitized/"))


def test_folder_errors(tmp_path):
    with pytest.raises(OddpixError, match="is not a folder"):
        load_image_folder(tmp_path / "nope", 16, 3)
    (tmp_path / "empty" / "A").mkdir(parents=True)
    (tmp_path / "empty" / "A" / "x.txt").write_text("hello")
    with pytest.raises(OddpixError, match="no readable images"):
        load_image_folder(tmp_path / "empty", 16, 3, warn=lambda m: None)


@pytest.mark.parametrize("raw, message", [
    ({"protocol": "folder"}, "data.protocol: protocol 'folder' and dataset 'folder' go together"),
    ({"dataset": "folder", "protocol": "folder", "normal_classes": ["a"]}, "data.folder.root: protocol 'folder' needs"),
    ({"dataset": "folder", "protocol": "folder", "normal_classes": [0], "folder": {"root": "x"}},
     "protocol 'folder' takes class folder names"),
    ({"protocol": "cross_dataset"}, "data.anomaly_dataset: protocol 'cross_dataset' needs"),
    ({"protocol": "cross_dataset", "anomaly_dataset": "fashion_mnist"}, "must differ from data.dataset"),
    ({"normal_classes": "all"}, "'all' leaves no anomalies"),
    ({"dataset": "emnist_letters", "normal_classes": [26]}, "26 is not a class of emnist_letters; valid choices: 0..25"),
    ({"corruption": {"types": ["invert", "blur"]}}, "data.corruption.types: 'blur' is not a corruption"),
    ({"corruption": {"dot_radius": [3, 1]}}, "data.corruption.dot_radius: expected [low, high]"),
    ({"contamination": 0.7}, "data.contamination: 0.7 is out of range"),
])
def test_protocol_params_are_validated(raw, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        parse_params({"data": raw})


def test_summary_counts(pattern_splits):
    summary = summarize(pattern_splits)
    assert summary["train_n"] == 90 and summary["val_n"] == 10
    assert summary["test_normal"] == 30 and summary["test_anomaly"] == 270
    assert summary["test_kind_class_7"] == 30 and summary["test_kind_normal"] == 30


def test_missing_normal_class_is_explained(patterns):
    without_2 = type(patterns)(patterns.name, patterns.x_train[patterns.y_train != 2],
                               patterns.y_train[patterns.y_train != 2], patterns.x_test, patterns.y_test, "")
    with pytest.raises(OddpixError, match="class 2 has no training images"):
        make_splits(data_cfg(normal_classes=[2]), {"fashion_mnist": without_2}, 0)


def test_unsupervised_models_early_stop_on_normal_validation_images_only():
    import torch

    from oddpix.models import FitData

    data = FitData(torch.zeros(4, 1, 2, 2), torch.arange(3.0).view(3, 1, 1, 1).expand(3, 1, 2, 2),
                   val_y=torch.tensor([0, 1, 0]))
    assert data.normal_val_x()[:, 0, 0, 0].tolist() == [0.0, 2.0]


def test_photos_of_one_object_stay_in_one_split(tmp_path):
    """data.folder.groups: several photos of one tile never straddle train/val/test; anomalies: test tests every
    anomalous image; an images/ + masks/ root reads its classes from images/ and its masks from masks/."""
    root = tmp_path / "tiles"
    make_tree(root / "images", (("Free", 60), ("Crack", 9)))
    (root / "masks" / "Crack").mkdir(parents=True)
    mask = np.zeros((50, 53), dtype=np.uint8)
    mask[10:20, 5:40] = 255
    Image.fromarray(mask).save(root / "masks" / "Crack" / "Cra_0.png")
    images = load_image_folder(root, 16, 1, warn=lambda m: None)
    assert images.classes == ("Crack", "Free") and images.files[0] == "images/Crack/Cra_0.png"
    assert images.masks[0].any() and not images.masks[1:].any()  # the mask found beside, not under, images/
    groups = root / "groups.csv"  # six photos per tile, as six lightings of one magnetic tile
    groups.write_text("file,group\n" + "".join(f"images/Free/Fre_{i}.png,tile{i // 6}\n" for i in range(60)))
    cfg = data_cfg(dataset="folder", protocol="folder", normal_classes=["Free"],
                   folder={"root": str(root), "image_size": 16, "channels": 1, "test_fraction": 0.2,
                           "anomalies": "test", "groups": str(groups)})
    splits = make_splits(cfg, {"folder": images}, seed=3)
    tile = {name: {int(s.rsplit("_", 1)[1].split(".")[0]) // 6 for s in split.source if "/Free/" in s}
            for name, split in splits.items()}
    assert not (tile["train"] & tile["test"]) and not (tile["train"] & tile["val"]) and not (tile["val"] & tile["test"])
    assert (splits["test"].y == 0).sum() == 12 and (splits["test"].y == 1).sum() == 9  # 2 whole tiles; every crack
    assert len(splits["val"]) % 6 == 0 and len(splits["val"]) > 0
    ungrouped = make_splits(data_cfg(dataset="folder", protocol="folder", normal_classes=["Free"],
                                     folder={"root": str(root), "test_fraction": 0.2}), {"folder": images}, seed=3)
    assert (ungrouped["test"].y == 1).sum() == 2  # split like the normals: 20 % of 9
    with pytest.raises(ConfigError, match=r"data.contamination: .*anomalies: test puts every one in it"):
        parse_params({"data": {"dataset": "folder", "protocol": "folder", "normal_classes": ["Free"],
                               "contamination": 0.05, "folder": {"root": str(root), "anomalies": "test"}}})
    groups.write_text("name,tile\nx,1\n")
    with pytest.raises(OddpixError, match="data.folder.groups: .* needs the columns file and group"):
        make_splits(cfg, {"folder": images}, seed=3)


def _png(path, value=None, size=(20, 20), rng=np.random.default_rng(1)):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = rng.integers(0, 256, (*size, 3), dtype=np.uint8) if value is None else np.full(size, value, np.uint8)
    Image.fromarray(img).save(path)


def test_the_mvtec_ad_layout_is_read_as_it_comes(tmp_path):
    root = tmp_path / "bottle"
    for i in range(12):
        _png(root / "train/good" / f"{i:03d}.png")
    for i in range(3):
        _png(root / "test/good" / f"{i:03d}.png")
        _png(root / "test/crack" / f"{i:03d}.png")
        mask = np.zeros((20, 20), np.uint8)
        mask[2:6, 3:8] = 255
        Image.fromarray(mask).save(_mkdir(root / "ground_truth/crack") / f"{i:03d}_mask.png")
    images = load_image_folder(root, 16, 3, warn=lambda m: None)
    assert images.classes == ("crack", "good") and sorted(set(images.part)) == ["test", "train"]
    crack = images.y == images.classes.index("crack")
    assert crack.sum() == 3 and images.masks[crack].any(axis=(1, 2)).all() and not images.masks[~crack].any()
    splits = make_splits(data_cfg(dataset="folder", protocol="folder", normal_classes=["good"],
                                  folder={"root": str(root), "image_size": 16}), {"folder": images}, seed=0)
    assert len(splits["test"]) == 6 and splits["test"].y.sum() == 3 and len(splits["train"]) + len(splits["val"]) == 12
    assert "ground_truth" not in " ".join(images.files)


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_the_mvtec_3d_layout_reads_rgb_images_and_gt_masks_only(tmp_path):
    root = tmp_path / "cookie"
    for split, cls, n in (("train", "good", 10), ("validation", "good", 4), ("test", "good", 3), ("test", "hole", 3)):
        for i in range(n):
            _png(root / split / cls / "rgb" / f"{i:03d}.png")
            (_mkdir(root / split / cls / "xyz") / f"{i:03d}.tiff").write_bytes(b"II*\x00 not read")
            if split == "test":
                _png(root / split / cls / "gt" / f"{i:03d}.png", value=255 if cls == "hole" else 0)
    images = load_image_folder(root, 16, 3, warn=lambda m: pytest.fail(f"warned: {m}"))
    assert len(images.y) == 20 and all("/rgb/" in f for f in images.files)
    assert list(np.unique(images.part)) == ["test", "train", "val"]
    hole = images.y == images.classes.index("hole")
    assert images.masks[hole].all() and not images.masks[~hole].any()


def test_a_flat_folder_with_a_labels_csv(tmp_path):
    root = tmp_path / "cells"
    for i in range(8):
        _png(root / "images" / f"cell{i:04d}.png")
    (root / "labels.csv").write_text("file,label,extra\n" + "".join(
        f"images/cell{i:04d}.png,{'defect' if i < 2 else 'ok'},x\n" for i in range(8)) + "images/gone.png,ok,x\n")
    warnings = []
    images = load_image_folder(root, 16, 1, warn=warnings.append)  # labels.csv found by itself
    assert images.classes == ("defect", "ok") and list(images.y) == [0, 0, 1, 1, 1, 1, 1, 1]
    assert images.files[0] == "images/cell0000.png" and any("images/gone.png" in w for w in warnings)
    (root / "elpv_labels.txt").write_text("".join(f"images/cell{i:04d}.png  {1.0 if i % 2 else 0.0}  mono\n"
                                                  for i in range(8)))  # no header, spaces (as ELPV ships it)
    spaced = load_image_folder(root, 16, 1, warn=lambda m: None, labels_csv="elpv_labels.txt")
    assert spaced.classes == ("0.0", "1.0") and list(spaced.y) == [0, 1] * 4
    with pytest.raises(OddpixError, match="no file .* names is under"):
        (root / "bad.csv").write_text("file,label\nnowhere.png,ok\n")
        load_image_folder(root, 16, 1, labels_csv=root / "bad.csv")
    raw = parse_params({"data": {"folder": {"labels": "elpv_labels.txt"}}})
    assert raw.data.folder.labels == "elpv_labels.txt"

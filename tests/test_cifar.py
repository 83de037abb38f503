"""CIFAR-10 as a dataset: the original archive, its batches, an image-folder copy; checksums; a safe reader."""

import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest

from oddpix.data.cifar import CIFAR10, parse_batch
from oddpix.data.sources import load_dataset
from oddpix.errors import OddpixError

PER_BATCH = 12


def _batches(seed=0, per=PER_BATCH):
    """name -> (pickled bytes, images N x 32 x 32 x 3, labels) of small batches in CIFAR's format."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in CIFAR10.batch_files:
        labels = rng.integers(0, 10, per)
        images = rng.integers(0, 256, (per, 32, 32, 3), dtype=np.uint8)
        images[..., 0] = labels[:, None, None] * 20  # the red channel tells the class
        data = images.transpose(0, 3, 1, 2).reshape(per, 3072)
        blob = pickle.dumps({b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": data,
                             b"filenames": [b"x.png"] * per})
        out[name] = (blob, images, labels)
    return out


def _write_md5sums(folder, names_blobs):
    (folder / "MD5SUMS").write_text("".join(f"{hashlib.md5(b).hexdigest()}  {n}\n" for n, b in names_blobs))


def test_cifar_reads_the_batches_folder_and_the_archive_alike(tmp_path):
    batches = _batches()
    unpacked = tmp_path / "a" / "cifar-10" / "cifar-10-batches-py"
    unpacked.mkdir(parents=True)
    for name, (blob, _, _) in batches.items():
        (unpacked / name).write_bytes(blob)
    _write_md5sums(unpacked.parent, [(f"cifar-10-batches-py/{n}", b) for n, (b, _, _) in batches.items()])
    a = load_dataset("cifar10", mirror=str(tmp_path / "a"), checksums="mirror", download=False)
    assert a.x_train.shape == (5 * PER_BATCH, 32, 32, 3) and a.x_test.shape == (PER_BATCH, 32, 32, 3)
    assert np.array_equal(a.x_train[:PER_BATCH], batches["data_batch_1"][1])  # channel-last, pixels intact
    assert np.array_equal(a.y_test, batches["test_batch"][2])

    archive = tmp_path / "b" / "cifar-10" / "cifar-10-python.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        for name, (blob, _, _) in batches.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(OddpixError, match="does not match"):  # not the published archive
        load_dataset("cifar10", mirror=str(tmp_path / "b"), checksums="original", download=False)
    b = load_dataset("cifar10", mirror=str(tmp_path / "b"), checksums="off", download=False)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_train, b.y_train)

    (unpacked / "data_batch_3").write_bytes(batches["data_batch_2"][0])  # a wrong file
    with pytest.raises(OddpixError, match="data_batch_3: MD5"):
        load_dataset("cifar10", mirror=str(tmp_path / "a"), checksums="mirror", download=False)
    with pytest.raises(OddpixError, match="does not match the published"):
        load_dataset("cifar10", mirror=str(tmp_path / "a"), checksums="original", download=False)


def test_cifar_reads_an_image_folder_copy_with_the_classes_by_name(tmp_path):
    from PIL import Image

    root = tmp_path / "m" / "cifar-10"
    rng = np.random.default_rng(1)
    for part, n in (("train", 3), ("test", 2)):
        for k, name in enumerate(CIFAR10.classes):
            (root / part / name).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(img).save(root / part / name / f"{i:04d}.png")
    data = load_dataset("cifar10", mirror=str(tmp_path / "m"), download=False)
    assert data.x_train.shape == (30, 32, 32, 3) and data.x_test.shape == (20, 32, 32, 3)
    assert np.bincount(data.y_train).tolist() == [3] * 10 and "image-folder copy" in data.source
    saved = np.asarray(Image.open(root / "train" / "cat" / "0001.png"))
    assert any(np.array_equal(saved, x) for x in data.x_train[data.y_train == 3])  # cat is class 3
    (root / "test" / "plane").mkdir()
    with pytest.raises(OddpixError, match="plane"):
        load_dataset("cifar10", mirror=str(tmp_path / "m"), download=False)


def test_cifar_batches_cannot_run_code_and_a_missing_copy_says_what_to_do(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(OddpixError, match="not a readable CIFAR batch"):
        parse_batch(pickle.dumps({b"data": Boom()}), "crafted")
    with pytest.raises(OddpixError, match="3072"):
        parse_batch(pickle.dumps({b"data": np.zeros((2, 5), np.uint8), b"labels": [0, 1]}), "odd")
    with pytest.raises(OddpixError, match=r"cifar-10-python\.tar\.gz.*ODDPIX_DATA_MIRROR"):
        load_dataset("cifar10", mirror=str(tmp_path), download=False)


def test_cifar_classes_by_name_and_a_run_end_to_end(tmp_path):
    from conftest import TINY_MODELS
    from oddpix import pipeline
    from oddpix.config import parse_params
    from oddpix.errors import ConfigError

    params = {"device": "cpu", "model": "knn", "models": TINY_MODELS,
              "data": {"dataset": "cifar10", "normal_classes": ["Airplane"], "mirror": str(tmp_path / "m"),
                       "checksums": "off", "download": False}}
    assert parse_params(params).data.normal_classes == [0]
    with pytest.raises(ConfigError, match="airplane, automobile"):
        parse_params({**params, "data": {**params["data"], "normal_classes": ["plane"]}})
    unpacked = tmp_path / "m" / "cifar-10" / "cifar-10-batches-py"
    unpacked.mkdir(parents=True)
    for name, (blob, _, _) in _batches(2, per=100).items():
        (unpacked / name).write_bytes(blob)
    metrics = pipeline.run(parse_params(params), tmp_path / "run")
    assert metrics["auroc"] > 0.9  # the red channel gives the class away

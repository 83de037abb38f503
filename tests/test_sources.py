import gzip

import numpy as np
import pytest

from oddpix.data.idx import encode_idx, parse_idx, read_idx_folder
from oddpix.data.cifar import BatchDataset
from oddpix.data.sources import DATASETS, MIRROR_ENV, load_dataset
from oddpix.data.synthetic import write_idx_folder
from oddpix.errors import OddpixError


def test_idx_round_trip():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    blob = encode_idx(images)
    assert blob[:4] == bytes([0, 0, 8, 3])
    assert int.from_bytes(blob[4:8], "big") == 2
    np.testing.assert_array_equal(parse_idx(blob), images)


@pytest.mark.parametrize("blob, message", [
    (b"\x01\x02\x08\x01", "bad magic"),
    (bytes([0, 0, 0x0D, 1]) + (3).to_bytes(4, "big") + b"abc", "only unsigned-byte"),
    (bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + b"abc", "truncated"),
])
def test_bad_idx_is_reported(blob, message):
    with pytest.raises(OddpixError, match=message):
        parse_idx(blob, "x")


def test_mirror_folder_is_read_and_verified(mirror, patterns):
    data = load_dataset("fashion_mnist", mirror=str(mirror), checksums="mirror", download=False)
    assert data.x_train.shape == (1000, 28, 28, 1) and data.x_train.dtype == np.uint8
    np.testing.assert_array_equal(data.x_test, patterns.x_test)
    np.testing.assert_array_equal(data.y_train, patterns.y_train)
    assert data.source == str(mirror / "fashion-mnist")


def test_environment_variable_mirror(mirror, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    data = load_dataset("fashion_mnist", checksums="mirror", download=False)
    assert len(data.y_test) == 300


def test_unpacked_files_work_too(tmp_path, patterns):
    folder = write_idx_folder(patterns, tmp_path / "fashion-mnist", gz=False)
    assert not list(folder.glob("*.gz"))
    assert read_idx_folder(DATASETS["fashion_mnist"], folder, "mirror").x_train.shape[0] == 1000


def test_original_checksums_reject_files_that_are_not_the_originals(mirror):
    with pytest.raises(OddpixError, match="does not match the published f4a8712d7a061bf5bd6d2ca38dc4d50a"):
        load_dataset("fashion_mnist", mirror=str(mirror), checksums="original", download=False)


def test_corrupted_file_fails_the_mirror_checksum(mirror):
    path = mirror / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz"
    blob = bytearray(gzip.decompress(path.read_bytes()))
    blob[-1] ^= 1
    path.write_bytes(gzip.compress(bytes(blob)))
    with pytest.raises(OddpixError, match="t10k-labels-idx1-ubyte: MD5 .* does not match"):
        load_dataset("fashion_mnist", mirror=str(mirror), checksums="mirror", download=False)
    # with the check off the (altered) data loads
    assert load_dataset("fashion_mnist", mirror=str(mirror), checksums="off", download=False) is not None


def test_nothing_found_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    with pytest.raises(OddpixError) as info:
        load_dataset("mnist", mirror=str(tmp_path / "empty"), download=False)
    text = str(info.value)
    assert "could not get MNIST" in text
    assert f"${MIRROR_ENV} (not set)" in text
    assert "data.download is false" in text
    assert f"export {MIRROR_ENV}=<folder>" in text
    assert "train-images-idx3-ubyte.gz" in text


def test_failed_download_is_reported_without_traceback(tmp_path, monkeypatch):
    import oddpix.data.sources as sources

    def offline(spec, cache_dir):
        raise OSError("Name or service not known")

    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.setattr(sources, "_download", offline)
    with pytest.raises(OddpixError, match=r"torchvision download \(OSError: Name or service not known\)"):
        load_dataset("mnist", download=True, cache_dir=tmp_path)


def test_every_dataset_has_published_checksums_for_its_files():
    for spec in DATASETS.values():
        if isinstance(spec, BatchDataset):  # CIFAR: the archive and every batch
            assert len(spec.archive[1]) == 32 and all(len(m) == 32 for _, m in (*spec.train, *spec.test))
            continue
        covered = set(spec.md5) | set(spec.gz_md5)
        assert covered == set(spec.files) or spec.archive is not None, spec.name
        assert all(len(v) == 32 for v in (*spec.md5.values(), *spec.gz_md5.values()))


def test_kmnist_is_checked_against_the_published_gz_sums(tmp_path, patterns):
    write_idx_folder(patterns, tmp_path / "kmnist")
    with pytest.raises(OddpixError, match=r"does not match the published \(.gz\) bdb82020997e1d708af4cf47b453dcf7"):
        load_dataset("kmnist", mirror=str(tmp_path), download=False)
    assert load_dataset("kmnist", mirror=str(tmp_path), checksums="mirror", download=False).name == "kmnist"


def _emnist_archive(folder, x_train, y_train, x_test, y_test):
    import zipfile

    folder.mkdir(parents=True)
    spec = DATASETS["emnist_letters"]
    with zipfile.ZipFile(folder / "gzip.zip", "w") as zf:
        for name, array in zip(spec.files, (x_train, y_train, x_test, y_test)):
            zf.writestr(f"gzip/{name}.gz", gzip.compress(encode_idx(array)))


def test_emnist_from_its_archive_is_transposed_and_relabelled(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    y = np.array([1, 2, 3, 26, 5, 1], dtype=np.uint8)  # EMNIST letters: a = 1 ... z = 26
    _emnist_archive(tmp_path / "emnist", x, y, x[:3], y[:3])
    with pytest.raises(OddpixError, match="gzip.zip: MD5 .* does not match the published 58c8d27c"):
        load_dataset("emnist_letters", mirror=str(tmp_path), download=False)
    data = load_dataset("emnist_letters", mirror=str(tmp_path), checksums="off", download=False)
    np.testing.assert_array_equal(data.x_train[..., 0], x.transpose(0, 2, 1))  # upright letters
    assert data.y_train.tolist() == [0, 1, 2, 25, 4, 0]  # 0 = a
    assert DATASETS["emnist_letters"].classes[25] == "z" and DATASETS["emnist_balanced"].n_classes == 47

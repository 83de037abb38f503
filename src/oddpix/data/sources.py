"""Where images come from: local mirrors, Debian's dataset packages, or a torchvision download.

The MNIST-family datasets are read from the original IDX files (gzip or unpacked). Every unpacked file
is checked against its MD5 sum before use:

* ``checksums: original`` - the published originals' sums (the table below); the safe default;
* ``checksums: mirror``   - the ``MD5SUMS.uncompressed`` (or ``MD5SUMS``) file inside the mirror folder,
  for derived or home-made datasets in the same format;
* ``checksums: off``      - no check.

Search order: ``data.mirror`` from params, then ``$ODDPIX_DATA_MIRROR`` (both folders that hold one
sub-folder per dataset: ``mnist/``, ``fashion-mnist/``), then system folders such as
``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``), then a torchvision download
into ``cache_dir`` when ``data.download`` is true.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import OddpixError

MIRROR_ENV = "ODDPIX_DATA_MIRROR"

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class IdxDataset:
    """An MNIST-format dataset: four IDX files, 10 classes."""

    name: str
    folder: str                 # sub-folder in a mirror
    title: str
    torchvision_class: str
    classes: tuple[str, ...]
    md5: dict[str, str]         # unpacked file name -> MD5 of the published original
    system_dirs: tuple[str, ...] = ()
    apt_package: Optional[str] = None


DATASETS: dict[str, IdxDataset] = {
    "mnist": IdxDataset(
        name="mnist", folder="mnist", title="MNIST", torchvision_class="MNIST",
        classes=tuple(str(i) for i in range(10)),
        md5={
            "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
            "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
            "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        },
        system_dirs=("/usr/share/datasets/mnist",),
    ),
    "fashion_mnist": IdxDataset(
        name="fashion_mnist", folder="fashion-mnist", title="Fashion-MNIST", torchvision_class="FashionMNIST",
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"),
        md5={
            "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
        },
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        apt_package="dataset-fashion-mnist",
    ),
}


@dataclass
class RawDataset:
    """Pixels as uint8 N x H x W x C and integer labels, for the train and test parts."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    def arrays(self) -> dict[str, np.ndarray]:
        return {"x_train": self.x_train, "y_train": self.y_train, "x_test": self.x_test, "y_test": self.y_test}


# --------------------------------------------------------------------------------------------------
# IDX format


def parse_idx(data: bytes, what: str = "IDX data") -> np.ndarray:
    """Decode an IDX file (unsigned bytes): magic 0x0000 08 NDIM, big-endian dims, then the values."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise OddpixError(f"{what} is not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise OddpixError(f"{what}: only unsigned-byte IDX files are supported (type code {data[2]:#x})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise OddpixError(f"{what} is truncated (header)")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(dims)) if dims else 0
    if len(data) - header != count:
        raise OddpixError(f"{what} is truncated or padded: {len(data) - header} values for shape {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def encode_idx(array: np.ndarray) -> bytes:
    """The inverse of :func:`parse_idx` (used by tests and for writing fixtures)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def _read_member(folder: Path, name: str) -> Optional[bytes]:
    """The unpacked bytes of ``name`` in ``folder`` (plain or ``.gz``), or None if neither exists."""
    plain, packed = folder / name, folder / f"{name}.gz"
    if plain.is_file():
        return plain.read_bytes()
    if packed.is_file():
        try:
            return gzip.decompress(packed.read_bytes())
        except (OSError, EOFError) as exc:
            raise OddpixError(f"{packed} is not a readable gzip file ({exc}); replace it with the original") from None
    return None


def _mirror_sums(folder: Path) -> dict[str, str]:
    for name in ("MD5SUMS.uncompressed", "MD5SUMS"):
        path = folder / name
        if path.is_file():
            sums = {}
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2:
                    sums[parts[1].lstrip("*")] = parts[0].lower()
            return sums
    return {}


def read_idx_folder(spec: IdxDataset, folder: Path, checksums: str = "original") -> Optional[RawDataset]:
    """Read the four IDX files from ``folder``; None when the folder does not hold them all."""
    if not folder.is_dir():
        return None
    blobs = {}
    for name in IDX_FILES:
        blob = _read_member(folder, name)
        if blob is None:
            return None
        blobs[name] = blob
    if checksums != "off":
        expected = spec.md5 if checksums == "original" else _mirror_sums(folder)
        if not expected:
            raise OddpixError(f"data.checksums is 'mirror' but {folder} has no MD5SUMS.uncompressed file; "
                              "add one (md5sum of the unpacked files) or set data.checksums: off")
        for name, blob in blobs.items():
            want = expected.get(name)
            got = hashlib.md5(blob).hexdigest()
            if want is None:
                raise OddpixError(f"no MD5 sum listed for {name} in {folder}")
            if got != want:
                raise OddpixError(
                    f"{folder / name}: MD5 {got} does not match the expected {want} "
                    f"(data.checksums: {checksums}); the file is corrupt or not the original {spec.title} - "
                    "replace it, or set data.checksums to 'mirror' for a home-made dataset")
    x_train = parse_idx(blobs["train-images-idx3-ubyte"], f"{folder}/train-images")
    y_train = parse_idx(blobs["train-labels-idx1-ubyte"], f"{folder}/train-labels")
    x_test = parse_idx(blobs["t10k-images-idx3-ubyte"], f"{folder}/t10k-images")
    y_test = parse_idx(blobs["t10k-labels-idx1-ubyte"], f"{folder}/t10k-labels")
    for x, y, part in ((x_train, y_train, "train"), (x_test, y_test, "t10k")):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise OddpixError(f"{folder}: {part} images {x.shape} and labels {y.shape} do not match")
    return RawDataset(spec.name, x_train[..., None], y_train.astype(np.int64), x_test[..., None],
                      y_test.astype(np.int64), source=str(folder))


def candidate_folders(spec: IdxDataset, mirror: Optional[str]) -> list[tuple[str, Path]]:
    """(description, folder) pairs in search order."""
    found: list[tuple[str, Path]] = []
    if mirror:
        found.append(("data.mirror", Path(mirror).expanduser() / spec.folder))
    env = os.environ.get(MIRROR_ENV)
    if env:
        found.append((f"${MIRROR_ENV}", Path(env).expanduser() / spec.folder))
    found.extend(("system folder", Path(d)) for d in spec.system_dirs)
    return found


def _download(spec: IdxDataset, cache_dir: Path) -> Path:
    """Download with torchvision into ``cache_dir``; returns the folder holding the unpacked IDX files."""
    import torchvision

    dataset_cls = getattr(torchvision.datasets, spec.torchvision_class)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        dataset_cls(root=str(cache_dir), train=train, download=True)
    return cache_dir / spec.torchvision_class / "raw"


def load_idx_dataset(name: str, mirror: Optional[str] = None, checksums: str = "original",
                     download: bool = True, cache_dir: str | Path = "data/downloads") -> RawDataset:
    """Find, verify and read dataset ``name``; a readable error lists what was tried and what to do."""
    spec = DATASETS[name]
    tried: list[str] = []
    for what, folder in candidate_folders(spec, mirror):
        data = read_idx_folder(spec, folder, checksums)
        if data is not None:
            return data
        tried.append(f"{what} {folder} (no {spec.title} IDX files there)")
    if not os.environ.get(MIRROR_ENV):
        tried.append(f"${MIRROR_ENV} (not set)")
    if download:
        try:
            folder = _download(spec, Path(cache_dir))
        except Exception as exc:  # network errors come in many types; all mean the same to the user
            tried.append(f"torchvision download ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
        else:
            data = read_idx_folder(spec, folder, "original" if checksums != "off" else "off")
            if data is not None:
                data.source = f"torchvision download ({folder})"
                return data
            tried.append(f"torchvision download ({folder} is incomplete)")
    else:
        tried.append("torchvision download (off: data.download is false)")
    apt = f", or `apt install {spec.apt_package}`" if spec.apt_package else ""
    raise OddpixError(
        f"could not get {spec.title}. Tried: " + "; ".join(tried) + ". "
        f"To fix: put the four original files ({', '.join(f + '.gz' for f in IDX_FILES)}) into "
        f"<folder>/{spec.folder}/ and `export {MIRROR_ENV}=<folder>` (or set data.mirror in params.yaml)"
        f"{apt}, or connect to the internet with data.download: true.")

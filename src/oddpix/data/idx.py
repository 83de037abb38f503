"""MNIST-format (IDX) datasets on disk: what one is (:class:`IdxDataset`), the IDX format, and reading the
four files of a folder (gzip or unpacked; EMNIST also straight from its ``gzip.zip``) with their MD5 checks.

Every file is checked against an MD5 sum before use:

* ``checksums: original`` - the published originals' sums (the table in ``sources.py``: of the unpacked
  files, of the ``.gz`` files where only those are published, or of EMNIST's archive); the safe default;
* ``checksums: mirror``   - the ``MD5SUMS.uncompressed`` (or ``MD5SUMS``) file inside the mirror folder,
  for derived or home-made datasets in the same format;
* ``checksums: off``      - no check.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import OddpixError

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class IdxDataset:
    """An MNIST-format dataset: four IDX files (train images, train labels, test images, test labels)."""

    name: str
    folder: str                 # sub-folder in a mirror
    title: str
    torchvision_class: str
    classes: tuple[str, ...]
    md5: dict[str, str] = field(default_factory=dict)     # unpacked file name -> MD5 of the original
    gz_md5: dict[str, str] = field(default_factory=dict)  # file name (without .gz) -> MD5 of the .gz
    files: tuple[str, str, str, str] = IDX_FILES
    system_dirs: tuple[str, ...] = ()
    apt_package: Optional[str] = None
    torchvision_kwargs: dict = field(default_factory=dict)
    archive: Optional[tuple[str, str, str]] = None  # (file in the mirror folder, its MD5, member folder)
    transpose: bool = False     # EMNIST stores images transposed
    label_offset: int = 0       # EMNIST letters are labelled 1..26

    @property
    def n_classes(self) -> int:
        return len(self.classes)


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
    count = math.prod(dims) if dims else 0  # Python integers: a crafted header cannot overflow the check
    if len(data) - header != count:
        raise OddpixError(f"{what} is truncated or padded: {len(data) - header} values for shape {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def encode_idx(array: np.ndarray) -> bytes:
    """The inverse of :func:`parse_idx` (used by tests and for writing fixtures)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def _read_member(folder: Path, name: str, archive_members: Optional[dict[str, bytes]] = None
                 ) -> Optional[tuple[bytes, Optional[bytes]]]:
    """(unpacked bytes, the .gz bytes if it came from one) of ``name``; None if it is not there."""
    plain, packed = folder / name, folder / f"{name}.gz"
    raw_gz = None
    if plain.is_file():
        return plain.read_bytes(), None
    if packed.is_file():
        raw_gz = packed.read_bytes()
    elif archive_members is not None and f"{name}.gz" in archive_members:
        raw_gz = archive_members[f"{name}.gz"]
    if raw_gz is None:
        return None
    try:
        return _gunzip(raw_gz, packed), raw_gz
    except (OSError, EOFError, zlib.error) as exc:
        raise OddpixError(f"{packed} is not a readable gzip file ({exc}); replace it with the original") from None


MAX_UNPACKED = 2 * 1024 ** 3  # the largest IDX file oddpix unpacks (EMNIST's largest is about 0.55 GB)


def _gunzip(data: bytes, where: Path) -> bytes:
    """gzip.decompress with a bound on the output, so a crafted file cannot fill the memory."""
    out = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    unpacked = out.decompress(data, MAX_UNPACKED + 1)
    if len(unpacked) > MAX_UNPACKED:
        raise OddpixError(f"{where} unpacks to more than {MAX_UNPACKED // 1024 ** 3} GB; it is not an IDX file")
    if not out.eof:
        raise EOFError("compressed file ended before the end-of-stream marker was reached")
    return unpacked


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


def _archive_members(spec: IdxDataset, folder: Path, checksums: str) -> Optional[dict[str, bytes]]:
    """The ``.gz`` members of the dataset's archive in ``folder`` (EMNIST's gzip.zip), MD5-checked."""
    import zipfile

    if spec.archive is None or not (folder / spec.archive[0]).is_file():
        return None
    path = folder / spec.archive[0]
    if checksums == "original":
        got = _md5_file(path)
        if got != spec.archive[1]:
            raise OddpixError(f"{path}: MD5 {got} does not match the published {spec.archive[1]}; the archive is "
                              "corrupt or not the original - download it again")
    wanted = {f"{spec.archive[2]}/{name}.gz" for name in spec.files}
    try:
        with zipfile.ZipFile(path) as zf:
            return {m.rsplit("/", 1)[-1]: zf.read(m) for m in zf.namelist() if m in wanted}
    except zipfile.BadZipFile:
        raise OddpixError(f"{path} is not a readable zip archive; download it again") from None


def _md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(spec: IdxDataset, folder: Path, name: str, blob: bytes, gz_blob: Optional[bytes], checksums: str,
            mirror_sums: dict[str, str], from_archive: bool) -> None:
    if checksums == "off":
        return
    if checksums == "mirror":
        if not mirror_sums:
            raise OddpixError(f"data.checksums is 'mirror' but {folder} has no MD5SUMS.uncompressed file; "
                              "add one (md5sum of the unpacked files) or set data.checksums: off")
        want, got, what = mirror_sums.get(name), hashlib.md5(blob).hexdigest(), "listed"
        if want is None:
            raise OddpixError(f"no MD5 sum listed for {name} in {folder}/MD5SUMS.uncompressed")
    elif name in spec.md5:
        want, got, what = spec.md5[name], hashlib.md5(blob).hexdigest(), "published"
    elif gz_blob is not None and name in spec.gz_md5 and not from_archive:
        want, got, what = spec.gz_md5[name], hashlib.md5(gz_blob).hexdigest(), "published (.gz)"
    elif from_archive:
        return  # the whole archive was checked against its published MD5
    else:
        raise OddpixError(f"{folder / name}: no published MD5 sum exists for this form of {spec.title} "
                          f"(known: {'the .gz files' if spec.gz_md5 else spec.archive[0] if spec.archive else 'none'}); "
                          "provide those, or set data.checksums to 'mirror' (with an MD5SUMS.uncompressed file) or 'off'")
    if got != want:
        raise OddpixError(
            f"{folder / name}: MD5 {got} does not match the {what} {want} (data.checksums: {checksums}); "
            f"the file is corrupt or not the original {spec.title} - replace it, or set data.checksums to "
            "'mirror' for a home-made dataset")


def read_idx_folder(spec: IdxDataset, folder: Path, checksums: str = "original") -> Optional[RawDataset]:
    """Read the four IDX files from ``folder``; None when the folder does not hold them all."""
    if not folder.is_dir():
        return None
    members = None
    if not all((folder / n).is_file() or (folder / f"{n}.gz").is_file() for n in spec.files):
        members = _archive_members(spec, folder, checksums)
    sums = _mirror_sums(folder) if checksums == "mirror" else {}
    blobs = []
    for name in spec.files:
        found = _read_member(folder, name, members)
        if found is None:
            return None
        blob, gz_blob = found
        from_archive = members is not None and not (folder / name).is_file() and not (folder / f"{name}.gz").is_file()
        _verify(spec, folder, name, blob, gz_blob, checksums, sums, from_archive)
        blobs.append(blob)
    x_train = parse_idx(blobs[0], f"{folder}/{spec.files[0]}")
    y_train = parse_idx(blobs[1], f"{folder}/{spec.files[1]}")
    x_test = parse_idx(blobs[2], f"{folder}/{spec.files[2]}")
    y_test = parse_idx(blobs[3], f"{folder}/{spec.files[3]}")
    for x, y, part in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise OddpixError(f"{folder}: {part} images {x.shape} and labels {y.shape} do not match")
    if spec.transpose:
        x_train, x_test = np.ascontiguousarray(x_train.transpose(0, 2, 1)), np.ascontiguousarray(x_test.transpose(0, 2, 1))
    y_train = y_train.astype(np.int64) - spec.label_offset
    y_test = y_test.astype(np.int64) - spec.label_offset
    return RawDataset(spec.name, x_train[..., None], y_train, x_test[..., None], y_test, source=str(folder))

"""CIFAR-10 on disk (:data:`CIFAR10`): the original Python archive ``cifar-10-python.tar.gz``, its unpacked
``cifar-10-batches-py/`` (or the batch files themselves), or an image-folder copy (``train/<class>/`` and
``test/<class>/`` of PNG or JPEG files, the class folders named as CIFAR-10's classes).

The archive and the batches are checked against the published MD5 sums (``data.checksums: original``, as
torchvision checks them), against the folder's ``MD5SUMS`` (``mirror``) or not at all (``off``). An
image-folder copy has no published sums: it is read as it is, and its source says so (JPEG copies also
differ a little from the originals' pixels). The batches are pickles; they are read by an unpickler that
builds only what CIFAR's batches hold (dicts, lists, strings, bytes and numpy arrays), so a crafted file
cannot run code.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import OddpixError
from .idx import RawDataset, _md5_file, _mirror_sums

MAX_MEMBER = 400 * 1024 ** 2  # the largest batch file read (CIFAR-10's are about 31 MB)


@dataclass(frozen=True)
class BatchDataset:
    """A dataset in CIFAR's Python format: pickled batches of ``data`` (N x 3072 bytes, channel-major 32x32)
    and ``labels``, in an archive or unpacked."""

    name: str
    folder: str                          # sub-folder in a mirror
    title: str
    torchvision_class: str
    classes: tuple[str, ...]
    archive: tuple[str, str]             # (archive file name, its published MD5)
    member_folder: str                   # the folder inside the archive
    train: tuple[tuple[str, str], ...]   # (batch file, MD5) of the training part
    test: tuple[tuple[str, str], ...]
    system_dirs: tuple[str, ...] = ()
    apt_package: Optional[str] = None

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def batch_files(self) -> tuple[str, ...]:
        return tuple(name for name, _ in (*self.train, *self.test))


CIFAR10 = BatchDataset(
    name="cifar10", folder="cifar-10", title="CIFAR-10", torchvision_class="CIFAR10",
    classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    archive=("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"), member_folder="cifar-10-batches-py",
    train=(("data_batch_1", "c99cafc152244af753f735de768cd75f"), ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
           ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"), ("data_batch_4", "634d18415352ddfa80567beed471001a"),
           ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb")),
    test=(("test_batch", "40351d587109b95175f43aff81a1287e"),),
)


class _BatchUnpickler(pickle.Unpickler):
    """Builds numpy arrays and plain Python values only."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a CIFAR batch")
        return super().find_class(module, name)


def parse_batch(blob: bytes, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 32 x 32 x 3 uint8, labels) of one pickled batch."""
    try:
        batch = _BatchUnpickler(io.BytesIO(blob), encoding="latin1").load()
    except Exception as exc:  # a broken pickle raises many types; all mean "not a batch"
        raise OddpixError(f"{what} is not a readable CIFAR batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise OddpixError(f"{what} is not a CIFAR batch (no data / labels)")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels", batch.get("fine_labels"))
    try:
        data = np.asarray(data, dtype=np.uint8)
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise OddpixError(f"{what} is not a CIFAR batch (its data or labels are not numbers)") from None
    if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (len(data),):
        raise OddpixError(f"{what}: expected N x 3072 pixels and N labels, got {data.shape} and {labels.shape}")
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), labels


def _archive_batches(path: Path, spec: BatchDataset) -> dict[str, bytes]:
    wanted = {f"{spec.member_folder}/{name}": name for name in spec.batch_files}
    out = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    if member.size > MAX_MEMBER:
                        raise OddpixError(f"{path}: {member.name} is {member.size} bytes; not a CIFAR batch")
                    out[wanted[member.name]] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise OddpixError(f"{path} is not a readable tar.gz archive ({exc}); download it again") from None
    return out


def _batch_folder(folder: Path, spec: BatchDataset) -> Optional[Path]:
    for candidate in (folder / spec.member_folder, folder):
        if all((candidate / name).is_file() for name in spec.batch_files):
            return candidate
    return None


def _check(spec: BatchDataset, path: str, blob: bytes, want: Optional[str], checksums: str, listed: str) -> None:
    if checksums == "off":
        return
    if want is None:
        raise OddpixError(f"no MD5 sum listed for {path} in {listed}; add it or set data.checksums: off")
    got = hashlib.md5(blob).hexdigest()
    if got != want:
        raise OddpixError(f"{path}: MD5 {got} does not match the {'published' if checksums == 'original' else 'listed'} "
                          f"{want} (data.checksums: {checksums}); the file is corrupt or not the original "
                          f"{spec.title} - replace it, or set data.checksums to 'mirror' or 'off'")


def _from_batches(spec: BatchDataset, blobs: dict[str, bytes], where: str) -> RawDataset:
    parts = []
    for names in ([n for n, _ in spec.train], [n for n, _ in spec.test]):
        xs, ys = zip(*(parse_batch(blobs[n], f"{where}/{n}") for n in names))
        parts += [np.concatenate(xs), np.concatenate(ys)]
    x_train, y_train, x_test, y_test = parts
    for y in (y_train, y_test):
        if len(y) and (y.min() < 0 or y.max() >= spec.n_classes):
            raise OddpixError(f"{where}: labels outside 0..{spec.n_classes - 1}; not {spec.title}")
    return RawDataset(spec.name, x_train, y_train, x_test, y_test, source=where)


def _image_folder(spec: BatchDataset, folder: Path) -> Optional[RawDataset]:
    """An image-folder copy: ``train/<class>/`` and ``test/<class>/`` with the dataset's class names."""
    from .folder import load_image_folder

    if not all((folder / part).is_dir() for part in ("train", "test")):
        return None
    named = {c.lower(): i for i, c in enumerate(spec.classes)}
    for part in ("train", "test"):
        found = sorted(d.name for d in (folder / part).iterdir() if d.is_dir() and not d.name.startswith("."))
        unknown = [d for d in found if d.lower() not in named]
        if unknown or not found:
            raise OddpixError(f"{folder / part}: class folders {', '.join(unknown) or '(none)'} are not classes of "
                              f"{spec.title}; expected {', '.join(spec.classes)}")
    images = load_image_folder(folder, 32, 3, warn=lambda _m: None, workers=8)
    order = np.asarray([named[c.lower()] for c in images.classes])
    y = order[images.y]
    train = images.part == "train"
    return RawDataset(spec.name, images.x[train], y[train], images.x[~train], y[~train],
                      source=f"{folder} (an image-folder copy: not checksummable)")


def read_batch_folder(spec: BatchDataset, folder: Path, checksums: str = "original") -> Optional[RawDataset]:
    """Read ``spec`` from ``folder`` (the archive, the unpacked batches, or an image-folder copy); None when
    the folder holds none of them."""
    if not folder.is_dir():
        return None
    sums = _mirror_sums(folder) if checksums == "mirror" else {}
    listed = f"{folder}/MD5SUMS"
    if checksums == "mirror" and not sums:
        listed = f"{folder} (it has no MD5SUMS file)"
    batches = _batch_folder(folder, spec)
    if batches is not None:
        published = dict((*spec.train, *spec.test))
        blobs = {}
        for name in spec.batch_files:
            blob = (batches / name).read_bytes()
            if len(blob) > MAX_MEMBER:
                raise OddpixError(f"{batches / name} is {len(blob)} bytes; not a CIFAR batch")
            rel = str((batches / name).relative_to(folder))
            _check(spec, str(batches / name), blob, published[name] if checksums == "original" else sums.get(rel),
                   checksums, listed)
            blobs[name] = blob
        return _from_batches(spec, blobs, str(batches))
    archive = folder / spec.archive[0]
    if archive.is_file():
        if checksums != "off":
            want = spec.archive[1] if checksums == "original" else sums.get(spec.archive[0])
            if want is None:
                raise OddpixError(f"no MD5 sum listed for {spec.archive[0]} in {listed}; add it or set "
                                  "data.checksums: off")
            got = _md5_file(archive)
            if got != want:
                raise OddpixError(f"{archive}: MD5 {got} does not match the {want} expected (data.checksums: "
                                  f"{checksums}); the archive is corrupt or not the original - download it again")
        blobs = _archive_batches(archive, spec)
        missing = [n for n in spec.batch_files if n not in blobs]
        if missing:
            raise OddpixError(f"{archive} lacks {', '.join(missing)}; it is not the {spec.title} archive")
        return _from_batches(spec, blobs, str(archive))
    return _image_folder(spec, folder)


def describe_missing(spec: BatchDataset, folder: Path) -> str:
    return f"no {spec.archive[0]}, {spec.member_folder}/ or train/ and test/ image folders there"


def download_batches(spec: BatchDataset, cache_dir: Path) -> Path:
    """Download with torchvision into ``cache_dir`` (it checks the archive's MD5); the folder to read."""
    import torchvision

    cache_dir.mkdir(parents=True, exist_ok=True)
    getattr(torchvision.datasets, spec.torchvision_class)(root=str(cache_dir), train=True, download=True)
    return cache_dir

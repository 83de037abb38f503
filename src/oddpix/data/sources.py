"""Where images come from: local mirrors, Debian's dataset packages, a torchvision download, or an
image folder.

The catalogue ``DATASETS`` below, with the originals' published MD5 sums: the MNIST family (MNIST,
Fashion-MNIST, KMNIST, EMNIST letters / balanced), read from the original IDX files (``idx.py``), and
CIFAR-10, read from its Python archive, its batches or an image-folder copy (``cifar.py``). Files are
checked against an MD5 sum before use (``data.checksums``: ``original``, ``mirror`` or ``off``).

Search order: ``data.mirror`` from params, then ``$ODDPIX_DATA_MIRROR`` (both folders that hold one
sub-folder per dataset: ``mnist/``, ``fashion-mnist/``, ``kmnist/``, ``emnist/``, ``cifar-10/``), then system folders such as
``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``), then a torchvision download
into ``cache_dir`` when ``data.download`` is true.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Callable, Optional

from ..errors import OddpixError
from .cifar import CIFAR10, BatchDataset, describe_missing, download_batches, read_batch_folder
from .idx import IDX_FILES, IdxDataset, RawDataset, read_idx_folder

MIRROR_ENV = "ODDPIX_DATA_MIRROR"


def _sums(*md5: str) -> dict[str, str]:
    """The MD5 sums of the four standard IDX files, in the order of ``IDX_FILES``."""
    return dict(zip(IDX_FILES, md5, strict=True))


def _emnist(split: str, classes: tuple[str, ...], label_offset: int = 0) -> IdxDataset:
    prefix = f"emnist-{split}"
    return IdxDataset(
        name=f"emnist_{split}", folder="emnist", title=f"EMNIST ({split})", torchvision_class="EMNIST",
        classes=classes, files=(f"{prefix}-train-images-idx3-ubyte", f"{prefix}-train-labels-idx1-ubyte",
                                f"{prefix}-test-images-idx3-ubyte", f"{prefix}-test-labels-idx1-ubyte"),
        torchvision_kwargs={"split": split}, archive=("gzip.zip", "58c8d27c78d21e728a6bc7b3cc06412e", "gzip"),
        transpose=True, label_offset=label_offset)


DATASETS: dict[str, IdxDataset | BatchDataset] = {
    "mnist": IdxDataset(
        name="mnist", folder="mnist", title="MNIST", torchvision_class="MNIST",
        classes=tuple(str(i) for i in range(10)),
        md5=_sums("6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
                  "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637"),
        system_dirs=("/usr/share/datasets/mnist",),
    ),
    "fashion_mnist": IdxDataset(
        name="fashion_mnist", folder="fashion-mnist", title="Fashion-MNIST", torchvision_class="FashionMNIST",
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"),
        md5=_sums("f4a8712d7a061bf5bd6d2ca38dc4d50a", "9018921c3c673c538a1fc5bad174d6f9",
                  "8181f5470baa50b63fa0f6fddb340f0a", "15d484375f8d13e6eb1aabb0c3f46965"),
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        apt_package="dataset-fashion-mnist",
    ),
    "kmnist": IdxDataset(
        name="kmnist", folder="kmnist", title="Kuzushiji-MNIST", torchvision_class="KMNIST",
        classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        gz_md5=_sums("bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344",
                     "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134"),
    ),
    "emnist_letters": _emnist("letters", tuple("abcdefghijklmnopqrstuvwxyz"), label_offset=1),
    "emnist_balanced": _emnist("balanced", tuple("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt")),
    "cifar10": CIFAR10,
}


def candidate_folders(spec: IdxDataset | BatchDataset, mirror: Optional[str]) -> list[tuple[str, Path]]:
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
        dataset_cls(root=str(cache_dir), train=train, download=True, **spec.torchvision_kwargs)
    return cache_dir / spec.torchvision_class / "raw"


def load_dataset(name: str, mirror: Optional[str] = None, checksums: str = "original",
                 download: bool = True, cache_dir: str | Path = "data/downloads") -> RawDataset:
    """Find, verify and read dataset ``name``; a readable error lists what was tried and what to do."""
    spec = DATASETS[name]
    if isinstance(spec, BatchDataset):
        return _search(
            spec, mirror, checksums, download, Path(cache_dir), read=read_batch_folder,
            why_not=lambda folder: describe_missing(spec, folder) if folder.is_dir() else "not a folder",
            fetch=download_batches, fetched_checksums="original" if checksums != "off" else "off",
            fix=f"put {spec.archive[0]} (or its unpacked {spec.member_folder}/, or an image-folder copy with "
                f"train/<class>/ and test/<class>/) into <folder>/{spec.folder}/ and `export {MIRROR_ENV}=<folder>` "
                "(or set data.mirror in params.yaml)")

    def why_not(folder: Path) -> str:
        missing = [n for n in spec.files if not (folder / n).is_file() and not (folder / f"{n}.gz").is_file()]
        if folder.is_dir() and 0 < len(missing) < len(spec.files):
            return f"missing {', '.join(f'{n}[.gz]' for n in missing)}"
        return f"no {spec.title} IDX files there"

    apt = f", or `apt install {spec.apt_package}`" if spec.apt_package else ""
    originals = f"{spec.archive[0]} (or " if spec.archive else "the four original files ("
    # torchvision checked what it downloaded (the files' or the archive's MD5); check again where a per-file
    # sum is published
    return _search(
        spec, mirror, checksums, download, Path(cache_dir), read=read_idx_folder, why_not=why_not, fetch=_download,
        fetched_checksums="original" if checksums != "off" and (spec.md5 or spec.gz_md5) else "off",
        fix=f"put {originals}{', '.join(f + '.gz' for f in spec.files)}) into <folder>/{spec.folder}/ and "
            f"`export {MIRROR_ENV}=<folder>` (or set data.mirror in params.yaml){apt}")


def _search(spec, mirror: Optional[str], checksums: str, download: bool, cache_dir: Path, *,
            read: Callable, why_not: Callable[[Path], str], fetch: Callable, fetched_checksums: str,
            fix: str) -> RawDataset:
    """The search order of every dataset format: the candidate folders (``read(spec, folder, checksums)``;
    ``why_not`` says why a folder did not do), then a torchvision download (``fetch(spec, cache_dir)``, read
    with ``fetched_checksums``); else one error naming what was tried and, after ``fix``, what to do."""
    tried: list[str] = []
    for what, folder in candidate_folders(spec, mirror):
        data = read(spec, folder, checksums)
        if data is not None:
            return data
        tried.append(f"{what} {folder} ({why_not(folder)})")
    if not os.environ.get(MIRROR_ENV):
        tried.append(f"${MIRROR_ENV} (not set)")
    if download:
        try:
            folder = fetch(spec, cache_dir)
        except Exception as exc:  # network errors come in many types; all mean the same to the user
            tried.append(f"torchvision download ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
        else:
            data = read(spec, folder, fetched_checksums)
            if data is not None:
                data.source = f"torchvision download ({data.source})"
                return data
            tried.append(f"torchvision download ({folder} is incomplete)")
    else:
        tried.append("torchvision download (off: data.download is false)")
    raise OddpixError(f"could not get {spec.title}. Tried: " + "; ".join(tried) + f". To fix: {fix}, or connect to "
                      "the internet with data.download: true.")


def class_name(number, classes) -> str:
    """The name of class ``number`` in ``classes`` (a dataset's class names); the number itself where there
    is no name for it (no names, out of range, or not a number: an image folder's classes are names)."""
    if isinstance(number, numbers.Integral) and not isinstance(number, bool) and classes and 0 <= number < len(classes):
        return str(classes[number])
    return str(number)

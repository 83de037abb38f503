"""Image folders as a dataset: one sub-directory of images per class (e.g. cell_images/Parasitized and
cell_images/Uninfected), every image read, converted and resized to one size.

Folders that come already split, ``<root>/{train,valid,test}/<class>/`` (also ``training``, ``val``,
``validation``, ``testing``), are recognised: ``given_split: use`` keeps that split (train for training, valid
for validation, test for testing), ``merge`` pools the images and splits them by ``test_fraction`` as for a
plain class folder.

Pixel truth, as MVTec AD brings it: a ``masks`` sub-directory of the root (never a class) may hold, for an
image ``<class>/<path>/<name>.<ext>``, a mask ``masks/<class>/<path>/<name>.png`` (white = anomalous pixel;
resized like the image, nearest neighbour). Images without a mask file have no anomalous pixel marked.
Photos of one object (several shots, lightings or crops of the same tile, patient or part) must not be
split between training and test, or a detector scores "seen this object before" instead of "defect":
``groups`` names a CSV with columns ``file`` (the path under the root, as the ``source`` column shows it)
and ``group``; the test and validation images are then drawn a whole group at a time (images not listed
are a group of their own). ``anomalies: test`` tests every image of an anomalous class (MVTec-style
one-class benchmarks) instead of splitting it by ``test_fraction`` like the normals.

A root holding only ``images/`` and ``masks/`` (``images/<class>/<name>.jpg`` beside
``masks/<class>/<name>.png``, as the magnetic-tile defect set comes) reads its classes from ``images/``.

The layouts public benchmarks come in are read as they are: MVTec AD (``train/good/``, ``test/<defect>/``,
masks in ``ground_truth/<defect>/<name>_mask.png``), MVTec 3D-AD (``<split>/<class>/rgb/<name>.png`` with its
mask in ``<split>/<class>/gt/<name>.png``; the point clouds beside them are not read; ``validation/`` is the
validation split), and a flat folder of images with a labels table (``labels``: a CSV naming each image's
file, relative to the root, and its class; columns ``file`` and ``label`` by name, else the first two;
commas, semicolons, tabs or spaces; a ``labels.csv`` in a root with fewer than two sub-folders is found by
itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import OddpixError
from ..schema import choice, num

# The largest image side anywhere (folder images, preprocess.image_size, a model file's input size): a
# 1024 x 1024 RGB image is 12 MB as float32; larger photos are resized down to it or below.
MAX_IMAGE_SIDE = 1024
EXIF_ORIENTATION = 0x0112
CHANNELS_PROBLEM = "2 is not a valid choice; valid choices: 1 (grayscale), 3 (RGB)"


@dataclass(frozen=True)
class FolderConfig:
    """An image folder: one sub-directory per class (e.g. cell_images/Parasitized, cell_images/Uninfected)."""

    root: Optional[str] = None
    image_size: int = num(64, ge=8, le=MAX_IMAGE_SIDE)
    channels: int = num(3, ge=1, le=3)
    test_fraction: float = num(0.2, gt=0.0, lt=1.0)
    given_split: str = choice("use", ("use", "merge"))
    anomalies: str = choice("split", ("split", "test"))  # test: every anomalous-class image is a test image
    groups: Optional[str] = None  # CSV (columns file, group): images of one group stay in one split
    labels: Optional[str] = None  # CSV (columns file, label) of a flat image folder: each image's class

    def problems(self) -> list[tuple[str, str]]:
        if self.channels == 2:
            return [("channels", CHANNELS_PROBLEM)]
        return []


@dataclass
class FolderImages:
    """Every readable image of a class-per-sub-directory tree, resized to one size."""

    x: np.ndarray             # uint8 N x S x S x C
    y: np.ndarray             # class index into ``classes``
    classes: tuple[str, ...]
    files: np.ndarray         # paths relative to the root
    skipped: list[str]        # files that could not be read as images
    masks: Optional[np.ndarray] = None  # bool N x S x S, when the root has a masks/ folder
    part: Optional[np.ndarray] = None   # "train" | "val" | "test" per image, when the folder comes split

    def arrays(self) -> dict[str, np.ndarray]:
        extra = {} if self.masks is None else {"masks": self.masks}
        if self.part is not None:
            extra["part"] = self.part.astype(str)
        return {"x": self.x, "y": self.y, "classes": np.asarray(self.classes, dtype=str),
                "files": self.files.astype(str), "skipped": np.asarray(self.skipped, dtype=str), **extra}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "FolderImages":
        return cls(arrays["x"], arrays["y"], tuple(arrays["classes"].tolist()), arrays["files"],
                   arrays["skipped"].tolist(), arrays.get("masks"), arrays.get("part"))


SYSTEM_FILES = {"thumbs.db", "desktop.ini", "ehthumbs.db"}  # (and every name starting with a dot)
# the sub-folders of a folder that comes split, and the split each one feeds
SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test", "testing": "test"}
MASK_FOLDERS = ("masks", "ground_truth")  # beside the classes: pixel truth (ours, MVTec AD's), never a class
IMAGE_SUBFOLDER, MASK_SUBFOLDER = "rgb", "gt"  # MVTec 3D-AD: <class>/rgb/ images, <class>/gt/ their masks
MAX_PIXELS = 64_000_000  # a larger image is refused before it is decoded (PIL's decompression-bomb bound)


def _to_8bit(img):
    """16-bit and 32-bit integer or float images scaled to 8 bits (not clipped, as PIL's convert does)."""
    from PIL import Image

    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return Image.fromarray(np.round(np.asarray(img, dtype=np.float64) / 257.0).astype(np.uint8))
    if img.mode == "I":
        a = np.asarray(img, dtype=np.float64)
        if a.min() < 0 or a.max() > 65535:
            raise OddpixError(f"a 32-bit integer image with values {a.min():.0f}..{a.max():.0f}; save it as 8 or 16 bit")
        return Image.fromarray(np.round(a / 257.0).astype(np.uint8))
    if img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise OddpixError("a floating-point image whose values are not all in [0, 1]; save it as 8 or 16 bit")
        return Image.fromarray(np.round(a * 255.0).astype(np.uint8))
    return img


def read_image_file(path: str | Path | bytes, channels: int, size: Optional[tuple[int, int]] = None,
                    nearest: bool = False, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """One image file (a path, or the file's bytes) as uint8 H x W x C (``channels`` 1: grayscale, 3: RGB),
    resized to ``size`` = (H, W) when given (bilinear; ``nearest`` for masks). 16-bit and float images are
    scaled, not clipped; an image of more than ``max_pixels`` is refused before it is decoded. Raises
    :class:`OddpixError` with the reason when it is not a readable image."""
    import io

    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(path, (bytes, bytearray)):
        if not path:
            raise OddpixError("an empty file")
        source = io.BytesIO(path)
    else:
        source = path = Path(path)
        if not path.is_file():  # a folder, a FIFO or a device would block or fail inside the decoder
            raise OddpixError("not a regular file" if path.exists() else "no such file")
    try:
        with Image.open(source) as img:
            if img.width * img.height > max_pixels:
                raise OddpixError(f"{img.width}x{img.height} pixels is more than the {max_pixels:,} oddpix reads")
            if img.getexif().get(EXIF_ORIENTATION, 1) != 1:  # a camera's rotated photo, shown upright
                img = ImageOps.exif_transpose(img)
            img = _to_8bit(img).convert("L" if channels == 1 else "RGB")
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.NEAREST if nearest else Image.BILINEAR)
            array = np.array(img, dtype=np.uint8)  # a writable copy
    except Image.DecompressionBombError:
        raise OddpixError(f"more pixels than the {MAX_PIXELS:,} oddpix reads (a decompression bomb?)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise OddpixError(f"not a readable image ({type(exc).__name__})") from None
    return array[..., None] if array.ndim == 2 else array


def _load_one(path: Path, size: int, channels: int) -> np.ndarray | str:
    """The image, or why it cannot be read."""
    try:
        return read_image_file(path, channels, (size, size))
    except OddpixError as exc:
        return str(exc)


def _class_folders(root: Path) -> tuple[Path, list[tuple[str, Path]], bool]:
    """(the folder the classes' paths are relative to, (split part or "", class folder) pairs, whether the
    folder comes split into train/valid/test)."""
    top = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name not in MASK_FOLDERS)
    classes_root = root
    if [d.name for d in top] == ["images"] and (root / "masks").is_dir():  # <root>/{images,masks}/<class>/
        classes_root = root / "images"
        top = sorted(d for d in classes_root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not top:
        raise OddpixError(f"data.folder.root: {root} has no class sub-folders")
    split_layout = all(d.name.lower() in SPLIT_FOLDERS for d in top)
    if not split_layout:
        return classes_root, [("", d) for d in top], False
    # <root>/{train,valid,test}/<class>/: the classes are one level down
    groups = [(SPLIT_FOLDERS[d.name.lower()], c) for d in top for c in sorted(_subfolders(d))]
    if not groups:
        raise OddpixError(f"data.folder.root: {root} has {', '.join(d.name for d in top)}/ but no class "
                          "sub-folders in them (expected e.g. train/<class>/<image>)")
    if len({SPLIT_FOLDERS[d.name.lower()] for d in top}) < len(top):
        raise OddpixError(f"data.folder.root: two of {', '.join(d.name for d in top)} in {root} name the same "
                          "split; keep one folder per split")
    return classes_root, groups, True


def _image_files(root: Path, groups: list[tuple[str, Path]], classes: list[str]
                 ) -> tuple[list[Path], list[int], list[str], list[str]]:
    """(files, class index of each, split part of each, hidden or system files not read). A class folder
    with an ``rgb/`` sub-folder (MVTec 3D-AD) has its images there and nothing else of it is read."""
    files, labels, parts, system = [], [], [], []
    for part, d in groups:
        where = d / IMAGE_SUBFOLDER if (d / IMAGE_SUBFOLDER).is_dir() else d
        for f in sorted(p for p in where.rglob("*") if p.is_file()):
            if f.name.startswith(".") or f.name.lower() in SYSTEM_FILES:  # .DS_Store, Thumbs.db: not read
                system.append(str(f.relative_to(root)))
                continue
            files.append(f)
            labels.append(classes.index(d.name))
            parts.append(part)
    return files, labels, parts, system


def _mask_candidates(root: Path, classes_root: Path, file: Path) -> list[Path]:
    """Where the mask of image ``file`` may be: ``masks/<class>/<path>/<name>.png`` (relative to the classes'
    folder), MVTec AD's ``ground_truth/<class>/<name>_mask.png`` and MVTec 3D-AD's ``<class>/gt/<name>.png``."""
    rel = file.relative_to(classes_root)
    out = [(root / "masks" / rel).with_suffix(".png")]
    if len(rel.parts) >= 2:
        out.append(root / "ground_truth" / rel.parts[-2] / f"{file.stem}_mask.png")
    if file.parent.name == IMAGE_SUBFOLDER:
        out.append((file.parent.parent / MASK_SUBFOLDER / file.name).with_suffix(".png"))
    return out


def _has_masks(root: Path, files: list[Path]) -> bool:
    return any((root / m).is_dir() for m in MASK_FOLDERS) or any(
        f.parent.name == IMAGE_SUBFOLDER and (f.parent.parent / MASK_SUBFOLDER).is_dir() for f in files)


def read_mask_file(path: Path, image: Path, size: int) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """A defect mask as ``size`` x ``size`` bool, whatever its values: 0/255, 0/1, 16-bit 0/1000, a palette,
    RGB (a pixel is marked when its value is above 0). Also what was not as expected (a mask of another size
    than its image, more than two values: then marked above half the maximum), for one warning."""
    from PIL import Image

    notes = []
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise OddpixError(f"{path}: {img.width}x{img.height} pixels is more than the {MAX_PIXELS:,} oddpix reads")
            raw = np.asarray(img)
        with Image.open(image) as img:
            image_size = img.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise OddpixError(f"{path} is not a readable mask image ({type(exc).__name__})") from None
    values = raw.max(axis=-1) if raw.ndim == 3 else raw
    values = values.astype(np.float64)
    if (raw.shape[1], raw.shape[0]) != image_size:
        notes.append(("differ in size from their images",
                      f"is {raw.shape[1]}x{raw.shape[0]}, its image {image_size[0]}x{image_size[1]}; resized"))
    levels = np.unique(values[:: max(1, values.shape[0] // 256), :: max(1, values.shape[1] // 256)])
    if len(levels) > 2:
        notes.append(("are not binary", f"has {len(np.unique(values))} values; marked above half its maximum"))
        marked = values > values.max() / 2
    else:
        marked = values > 0
    resized = Image.fromarray(marked.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)
    return np.asarray(resized) > 127, notes


def _read_masks(root: Path, classes_root: Path, files: list[Path], image_size: int, workers: int,
                warn=print) -> np.ndarray:
    """The mask of each image (:func:`_mask_candidates`; none marked where there is none); one warning per
    kind of surprise (:func:`read_mask_file`), naming a mask it concerns and how many."""
    from concurrent.futures import ThreadPoolExecutor

    def mask_of(file: Path) -> tuple[np.ndarray, list[str], Optional[Path]]:
        path = next((p for p in _mask_candidates(root, classes_root, file) if p.exists()), None)
        if path is None:
            return np.zeros((image_size, image_size), dtype=bool), [], None
        return (*read_mask_file(path, file, image_size), path)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        read = list(pool.map(mask_of, files))
    surprises: dict[str, list[tuple[Path, str]]] = {}
    for _, notes, path in read:
        for kind, text in notes:
            surprises.setdefault(kind, []).append((path, text))
    for kind, found in surprises.items():
        warn(f"warning: {len(found)} mask(s) {kind} (e.g. {found[0][0]} {found[0][1]})")
    return np.stack([m for m, _, _ in read])


def load_image_folder(root: str | Path, image_size: int, channels: int, warn=print,
                      workers: int = 4, labels_csv: Optional[str | Path] = None) -> FolderImages:
    """Read ``root/<class>/**/<image>`` (or the files a labels CSV names); a file that is not a readable
    image is skipped with a warning naming it. Decoding runs in a thread pool (PIL releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    root = Path(root).expanduser()
    if not root.is_dir():
        raise OddpixError(f"data.folder.root: {root} is not a folder; it should hold one sub-folder of images "
                          "per class (e.g. cell_images/Parasitized, cell_images/Uninfected)")
    labels_csv = labels_csv or _default_labels(root)
    if labels_csv is not None:
        classes_root, split_layout = root, False
        files, labels, classes, missing = _labelled_files(root, labels_csv)
        parts, system = [""] * len(files), []
        if missing:
            warn(f"warning: {len(missing)} file(s) the labels name are not under {root} (e.g. {missing[0]})")
    else:
        classes_root, groups, split_layout = _class_folders(root)
        classes = sorted({d.name for _, d in groups})
        files, labels, parts, system = _image_files(root, groups, classes)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        images = list(pool.map(lambda f: _load_one(f, image_size, channels), files))
    unreadable = [str(f.relative_to(root)) for f, img in zip(files, images) if isinstance(img, str)]
    for f, img in zip(files, images):
        if isinstance(img, str):
            warn(f"warning: skipping {f}: {img}")
    images = [None if isinstance(img, str) else img for img in images]
    if system:
        warn(f"note: skipped {len(system)} hidden or system file(s) (e.g. {system[0]})")
    skipped = unreadable + system + (missing if labels_csv is not None else [])
    ok = [i for i, img in enumerate(images) if img is not None]
    if not ok:
        raise OddpixError(f"data.folder.root: no readable images under {root}")
    x = np.stack([images[i] for i in ok])
    kept = [files[i] for i in ok]
    masks = _read_masks(root, classes_root, kept, image_size, workers, warn) if _has_masks(root, kept) else None
    return FolderImages(x, np.asarray(labels, dtype=np.int64)[ok], tuple(classes),
                        np.asarray([str(files[i].relative_to(root)) for i in ok]), skipped, masks,
                        np.asarray(parts)[ok] if split_layout else None)


def read_groups(path: str | Path, files: np.ndarray) -> np.ndarray:
    """The group of each of ``files`` from the ``file,group`` CSV at ``path`` (an unlisted file is its own
    group)."""
    import csv

    path = Path(path).expanduser()
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise OddpixError(f"data.folder.groups: cannot read {path}: {exc.strerror or exc}") from None
    if rows and not {"file", "group"} <= set(rows[0]):
        raise OddpixError(f"data.folder.groups: {path} needs the columns file and group; it has "
                          f"{', '.join(rows[0])}")
    group_of = {r["file"]: r["group"] for r in rows}
    listed = np.asarray([f in group_of for f in files])
    if rows and not listed.any():
        raise OddpixError(f"data.folder.groups: no file of {path} is an image of the folder (files are paths "
                          f"under the root, e.g. {files[0]})")
    return np.asarray([f"group:{group_of[f]}" if f in group_of else f"file:{f}" for f in files])


def _subfolders(d: Path) -> list[Path]:
    return [c for c in d.iterdir() if c.is_dir() and not c.name.startswith(".")]


def _default_labels(root: Path) -> Optional[Path]:
    """``root/labels.csv`` when the root has fewer than two class folders (images flat in the root or in one
    folder such as ``images/``, their classes in the table)."""
    candidate = root / "labels.csv"
    if not candidate.is_file():
        return None
    folders = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name not in MASK_FOLDERS]
    return candidate if len(folders) < 2 else None


def _labels_table(path: Path) -> list[tuple[str, str]]:
    """(file, label) rows of a labels CSV: the columns ``file`` and ``label`` by name, else the first two."""
    import csv

    try:
        text = path.read_text()
    except OSError as exc:
        raise OddpixError(f"data.folder.labels: cannot read {path}: {exc.strerror or exc}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise OddpixError(f"data.folder.labels: {path} is empty")
    delimiter = next((d for d in (",", ";", "\t") if d in lines[0]), None)
    rows = list(csv.reader(lines, delimiter=delimiter)) if delimiter else [line.split() for line in lines]
    head = [c.strip().lower() for c in rows[0]]
    if "file" in head and "label" in head:
        i, j = head.index("file"), head.index("label")
        rows = rows[1:]
    else:
        i, j = 0, 1
    bad = next((n for n, r in enumerate(rows) if len(r) <= max(i, j)), None)
    if bad is not None:
        raise OddpixError(f"data.folder.labels: {path} line {bad + 1} has no label; expected file and label columns")
    return [(r[i].strip(), r[j].strip()) for r in rows]


def _labelled_files(root: Path, labels_csv: str | Path) -> tuple[list[Path], list[int], list[str], list[str]]:
    """(the images a labels CSV names, their class indices, the classes (the labels, sorted), the named
    files that do not exist)."""
    path = Path(labels_csv).expanduser()
    path = path if path.is_absolute() or path.exists() else root / path
    table = _labels_table(path)
    classes = sorted({label for _, label in table})
    missing = [f for f, _ in table if not (root / f).is_file()]
    if len(missing) == len(table):
        raise OddpixError(f"data.folder.labels: no file {path} names is under {root} (e.g. {missing[0]}); the "
                          "files are paths relative to data.folder.root")
    table = [(f, label) for f, label in table if (root / f).is_file()]
    classes = sorted({label for _, label in table})
    return [root / f for f, _ in table], [classes.index(label) for _, label in table], classes, missing

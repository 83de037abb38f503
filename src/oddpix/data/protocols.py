"""Anomaly protocols: turn raw datasets into labeled train / val / test splits.

Every split holds, per image: ``x`` (uint8, N x H x W x C), ``y`` (0 normal, 1 anomaly), ``label`` (the
original class, -1 where there is none) and ``kind`` (``normal`` or the kind of anomaly: ``class:7``,
``dataset:fashion_mnist``, ``corruption:invert``, ``class:Parasitized``).

* train: normal images, plus a ``contamination`` share of anomalies when asked for (robust training);
* val:   held-out normal training images for early stopping and thresholds, plus a
         ``val_anomaly_fraction`` share of labelled anomalies when asked for (threshold ``best_f1``);
* test:  images no choice of the pipeline has seen.

Protocols:

* ``one_vs_rest``:   normal = ``normal_classes`` of one dataset, anomaly = every other class; test = the
                     full test set;
* ``cross_dataset``: normal = ``dataset`` (all classes or ``normal_classes``), anomaly = images of
                     ``anomaly_dataset`` resized to the same size and channels; test = both test sets;
* ``corrupted``:     normal = clean images, anomaly = images with one of the six corruptions
                     (``data.corruption``); a ``fraction`` of the test images is corrupted;
* ``folder``:        an image folder with one sub-directory per class, split per class by seed
                     (``folder.test_fraction``); normal = the ``normal_classes`` folder names.

Everything is drawn from one seeded generator: the same params and seed give the same splits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Union

import numpy as np

from ..errors import OddpixError
from ..registry import Registry
from ..schema import choice, num, section
from . import corruptions
from .corruptions import CorruptionConfig
from .folder import FolderConfig, read_groups
from .idx import RawDataset
from .sources import DATASETS
from .split_assembly import (LazyAnomalies, assemble, normal_mask, normal_train_images, pick_groups,
                             test_images)
from .splits import Split, class_kinds, labeled, sources

PROTOCOLS = Registry("protocol")  # name -> function(cfg, data, rng) -> splits


def dataset_names() -> tuple[str, ...]:
    """Every value ``data.dataset`` takes: the catalogued datasets and ``folder``."""
    return (*DATASETS, "folder")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = choice("fashion_mnist", dataset_names)
    protocol: str = choice("one_vs_rest", PROTOCOLS.names)
    normal_classes: Union[Literal["all"], list[Union[int, str]]] = field(default_factory=lambda: [0])
    anomaly_dataset: Optional[str] = choice(None, DATASETS)
    val_fraction: float = num(0.1, gt=0.0, lt=1.0)
    val_anomaly_fraction: float = num(0.0, ge=0.0, lt=0.9)
    contamination: float = num(0.0, ge=0.0, lt=0.5)
    mirror: Optional[str] = None
    checksums: Literal["original", "mirror", "off"] = "original"
    download: bool = True
    folder: FolderConfig = section(FolderConfig)
    corruption: CorruptionConfig = section(CorruptionConfig)

    def __post_init__(self):
        # classes by name (normal_classes: [airplane]) become their numbers, as the protocols count them
        spec = DATASETS.get(self.dataset)
        if spec is not None and self.protocol != "folder" and isinstance(self.normal_classes, list):
            named = {c.lower(): i for i, c in enumerate(spec.classes)}
            object.__setattr__(self, "normal_classes", [
                named.get(c.lower(), c) if isinstance(c, str) else c for c in self.normal_classes])

    def datasets(self) -> list[str]:
        """The datasets the protocol reads: ``dataset``, and ``anomaly_dataset`` for cross_dataset."""
        return [self.dataset, self.anomaly_dataset] if self.protocol == "cross_dataset" else [self.dataset]

    def problems(self) -> list[tuple[str, str]]:
        if (self.protocol == "folder") != (self.dataset == "folder"):
            others = ", ".join(p for p in PROTOCOLS if p != "folder")
            return [("protocol", "protocol 'folder' and dataset 'folder' go together; valid choices for dataset "
                     f"{self.dataset!r}: {others}")
                    if self.dataset != "folder" else ("dataset", "dataset 'folder' needs protocol: folder")]
        if self.protocol == "folder" and not self.folder.root:
            return [("folder.root", "protocol 'folder' needs the image folder (one sub-directory per class)")]
        if self.protocol == "folder" and self.folder.anomalies == "test":
            for key in ("contamination", "val_anomaly_fraction"):
                if getattr(self, key) > 0:
                    return [(key, f"needs anomalous images outside the test split, but data.folder.anomalies: "
                             "test puts every one in it; set data.folder.anomalies: split or "
                             f"data.{key}: 0")]
        if self.protocol == "cross_dataset":
            if self.anomaly_dataset is None:
                return [("anomaly_dataset", f"protocol 'cross_dataset' needs the dataset of the anomalies; "
                         f"valid choices: {', '.join(DATASETS)}")]
            if self.anomaly_dataset == self.dataset:
                return [("anomaly_dataset", "must differ from data.dataset")]
        if self.normal_classes == "all" and self.protocol in ("one_vs_rest", "folder"):
            return [("normal_classes", f"'all' leaves no anomalies under protocol {self.protocol!r}; list the "
                     "normal classes")]
        if self.normal_classes != "all":
            if not self.normal_classes:
                return [("normal_classes", "needs at least 1 item(s)")]
            want = str if self.protocol == "folder" else int
            bad = [c for c in self.normal_classes if not isinstance(c, want) or (want is int and c < 0)]
            if bad:
                spec = DATASETS.get(self.dataset)
                what = ("class folder names" if want is str else
                        f"class numbers (0, 1, ...) or names of {spec.title}'s classes: {', '.join(spec.classes)}")
                return [("normal_classes", f"{bad[0]!r} is not valid; protocol {self.protocol!r} takes {what}")]
        return []


@PROTOCOLS.register("one_vs_rest")
def one_vs_rest(cfg: DataConfig, data: dict, rng: np.random.Generator) -> dict[str, Split]:
    raw: RawDataset = data[cfg.dataset]
    normal = normal_mask(raw.y_train, cfg, np.unique(raw.y_train), raw.name)
    pool = np.flatnonzero(~normal)
    anomalies = LazyAnomalies(len(pool), lambda i: labeled(raw.x_train[pool[i]], raw.y_train[pool[i]], np.ones(len(i)),
                                                           class_kinds(raw.y_train[pool[i]]),
                                                           sources(raw.name, "train", pool[i])))
    keep = np.flatnonzero(normal)
    test_anomalous = ~np.isin(raw.y_test, cfg.normal_classes)
    return assemble(normal_train_images(raw, keep), anomalies, test_images(raw, test_anomalous), cfg, rng)


def match_images(x: np.ndarray, size: tuple[int, int], channels: int) -> np.ndarray:
    """Resize (antialiased bilinear) and convert channels so ``x`` matches another dataset's images."""
    import torch
    import torch.nn.functional as F

    if x.shape[1:3] == size and x.shape[3] == channels:
        return x
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()
    if t.shape[1] != channels:
        t = t.mean(1, keepdim=True) if channels == 1 else t.expand(-1, channels, -1, -1)
    if tuple(t.shape[-2:]) != tuple(size):
        t = F.interpolate(t, size=size, mode="bilinear", antialias=True, align_corners=False)
    return t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


@PROTOCOLS.register("cross_dataset")
def cross_dataset(cfg: DataConfig, data: dict, rng: np.random.Generator) -> dict[str, Split]:
    raw: RawDataset = data[cfg.dataset]
    other: RawDataset = data[cfg.anomaly_dataset]
    size, channels = raw.x_train.shape[1:3], raw.x_train.shape[3]
    kind = f"dataset:{other.name}"
    normal = normal_mask(raw.y_train, cfg, np.unique(raw.y_train), raw.name)
    keep = np.flatnonzero(normal)
    anomalies = LazyAnomalies(len(other.y_train), lambda i: labeled(
        match_images(other.x_train[i], size, channels), other.y_train[i], np.ones(len(i)), np.full(len(i), kind),
        sources(other.name, "train", i)))
    test_normal_class = ~np.isin(raw.y_test, cfg.normal_classes) if cfg.normal_classes != "all" else \
        np.zeros(len(raw.y_test), dtype=bool)
    test = Split.concat([
        test_images(raw, test_normal_class),
        labeled(match_images(other.x_test, size, channels), other.y_test, np.ones(len(other.y_test)),
                np.full(len(other.y_test), kind), sources(other.name, "test", np.arange(len(other.y_test)))),
    ])
    return assemble(normal_train_images(raw, keep), anomalies, test, cfg, rng)


@PROTOCOLS.register("corrupted")
def corrupted(cfg: DataConfig, data: dict, rng: np.random.Generator) -> dict[str, Split]:
    raw: RawDataset = data[cfg.dataset]
    c = cfg.corruption
    knobs = {"noise_std": c.noise_std, "interpolate_alpha": c.interpolate_alpha,
             "overlap_max_shift": c.overlap_max_shift, "underscore_thickness": c.underscore_thickness,
             "underscore_length": c.underscore_length, "dot_radius": c.dot_radius}

    def corrupt(x: np.ndarray, partners: np.ndarray, labels: np.ndarray, source: np.ndarray) -> Split:
        out, types = corruptions.corrupt(x, c.types, rng, partners, **knobs)
        return labeled(out, labels, np.ones(len(x)), np.char.add("corruption:", types), source)

    normal = normal_mask(raw.y_train, cfg, np.unique(raw.y_train), raw.name)
    keep = np.flatnonzero(normal)
    # anomalous training images (contamination, val anomalies) are corrupted copies of images held out of
    # the normal pool, so no clean image is also in train as its own corrupted twin
    n_reserve = 0
    if cfg.contamination > 0 or cfg.val_anomaly_fraction > 0:
        n_reserve = min(len(keep) // 2, int(len(keep) * (cfg.contamination + cfg.val_anomaly_fraction)) + 2)
    shuffled = rng.permutation(keep)
    reserve, keep = np.sort(shuffled[:n_reserve]), np.sort(shuffled[n_reserve:])
    partner_pool = raw.x_train

    def make_train_anomalies(i: np.ndarray) -> Split:
        partners = partner_pool[rng.integers(0, len(partner_pool), len(i))]
        return corrupt(raw.x_train[reserve[i]], partners, raw.y_train[reserve[i]], sources(raw.name, "train", reserve[i]))

    anomalies = LazyAnomalies(len(reserve), make_train_anomalies)
    test_class_anomaly = ~np.isin(raw.y_test, cfg.normal_classes) if cfg.normal_classes != "all" else \
        np.zeros(len(raw.y_test), dtype=bool)
    clean = test_images(raw, test_class_anomaly)
    n_bad = int(round(len(clean) * c.fraction))
    chosen = np.sort(rng.choice(len(clean), n_bad, replace=False))
    partner = (chosen + rng.integers(1, len(clean), n_bad)) % len(clean)  # another test image, never itself
    bad = corrupt(raw.x_test[chosen], raw.x_test[partner], raw.y_test[chosen], clean.source[chosen])
    test = clean
    test.x = test.x.copy()
    test.x[chosen], test.y[chosen], test.kind[chosen] = bad.x, bad.y, bad.kind
    test.mask = np.zeros(test.x.shape[:3], dtype=bool)  # the pixels each corruption changed
    test.mask[chosen] = (bad.x != raw.x_test[chosen]).any(axis=-1)
    return assemble(normal_train_images(raw, keep), anomalies, test, cfg, rng)


def _check_normal_class_folders(cfg: DataConfig, images) -> None:
    """Every one of ``data.normal_classes`` names a class folder with readable images."""
    classes = list(images.classes)
    missing = [c for c in cfg.normal_classes if c not in classes]
    if missing:
        raise OddpixError(f"data.normal_classes: no folder {missing[0]!r} with images in {cfg.folder.root}; "
                          f"classes found: {', '.join(classes) or 'none'}")
    empty = [c for c in cfg.normal_classes if not (images.y == classes.index(c)).any()]
    if empty:
        where = Path(cfg.folder.root) / ("*" if images.part is not None else "") / empty[0]
        raise OddpixError(f"data.normal_classes: class {empty[0]!r} has no readable images in {where}; add images "
                          "or choose another class")


def _folder_test_split(cfg: DataConfig, images, groups: Optional[np.ndarray], given: bool,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(test indices, the other indices): the folder's own test/ folder when ``given``, else
    ``folder.test_fraction`` of each class (whole ``groups`` at a time when given)."""
    if given:  # the folder's own test/ (and valid/) folders
        test_idx = np.flatnonzero(images.part == "test")
        if not len(test_idx):
            raise OddpixError(f"data.folder.given_split: use: {cfg.folder.root} has no test/ folder with images; "
                              "add one, or set data.folder.given_split: merge to split by data.folder.test_fraction")
        return test_idx, np.flatnonzero(images.part != "test")
    test_idx = []
    for k in range(len(images.classes)):  # a per-class split keeps the class balance of the folder
        members = np.flatnonzero(images.y == k)
        n_test = int(round(len(members) * cfg.folder.test_fraction))
        if groups is not None:
            test_idx.append(members[pick_groups(groups[members], n_test, rng)])
        else:
            test_idx.append(rng.permutation(members)[:n_test])
    test_idx = np.sort(np.concatenate(test_idx)) if test_idx else np.zeros(0, dtype=int)
    return test_idx, np.setdiff1d(np.arange(len(images.y)), test_idx)


@PROTOCOLS.register("folder")
def folder(cfg: DataConfig, data: dict, rng: np.random.Generator) -> dict[str, Split]:
    images = data["folder"]
    _check_normal_class_folders(cfg, images)
    names = np.asarray(list(images.classes))[images.y]
    is_anomaly = ~np.isin(names, cfg.normal_classes)
    kinds = np.char.add("class:", names)

    def take(index: np.ndarray, anomalous: np.ndarray) -> Split:
        return labeled(images.x[index], images.y[index], anomalous, kinds[index], images.files[index])

    groups = read_groups(cfg.folder.groups, images.files) if cfg.folder.groups else None
    given = images.part is not None and cfg.folder.given_split == "use"
    test_idx, rest = _folder_test_split(cfg, images, groups, given, rng)
    if cfg.folder.anomalies == "test":  # every anomalous-class image is tested (MVTec-style one-class benchmarks)
        test_idx, rest = np.union1d(test_idx, rest[is_anomaly[rest]]).astype(int), rest[~is_anomaly[rest]]
    normal_rest, anomal_rest = rest[~is_anomaly[rest]], rest[is_anomaly[rest]]
    anomalies = LazyAnomalies(len(anomal_rest), lambda i: take(anomal_rest[i], np.ones(len(i))))
    test = take(test_idx, is_anomaly[test_idx])
    if images.masks is not None:  # the folder's masks/: pixel truth of the test images
        test.mask = images.masks[test_idx]
    normal_val = normal_rest[images.part[normal_rest] == "val"] if given else normal_rest[:0]
    if len(normal_val):  # the folder's valid/ normals are the validation set; train/ normals are trained on
        normal_train = normal_rest[images.part[normal_rest] == "train"]
        if not len(normal_train):
            raise OddpixError(f"data.normal_classes: the train/ folder of {cfg.folder.root} has no images of "
                              f"{', '.join(map(str, cfg.normal_classes))}")
        return assemble(take(normal_train, np.zeros(len(normal_train))), anomalies, test, cfg, rng,
                        val=take(normal_val, np.zeros(len(normal_val))))
    return assemble(take(normal_rest, np.zeros(len(normal_rest))), anomalies, test, cfg, rng,
                    groups=None if groups is None else groups[normal_rest])


def make_splits(cfg: DataConfig, data: dict, seed: int) -> dict[str, Split]:
    """The splits of ``cfg.protocol`` from the loaded datasets (name -> RawDataset or FolderImages)."""
    return PROTOCOLS[cfg.protocol](cfg, data, np.random.default_rng(seed))


def summarize(splits: dict[str, Split]) -> dict:
    """Counts per split, label and kind: a flat JSON that DVC tracks as metrics."""
    out: dict[str, int] = {}
    for name, split in splits.items():
        out[f"{name}_n"] = int(len(split))
        out[f"{name}_normal"] = int((split.y == 0).sum())
        out[f"{name}_anomaly"] = int((split.y == 1).sum())
        kinds, counts = np.unique(split.kind, return_counts=True)
        for kind, count in zip(kinds, counts):
            out[f"{name}_kind_{''.join(ch if ch.isalnum() else '_' for ch in str(kind))}"] = int(count)
    return out

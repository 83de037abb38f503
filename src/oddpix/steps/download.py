"""Download stage: every dataset the protocol needs, from the mirror or torchvision, as ``<name>.npz``."""

from __future__ import annotations

from pathlib import Path

from ..config import Params, reads
from ..data.folder import load_image_folder
from ..data.sources import load_dataset
from ..io import write_npz
from .common import log


@reads("data.dataset", "data.protocol", "data.anomaly_dataset", "data.mirror", "data.checksums", "data.download",
       "data.folder")
def download(params: Params, out_dir: str | Path, cache_dir: str | Path = "data/downloads") -> None:
    """Materialize every dataset the protocol needs as ``<name>.npz`` (and nothing else) in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = {f"{name}.npz" for name in params.data.datasets()}
    for stale in out_dir.glob("*.npz"):
        if stale.name not in wanted:
            stale.unlink()
    for name in params.data.datasets():
        if name == "folder":
            f = params.data.folder
            images = load_image_folder(f.root, f.image_size, f.channels, warn=log, labels_csv=f.labels)
            write_npz(out_dir / "folder.npz", **images.arrays())
            counts = ", ".join(f"{c} {int((images.y == k).sum())}" for k, c in enumerate(images.classes))
            log(f"folder: {len(images.y)} images ({counts}) from {f.root} at {f.image_size}x{f.image_size}, "
                f"{len(images.skipped)} file(s) skipped (unreadable, hidden or system)")
            continue
        raw = load_dataset(name, mirror=params.data.mirror, checksums=params.data.checksums,
                               download=params.data.download, cache_dir=cache_dir)
        write_npz(out_dir / f"{name}.npz", **raw.arrays())
        log(f"{name}: {len(raw.x_train)} train + {len(raw.x_test)} test images from {raw.source}")

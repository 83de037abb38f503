"""Split stage: train / val / test splits of the protocol, and their summary."""

from __future__ import annotations

from pathlib import Path

from ..config import Params, reads
from ..data.protocols import make_splits, summarize
from ..data.folder import FolderImages
from ..data.sources import RawDataset
from ..errors import OddpixError
from ..io import read_npz, write_json, write_npz
from .common import log


def read_raw(raw_dir: Path, name: str) -> RawDataset | FolderImages:
    """A dataset as the download step wrote it."""
    path = raw_dir / f"{name}.npz"
    if not path.exists():
        raise OddpixError(f"{path} is missing; run the download stage (`dvc repro download`)")
    arrays = read_npz(path)
    if name == "folder":
        return FolderImages.from_arrays(arrays)
    return RawDataset(name, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], str(path))


@reads("seed", "data")
def split(params: Params, raw_dir: str | Path, out_dir: str | Path, summary_path: str | Path) -> None:
    data = {name: read_raw(Path(raw_dir), name) for name in params.data.datasets()}
    splits = make_splits(params.data, data, params.seed)
    for name, part in splits.items():
        write_npz(Path(out_dir) / f"{name}.npz", **part.arrays())
    summary = summarize(splits)
    if "folder" in data:
        summary["skipped_files"] = len(data["folder"].skipped)
    write_json(summary_path, summary)
    log("split: " + ", ".join(f"{n} {len(s)} ({int(s.y.sum())} anomalous)" for n, s in splits.items()))

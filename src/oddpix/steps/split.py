"""Split stage: train / val / test splits of the protocol, and their summary."""

from __future__ import annotations

from pathlib import Path

from ..config import Params
from ..data.protocols import make_splits, summarize
from ..io import write_json, write_npz
from .common import log, needed_datasets, read_raw


def split(params: Params, raw_dir: str | Path, out_dir: str | Path, summary_path: str | Path) -> None:
    data = {name: read_raw(Path(raw_dir), name) for name in needed_datasets(params)}
    splits = make_splits(params.data, data, params.seed)
    for name, part in splits.items():
        write_npz(Path(out_dir) / f"{name}.npz", **part.arrays())
    summary = summarize(splits)
    if "folder" in data:
        summary["skipped_files"] = len(data["folder"].skipped)
    write_json(summary_path, summary)
    log("split: " + ", ".join(f"{n} {len(s)} ({int(s.y.sum())} anomalous)" for n, s in splits.items()))

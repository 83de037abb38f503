"""Preprocess stage: images -> float32 tensors, normalization fitted on the normal training images."""

from __future__ import annotations

from pathlib import Path

from ..config import Params, reads
from ..data.splits import SPLITS
from ..io import write_json, write_npz
from ..preprocess import Preprocessor, check_memory, resize_mask
from ..runtime import physical_memory_bytes
from .common import log, read_split


@reads("preprocess")
def preprocess(params: Params, split_dir: str | Path, out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    parts = {name: read_split(split_dir, name) for name in SPLITS}
    prep = Preprocessor.from_config(params.preprocess)
    check_memory(sum(len(p.x) for p in parts.values()), prep.output_shape(parts["train"].x), physical_memory_bytes())
    prep.fit(parts["train"].x[parts["train"].y == 0])
    for name, part in parts.items():
        x = prep.transform(part.x).numpy()
        mask = {} if part.mask is None else {"mask": resize_mask(part.mask, x.shape[2:])}
        write_npz(out_dir / f"{name}.npz", x=x, y=part.y, label=part.label, kind=part.kind, source=part.source, **mask)
    write_json(out_dir / "preprocess.json", prep.to_dict())
    log(f"preprocess: images -> float32 {tuple(x.shape[1:])}, normalize={prep.normalize}")

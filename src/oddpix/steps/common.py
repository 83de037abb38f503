"""What the pipeline's steps share: logging, and readers of the files one
step writes and the next reads (each with a readable error naming the stage to run when it is missing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.splits import Split
from ..errors import OddpixError
from ..io import read_npz

META_COLUMNS = ("index", "source", "y", "label", "kind")


def log(message: str) -> None:
    print(message, flush=True)


def read_split(directory: str | Path, name: str) -> Split:
    path = Path(directory) / f"{name}.npz"
    if not path.exists():
        raise OddpixError(f"{path} is missing; run the stage that makes it (`dvc repro`)")
    return Split.from_arrays(read_npz(path))


def read_prepared(directory: str | Path, name: str) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    arrays = read_split(directory, name).arrays()
    return torch.from_numpy(arrays.pop("x")), arrays


def read_scores(directory: str | Path, name: str) -> pd.DataFrame:
    path = Path(directory) / f"{name}.csv"
    if not path.exists():
        raise OddpixError(f"{path} is missing; run the score stage (`dvc repro score`)")
    return pd.read_csv(path, keep_default_na=False)


def components(frame: pd.DataFrame, where: str = "scores") -> dict[str, np.ndarray]:
    """The score columns of a scores table as float arrays; a value that is not a finite number stops."""
    out = {}
    for c in frame.columns:
        if c not in META_COLUMNS:
            out[c] = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64)
            require_finite(out[c], f"{where}: component {c}", "rerun the score stage (`dvc repro score`)")
    return out


def require_finite(values, what: str, hint: str) -> None:
    """Stop with one line when ``values`` (an array or tensor) hold NaN, infinity or non-numbers."""
    arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, dtype=np.float64)
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise OddpixError(f"{what}: {bad} of {arr.size} values are not finite numbers (NaN, infinite or empty); {hint}")

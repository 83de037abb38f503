"""What the pipeline's steps share: logging, which datasets a run needs, and readers of the files one
step writes and the next reads (each with a readable error naming the stage to run when it is missing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import Params
from ..data.protocols import Split
from ..data.sources import FolderImages, RawDataset
from ..errors import OddpixError
from ..io import read_npz

META_COLUMNS = ("index", "y", "label", "kind")


def log(message: str) -> None:
    print(message, flush=True)


def needed_datasets(params: Params) -> list[str]:
    names = [params.data.dataset]
    if params.data.protocol == "cross_dataset":
        names.append(params.data.anomaly_dataset)
    return names


def read_raw(raw_dir: Path, name: str):
    path = raw_dir / f"{name}.npz"
    if not path.exists():
        raise OddpixError(f"{path} is missing; run the download stage (`dvc repro download`)")
    arrays = read_npz(path)
    if name == "folder":
        return FolderImages.from_arrays(arrays)
    return RawDataset(name, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], str(path))


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


def components(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: frame[c].to_numpy(dtype=np.float64) for c in frame.columns if c not in META_COLUMNS}

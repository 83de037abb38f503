"""The writers of a run bundle's parts (:mod:`oddpix.bundle`) and the small readers the stages use.

Kept apart from the bundle's reader, which loads detectors, so that the stages that only write a part
(encode: the KDE; score: the run file; threshold: the threshold) depend on no more code than they use.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Optional

from .density import LatentKDE, save_kde
from .errors import OddpixError
from .io import read_json, write_json

RUN_FILE = "run.json"  # beside the score tables: the model they came from and the scoring settings


def model_id(path: str | Path) -> str:
    """The identity of a model file: the start of the SHA-256 of its bytes."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except FileNotFoundError:
        raise OddpixError(f"no trained model at {path}; run `dvc repro` (the train stage) first") from None


def write_kde(path: str | Path, kde: Optional[LatentKDE], model: str, reason: str = "") -> None:
    save_kde(path, kde, reason, model_id=model)


def write_run(scores_dir: str | Path, model: str, scoring: dict) -> None:
    """Beside the score tables: the model they came from and the scoring settings they were made with."""
    write_json(Path(scores_dir) / RUN_FILE, {"model_id": model, "scoring": scoring})


def read_run(scores_dir: str | Path) -> dict:
    path = Path(scores_dir) / RUN_FILE
    if not path.exists():
        raise OddpixError(f"{path} is missing; run the score stage (`dvc repro score`)")
    return read_json(path)


def write_threshold(path: str | Path, threshold: Any, run: dict) -> None:
    """The fitted threshold, with the model it belongs to and the scoring settings predict repeats."""
    threshold.scoring = dict(run.get("scoring", {}))
    write_json(path, {**threshold.to_dict(), "model_id": run.get("model_id")})

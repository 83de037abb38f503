"""A sweep's records: one JSON per cell with its status, metrics, where and with what it ran, and the
code and params versions that decide whether a finished cell can be reused."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Optional, Sequence

from ..errors import OddpixError
from ..provenance import code_version
from ..io import read_json, write_json
from .cells import Cell, apply_settings


def params_hash(raw: dict) -> str:
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def versions() -> dict[str, str]:
    import numpy
    import sklearn
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
           "scikit-learn": sklearn.__version__}
    if "ray" in sys.modules:
        out["ray"] = sys.modules["ray"].__version__
    return out


def git_commit() -> Optional[str]:
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


class CellParams(Mapping):
    """Each cell's params, made when asked for (params.yaml plus its settings): a sweep of 30,000 cells does
    not hold 30,000 copies of params.yaml."""

    def __init__(self, base_raw: dict, cells: Sequence[Cell]):
        self.base, self.cells = base_raw, set(cells)

    def __getitem__(self, cell: Cell) -> dict:
        if cell not in self.cells:
            raise KeyError(cell)
        return apply_settings(self.base, cell.overrides())

    def __iter__(self):
        return iter(self.cells)

    def __len__(self) -> int:
        return len(self.cells)


@dataclass
class Plan:
    raws: Mapping[Cell, dict]   # each cell's params
    done: dict[Cell, dict]      # finished before (status ok, same params and code)
    todo: list[Cell]
    invalid: dict[Cell, str]    # params that do not validate: the message


def plan(base_raw: dict, cells: Sequence[Cell], reports: str | Path, code: str) -> Plan:
    """Each cell's params (validated), and which cells a previous run already finished."""
    from ..config import parse_params

    raws = CellParams(base_raw, cells)
    done, todo, invalid = {}, [], {}
    for cell in cells:
        try:
            raw = raws[cell]
            parse_params(raw)
        except OddpixError as exc:
            invalid[cell] = str(exc)
            continue
        previous = read_record(cell.path(reports), cell)
        if (previous and previous.get("status") == "ok" and previous.get("code_version") == code
                and previous.get("params_hash") == params_hash(raw)):
            done[cell] = previous
        else:
            todo.append(cell)
    return Plan(raws, done, todo, invalid)


def read_record(path: Path, cell: Optional[Cell] = None) -> Optional[dict]:
    """The record at ``path``; None (the cell runs again) when it is unreadable, not a record, or the
    record of another cell than ``cell``."""
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("metrics", {}), dict):
        return None
    if cell is not None and record.get("cell") != json.loads(json.dumps(asdict(cell))):
        return None
    return record


def write_record(cell: Cell, reports: str | Path, raw: Optional[dict], result: dict, engine: str,
                 code: str, commit: Optional[str]) -> dict:
    record = {"cell": asdict(cell), "engine": engine, "code_version": code, "git_commit": commit,
              "params_hash": params_hash(raw) if raw is not None else None,
              "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), **result, "params": raw}
    write_json(cell.path(reports), record)
    return record

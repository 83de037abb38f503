"""A sweep's cells: dataset, detector, normal class, seed and extra ``key=value`` settings, and the params
each one runs with (params.yaml plus its settings)."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import yaml

from ..errors import OddpixError


def _folder_name(name: str) -> str:
    """``name`` as one folder name: characters other than letters, digits, ``_`` and ``-`` become ``_``."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in str(name))
    return safe or "_"


def set_key(raw: dict, dotted: str, value: Any) -> None:
    """``raw["a"]["b"] = value`` for ``dotted = "a.b"``, creating the sections on the way."""
    node = raw
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise OddpixError(f"-S {dotted}: {key} is not a section")
    node[last] = value


def apply_settings(raw: dict, settings: Iterable[str]) -> dict:
    """A copy of ``raw`` with ``key=value`` settings applied (values read as YAML, as ``dvc exp run -S``)."""
    out = copy.deepcopy(raw)
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise OddpixError(f"-S {item!r}: expected key=value")
        set_key(out, key.strip(), yaml.safe_load(value))
    return out


@dataclass(frozen=True)
class Cell:
    dataset: str
    model: str
    cls: Optional[int]  # None: the normal classes of the params (e.g. an image folder's)
    seed: int
    settings: tuple[str, ...] = ()

    @property
    def tag(self) -> str:
        return f"{_class_tag(self.cls)}-s{self.seed}{settings_suffix(self.settings)}"

    def path(self, reports: str | Path) -> Path:
        """Where the cell's record goes: always under ``reports``, whatever the names hold (``../x``, ``/x``)."""
        return Path(reports) / _folder_name(self.dataset) / _folder_name(self.model) / f"{self.tag}.json"

    @property
    def experiment(self) -> str:
        return experiment_name(self.dataset, self.model, self.cls, self.settings, self.seed)

    def dvc_args(self) -> list[str]:
        """``dvc exp run --temp -n <experiment> -S ... evaluate`` (without ``dvc``): this cell as a DVC
        experiment, up to its metrics (a leaderboard needs neither its figures nor its bundle)."""
        return ["exp", "run", "--temp", "-n", self.experiment, *(a for o in self.overrides() for a in ("-S", o)),
                "evaluate"]

    def overrides(self) -> list[str]:
        classes = [] if self.cls is None else [f"data.normal_classes=[{self.cls}]"]
        return [f"model={self.model}", f"data.dataset={self.dataset}", *classes, f"seed={self.seed}", *self.settings]

    def __str__(self) -> str:
        return f"{self.dataset}/{self.model}/{self.tag}"


def settings_suffix(settings: Sequence[str]) -> str:
    return "-" + hashlib.sha1("\n".join(sorted(settings)).encode()).hexdigest()[:6] if settings else ""


def cells_of(dataset: str, models: Sequence[str], classes: Sequence[int], seeds: Sequence[int],
             settings: Sequence[str] = ()) -> list[Cell]:
    once = dict.fromkeys  # `--models knn,knn` names one detector: each cell once
    return [Cell(dataset, m, c, s, tuple(settings)) for m in once(models) for c in once(classes) for s in once(seeds)]


def _class_tag(cls: Optional[int]) -> str:
    return "call" if cls is None else f"c{cls}"


def experiment_name(dataset: str, model: str, cls: Optional[int], extra: Sequence[str] = (), seed: Optional[int] = None) -> str:
    seed_part = f"-s{seed}" if seed is not None else ""
    return f"lb-{dataset.replace('_', '-')}-{model}-{_class_tag(cls)}{seed_part}{settings_suffix(extra)}"

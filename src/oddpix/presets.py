"""Benchmark presets: a measured set-up written as a file, run by the one sweep engine.

A preset (``benchmarks/<name>.yaml``) is a params overlay (applied over params.yaml) plus the cells to
run: datasets x detectors x normal classes x seeds x variants (each variant a list of ``key=value``
settings, as ``dvc exp run -S``), and any extra cells listed one by one. ``oddpix bench PRESET`` runs the
cells that have no result yet (:mod:`oddpix.sweep`), keeps every record in ``benchmarks/results/<name>.jsonl``
and writes the page ``docs/results/<name>.md`` from them (:mod:`oddpix.results_page`).

String values of the overlay may name ``${ODDPIX_DATA_MIRROR}`` (the dataset mirror), ``${preset_dir}``
(the preset's folder) and ``${work}`` (the preset's scratch folder, where ``prepare`` writes generated
data sets).
"""

from __future__ import annotations

import copy
import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence

import yaml

from .errors import ConfigError, OddpixError
from .registry import Registry
from .schema import num, parse_section

PREPARATIONS = Registry("preparation")  # name -> fn(work folder, **settings): generated data a preset uses


@PREPARATIONS.register("patterns")
def _patterns(work: Path, n_train_per_class: int = 100, n_test_per_class: int = 30) -> None:
    """The generated 10-class pattern set as a Fashion-MNIST mirror: ``${work}/mirror/fashion-mnist``."""
    from .data.synthetic import pattern_dataset, write_idx_folder

    write_idx_folder(pattern_dataset(n_train_per_class=n_train_per_class, n_test_per_class=n_test_per_class, seed=0),
                     work / "mirror" / "fashion-mnist")


@PREPARATIONS.register("textures")
def _textures(work: Path, n: int = 1200, size: int = 64, defect_share: float = 0.25) -> None:
    """The generated local-defect folder (``oddpix textures``): ``${work}/textures``."""
    from .data.synthetic import write_defect_folder

    write_defect_folder(work / "textures", n=n, size=size, defect_share=defect_share, seed=0)


@PREPARATIONS.register("tile_groups")
def _tile_groups(work: Path, root: str = "", out: str = "", size: int = 64) -> None:
    """The magnetic tiles' ``file,group`` table (one group per physical tile), when ``out`` is missing."""
    from .data.groups import tile_groups

    if not Path(out).exists():
        tile_groups(Path(root), Path(out), size)


@dataclass(frozen=True)
class ExtraCell:
    model: str
    dataset: Optional[str] = None
    classes: Any = None
    seeds: Optional[int] = num(None, ge=1, le=100)  # default: the preset's
    settings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Preset:
    title: str
    about: str = ""
    base: Literal["params", "defaults"] = "params"  # under the overlay: params.yaml, or the code's defaults
    params: dict[str, Any] = field(default_factory=dict)
    prepare: dict[str, Any] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    classes: Any = None                      # "0-9", [0, 3] or null (the overlay's normal classes)
    seeds: int = num(1, ge=1, le=100)
    variants: list[list[str]] = field(default_factory=lambda: [[]])
    cells: list[ExtraCell] = field(default_factory=list)
    metrics: list[str] = field(default_factory=lambda: ["auroc"])
    per_kind: bool = False                   # a table of AUROC per anomalous class / corruption
    components: bool = False                 # a table of every score component's AUROC
    hash_scores: bool = False                # the page shows each row's hash of the score tables
    name: str = ""                           # the file's name without .yaml (set on load)
    folder: str = "."                        # the folder the file is in (set on load)

    def problems(self):
        unknown = [p for p in self.prepare if p not in PREPARATIONS]
        if unknown:
            yield "prepare", f"{unknown[0]!r} is not a preparation; valid choices: {', '.join(PREPARATIONS)}"
        if not self.models and not self.cells:
            yield "models", "name at least one detector (or list cells)"


def load(path: str | Path) -> Preset:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise OddpixError(f"no preset {path}; the presets are benchmarks/*.yaml") from None
    except yaml.YAMLError as exc:
        raise OddpixError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    try:
        preset = parse_section(Preset, {**(raw or {}), "name": path.stem, "folder": str(path.parent)}, path.name)
    except ConfigError as exc:
        raise OddpixError(f"preset {exc}") from None
    return preset


def _expand(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, names) for v in value]
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            if m.group(1) not in names:
                raise OddpixError(f"preset: ${{{m.group(1)}}} is not known; valid: {', '.join(names)}")
            if not names[m.group(1)]:
                raise OddpixError(f"preset: ${{{m.group(1)}}} is not set (export ODDPIX_DATA_MIRROR=<folder "
                                  "holding the datasets>)")
            return names[m.group(1)]
        return re.sub(r"\$\{([A-Za-z_]+)\}", sub, value)
    return value


def overlay(base: dict, extra: dict) -> dict:
    """``base`` with the mappings of ``extra`` merged in, key by key (a copy)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = overlay(out.get(key) or {}, value) if isinstance(value, dict) else copy.deepcopy(value)
    return out


def _names(preset: Preset, work: Path) -> dict[str, str]:
    return {"work": str(work), "preset_dir": str(Path(preset.folder).resolve()),
            "ODDPIX_DATA_MIRROR": os.environ.get("ODDPIX_DATA_MIRROR", "")}


def base_params(preset: Preset, params_raw: dict, work: Path) -> dict:
    """The params every cell starts from: params.yaml (or nothing: the code's defaults) under the overlay."""
    return overlay(params_raw if preset.base == "params" else {}, _expand(preset.params, _names(preset, work)))


def prepare(preset: Preset, work: Path, log: Callable[[str], None] = print) -> None:
    names = _names(preset, work)
    for name, settings in preset.prepare.items():
        log(f"prepare: {name}")
        PREPARATIONS[name](work, **_expand(settings or {}, names))


def cells(preset: Preset, base: dict) -> list:
    """Every cell of the preset, in order: the product of its lists, then the extra cells."""
    from .leaderboard import parse_classes
    from .sweep import Cell

    def classes_of(spec: Any) -> list[Optional[int]]:
        if spec is None:
            return [None]
        return parse_classes(str(spec) if not isinstance(spec, list) else ",".join(map(str, spec)))

    seed0 = int(base.get("seed", 42))
    seeds = [seed0 + i for i in range(preset.seeds)]
    datasets = preset.datasets or [str((base.get("data") or {}).get("dataset", "fashion_mnist"))]
    out = [Cell(d, m, c, s, tuple(v)) for s in seeds for v in preset.variants for d in datasets
           for m in preset.models for c in classes_of(preset.classes)]
    for extra in preset.cells:
        own = [seed0 + i for i in range(extra.seeds)] if extra.seeds else seeds
        out += [Cell(extra.dataset or datasets[0], extra.model, c, s, tuple(extra.settings))
                for s in own for c in classes_of(extra.classes)]
    return out


def _sweep(preset: Preset, params_raw: dict, engine: str, reports: Path, models: Sequence[str], only: Sequence[str],
           rerun: bool, dry_run: bool, log: Callable[[str], None], engine_options: dict):
    """Run the preset's cells; returns the sweep's result and a summary of this run (None when nothing ran)."""
    import tempfile
    import time

    from .runtime import machine
    from .sweep import run_sweep

    if engine not in ("local", "ray"):
        raise OddpixError(f"--engine: {engine!r}; presets run in-process: valid choices: local, ray")
    work = (reports / preset.name / "work").resolve()
    base = base_params(preset, params_raw, work)
    todo = [c for c in cells(preset, base) if (not models or c.model in models)
            and (not only or any(fnmatch.fnmatchcase(str(c), pattern) for pattern in only))]
    if not dry_run:
        prepare(preset, work, log)
    with tempfile.TemporaryDirectory(prefix="oddpix-rerun-") as fresh:
        start = time.perf_counter()
        result = run_sweep(base, todo, Path(fresh) if rerun else reports / preset.name / "cells", engine, log=log,
                           dry_run=dry_run, **engine_options)
        wall = time.perf_counter() - start
    if dry_run or not result.ran:
        return result, None
    ran = [r for c, r in result.records.items() if c not in result.reused_cells and r.get("status") == "ok"]
    cpus = engine_options.get("cpus_per_cell", 1.0)
    return result, {"engine": engine, "cells": result.ran, "wall_s": round(wall, 1),
                    "cells_s": round(sum(r.get("seconds", 0.0) for r in ran), 1),
                    "at_once": "1" if engine == "local" else f"{cpus:g} CPU(s) per cell",
                    "machine": machine(str(base.get("device", "cpu")))}


def run(path: str | Path, params_raw: dict, engine: str = "local", *, results: Optional[str] = None,
        page: Optional[str] = None, reports: str = "reports/bench", models: Sequence[str] = (),
        only: Sequence[str] = (), table_only: bool = False, dry_run: bool = False, rerun: bool = False, log: Callable[[str], None] = print,
        **engine_options) -> tuple[str, list[str]]:
    """Run a preset's unfinished cells (every cell with ``rerun``), keep the records in its results file and
    a summary of the run beside it (``<results>.runs.jsonl``), write its page; returns the page's Markdown
    and the failed cells."""
    from . import results_page

    preset = load(path)
    results = results or f"benchmarks/results/{preset.name}.jsonl"
    runs_file = str(Path(results).with_suffix("")) + ".runs.jsonl"
    page = page or f"docs/results/{preset.name}.md"
    kept, runs = results_page.read_records(results), results_page.read_records(runs_file)
    failed: list[str] = []
    if not table_only:
        result, summary = _sweep(preset, params_raw, engine, Path(reports), models, only, rerun, dry_run, log,
                                 engine_options)
        if dry_run:
            return "", []
        failed = [f"{c}: {result.records[c].get('error')}" for c in result.failed]
        # read again: another run of this preset may have added records while this one ran
        kept = results_page.merge_records(results_page.read_records(results),
                                          [results_page.compact(r) for r in result.records.values()])
        results_page.write_records(results, kept)
        if summary:
            runs = [*results_page.read_records(runs_file), summary]
            results_page.write_records(runs_file, runs)
    text = results_page.write_page(preset, kept, runs, results, page)
    log(f"written: {page} ({len(kept)} records in {results})")
    return text, failed

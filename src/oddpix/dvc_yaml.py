"""dvc.yaml, generated from the stage table (:mod:`oddpix.pipeline`): ``oddpix dvc-yaml --write``.

Each stage's code deps are the source files its script and step import (:mod:`oddpix.imports`; a
package folder when every module in it is imported), its params are exactly the keys its step declares
with ``@reads``, and its data deps and outs are the table's paths. A test fails when the committed
dvc.yaml differs from what this module writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import OddpixError
from .imports import SRC, closure
from .pipeline import ARTIFACTS, LAYOUT, PLOT_VIEWS, STAGES, Stage

HEADER = ("# Generated from the stage table in src/oddpix/pipeline.py by `oddpix dvc-yaml --write`; do not edit.\n"
          "# Code deps: the modules each stage imports; params: the keys its step reads (@reads).\n")


def _folders(files: set[Path]) -> list[Path]:
    """``files`` with every package folder whose modules are all in it written as the folder."""
    out = set(files)
    for folder in sorted({p.parent for p in files}, key=lambda p: len(p.parts)):
        every = set(folder.rglob("*.py"))
        if folder != SRC / "oddpix" and every and every <= files and (folder / "__init__.py").exists():
            out = (out - every) | {folder}
    return sorted(out - {p for p in out for f in out if f != p and f in p.parents})


def code_deps(stage: Stage, root: Path) -> list[str]:
    script = root / "stages" / f"{stage.name}.py"
    files = closure([stage.module], [script])
    try:
        return [str(p.resolve().relative_to(root.resolve())) for p in _folders(files)]
    except ValueError:
        raise OddpixError(f"the oddpix package ({SRC}) is not under {root}: dvc.yaml is generated in the "
                          "repository that holds the source (an editable install)") from None


def _out(stage: Stage, key: str) -> Any:
    kept = key in stage.metrics or key in stage.plots or key in stage.uncached
    return {LAYOUT[key]: {"cache": False}} if kept else LAYOUT[key]


def stage_entry(stage: Stage, root: Path) -> dict:
    entry: dict[str, Any] = {"cmd": f"python stages/{stage.name}.py"}
    entry["deps"] = code_deps(stage, root) + [LAYOUT[k] for k in (*stage.after, *stage.deps.values())]
    entry["params"] = [{"params.yaml": None}] if stage.whole_params else list(stage.step().params_read)
    if not entry["params"]:
        del entry["params"]
    outs = [k for k in stage.outs.values() if k not in stage.metrics and k not in stage.plots]
    for section, keys in (("outs", outs), ("metrics", stage.metrics), ("plots", stage.plots)):
        if keys:
            entry[section] = [_out(stage, k) for k in keys]
    return entry


def generate(root: str | Path = ".") -> str:
    root = Path(root)
    document = {"stages": {s.name: stage_entry(s, root) for s in STAGES}, "plots": PLOT_VIEWS,
                "artifacts": ARTIFACTS}
    return HEADER + yaml.safe_dump(document, sort_keys=False, width=110, default_flow_style=False)

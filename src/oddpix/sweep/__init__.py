"""Sweeps: every cell (dataset, detector, normal class, seed, extra settings) run once, one JSON per cell.

A cell's params are params.yaml plus its settings (``model=``, ``data.dataset=``, ``data.normal_classes=``,
``seed=`` and the sweep's ``-S`` settings), validated before anything runs. Its result is written
atomically to ``<reports>/<dataset>/<model>/c<class>-s<seed>[-<hash of the -S settings>].json``: status,
params, metrics, seconds, device, package versions and the code version (a hash of the oddpix source). A
cell whose JSON exists with status ``ok`` for the same params and code version is not run again, so an
interrupted sweep resumes where it stopped and a changed detector reruns everything it touches. A cell
that fails (impossible params, a crash, out of memory, a killed worker) gets a JSON with the error and does
not stop the others; it is run again next time.

Engines (``oddpix leaderboard --engine``):

* ``dvc``: each cell is a named DVC experiment of the current commit (``dvc exp run --temp``), so
  ``dvc exp show`` lists them; an experiment of that name that exists for the commit is reused.
* ``ray``: each cell is a Ray task running the same stage functions as ``dvc repro``, in-process, in a
  scratch folder of its own; ``ray.init()`` starts a local Ray (every core and GPU of this machine) unless
  ``address`` (or ``RAY_ADDRESS``) names a cluster. A task asks for ``cpus_per_cell`` CPUs (and as many
  torch threads) and ``gpus_per_cell`` GPUs (0.25 packs four cells on one GPU; ``device: auto`` then runs
  on the GPU Ray assigned).
* ``local``: the same in-process runs, one after another in this process.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..errors import OddpixError
from .cells import Cell, apply_settings, cells_of, experiment_name, set_key, settings_suffix
from .engines import _run_dvc, _run_local, _run_ray, dvc, finished_experiments, run_cell
from .records import Plan, code_version, git_commit, params_hash, plan, read_record, versions, write_record

__all__ = ["Cell", "Plan", "SweepResult", "apply_settings", "cells_of", "code_version", "dvc", "experiment_name",
           "finished_experiments", "git_commit", "params_hash", "plan", "read_record", "run_cell", "run_sweep",
           "set_key", "settings_suffix", "versions", "write_record"]

ENGINES = ("dvc", "ray", "local")


class Progress:
    """One bar for the whole sweep: cells done / failed / left and tqdm's estimate of the time left."""

    def __init__(self, total: int, finished: int, enabled: bool = True):
        from tqdm import tqdm

        self.ok, self.failed, self.total = finished, 0, total
        self.bar = tqdm(total=total, initial=finished, desc="sweep", unit="cell", file=sys.stderr,
                        disable=not enabled, dynamic_ncols=True)
        self._postfix()

    def _postfix(self) -> None:
        self.bar.set_postfix_str(f"done {self.ok}, failed {self.failed}, left {self.total - self.ok - self.failed}")

    def update(self, record: dict) -> None:
        if record.get("status") == "ok":
            self.ok += 1
        else:
            self.failed += 1
        self._postfix()
        self.bar.update(1)

    def write(self, message: str) -> None:
        self.bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


@dataclass
class SweepResult:
    records: dict[Cell, dict]
    ran: int
    reused_cells: frozenset  # the cells finished before, whose records were reused

    @property
    def reused(self) -> int:
        return len(self.reused_cells)

    @property
    def failed(self) -> list[Cell]:
        return [c for c, r in self.records.items() if r.get("status") != "ok"]


def run_sweep(base_raw: dict, cells: Sequence[Cell], reports: str | Path, engine: str = "local", *,
              address: Optional[str] = None, cpus_per_cell: float = 1.0, gpus_per_cell: float = 0.0,
              progress: bool = True, log: Callable[[str], None] = print, dry_run: bool = False,
              keep_scores: bool = False) -> SweepResult:
    """Run every cell of ``cells`` that has no finished result in ``reports``; returns every cell's record.
    ``dry_run``: only say what would run (for the dvc engine, the commands), run and write nothing.
    ``keep_scores``: each cell run also keeps its score tables beside its record, in ``<record>.scores/``
    (local and ray engines; on a cluster, where the workers write it)."""
    if engine not in ENGINES:
        raise OddpixError(f"--engine: {engine!r} is not an engine; valid choices: {', '.join(ENGINES)}")
    code = code_version()
    p = plan(base_raw, cells, reports, code)
    records = dict(p.done)
    log(f"sweep: {len(cells)} cell{'' if len(cells) == 1 else 's'}, {len(p.done)} finished already, {len(p.todo)} to run"
        + (f", {len(p.invalid)} with invalid params" if p.invalid else "") + f" (engine {engine})")
    if p.invalid and len(p.invalid) == len(cells) and not dry_run:  # e.g. a misspelt -S key: nothing can run
        cell, message = next(iter(p.invalid.items()))
        raise OddpixError(f"the params of every cell are invalid, nothing was run or written ({cell}: {message})")
    if dry_run:
        for cell, message in p.invalid.items():
            log(f"invalid: {cell}: {message}")
        for cell in p.todo:
            log(f"would run: {cell}" + (f"  (dvc {' '.join(cell.dvc_args())})" if engine == "dvc" else ""))
        return SweepResult(records, 0, frozenset(p.done))
    bar = Progress(len(cells), len(p.done), enabled=progress)
    commit = git_commit()
    try:
        for cell, message in p.invalid.items():
            records[cell] = write_record(cell, reports, None, {"status": "failed", "error": message}, engine, code,
                                         commit)
            bar.update(records[cell])

        def finish(cell: Cell, result: dict) -> None:
            records[cell] = write_record(cell, reports, p.raws[cell], result, engine, code, commit)
            if result["status"] != "ok":
                bar.write(f"sweep: {cell} failed: {result['error']}")
            bar.update(records[cell])

        runner = {"local": _run_local, "ray": _run_ray, "dvc": _run_dvc}[engine]
        keep = (lambda cell: str(cell.path(reports).with_suffix(".scores"))) if keep_scores else None
        runner(p, finish, address=address, cpus_per_cell=cpus_per_cell, gpus_per_cell=gpus_per_cell, keep=keep,
               note=bar.write)
    finally:
        bar.close()
    return SweepResult(records, len(p.todo), frozenset(p.done))

"""Sweep benchmark: the same sweep run one cell after another and with the ray engine, wall times and speed-up.

Default: 12 cells (knn and ae, classes 0-2, 2 seeds) on Fashion-MNIST, real data (ODDPIX_DATA_MIRROR or a
download), each engine into a fresh reports folder so nothing is reused:

* ``local``: the cells one after another in this process, torch using every core (what a plain loop does);
  ``local:N``: the same with N torch threads (``local:1``: one core, each cell exactly as a ray cell runs);
* ``ray``: a local Ray on this machine, one CPU (and one torch thread) per cell, as many cells at once as
  there are cores;
* ``processes`` (benchmark only): the same cells over as many plain processes as there are cores, one
  torch thread each, no Ray (and no JSON per cell): what Ray's own start, stop and processes cost on top; with ``--gpus-per-cell``
  1 / share processes at once, all on GPU 0 (``device: auto``): GPU packing measured where Ray is missing;
* ``dvc`` (only with ``--engines local,ray,dvc``; run it in a clean clone, it makes DVC experiments): one
  ``dvc exp run --temp`` after another, today's ``oddpix leaderboard``.

    python benchmarks/sweep.py                                   # writes benchmarks/sweep.md
    python benchmarks/sweep.py --engines local:1,local,ray       # also one cell at a time on one core
    python benchmarks/sweep.py --engines local:1,processes       # Ray's overhead: plain processes instead
    ray start --head && python benchmarks/sweep.py --engines local:1,ray --address auto; ray stop
                                                                 # Ray started once, not by the sweep
    python benchmarks/sweep.py --gpus-per-cell 1,0.25,0.125      # on a GPU machine: 1, 4 and 8 cells per GPU
    python benchmarks/sweep.py --engines processes --gpus-per-cell 1,0.25,0.125   # the same without Ray

Rows are appended to --out (JSON lines) and the table in --table is rebuilt from all of them. Every row
also says whether both engines gave the same AUROC for every cell, and the cells' own seconds added up (the
rest of the wall time, times the cells at once, is the engine's: starting processes, Ray).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import click

from oddpix.config import read_raw_params
from oddpix.leaderboard import parse_classes
from oddpix.sweep import SweepResult, apply_settings, cells_of, run_cell, run_sweep


def run_processes(base: dict, cells, workers: int) -> SweepResult:
    """The cells over ``workers`` spawned plain processes, one thread each (OMP_NUM_THREADS=1 and one torch
    thread, as Ray's workers): :func:`run_cell` on each cell's params, as the ray engine's tasks; no Ray."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    raws = [apply_settings(base, cell.overrides()) for cell in cells]
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # the spawned processes read it when they start
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(run_cell, raws, [1] * len(raws)))
    finally:
        if before is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = before
    return SweepResult(dict(zip(cells, results)), len(cells), 0)


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, {os.cpu_count()} CPU cores"
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores)"


def write_table(results: Path, table: Path) -> None:
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    lines = ["<!-- written by benchmarks/sweep.py from its results file; do not edit by hand -->", "",
             "| sweep | engine | cells at once | wall s | cells' own s | cells/min | speed-up vs the first | "
             "same AUROC as the first | machine |", "|---|---|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        own = f"{r['cells_s']:.1f}" if "cells_s" in r else "-"
        lines.append(f"| {r['sweep']} | {r['engine']} | {r['parallel']} | {r['wall_s']:.1f} | {own} | "
                     f"{r['cells_per_min']:.2f} | {r.get('speedup', 1.0):.2f}x | {r.get('same_auroc', '-')} | "
                     f"{r['machine']} |")
    table.write_text("\n".join(lines) + "\n")


@click.command()
@click.option("--dataset", default="fashion_mnist", show_default=True)
@click.option("--models", default="knn,ae", show_default=True)
@click.option("--classes", default="0-2", show_default=True)
@click.option("--seeds", default=2, show_default=True)
@click.option("--gpus-per-cell", default="", help="ray or processes on a GPU: comma-separated GPU shares per cell, e.g. 1,0.25")
@click.option("--engines", default="local,ray", show_default=True, help="the first is the baseline")
@click.option("-S", "--set", "sets", multiple=True, help="extra params for every cell, key=value")
@click.option("--address", default=None, help="ray: join this running Ray (e.g. auto) instead of starting one")
@click.option("--out", default="benchmarks/sweep_results.jsonl", show_default=True)
@click.option("--table", default="benchmarks/sweep.md", show_default=True)
def main(dataset, models, classes, seeds, gpus_per_cell, engines, sets, address, out, table):
    import torch

    base = read_raw_params("params.yaml")
    cells = cells_of(dataset, models.split(","), parse_classes(classes), [42 + i for i in range(seeds)], sets)
    name = f"{dataset} {models} classes {classes} x {seeds} seeds ({len(cells)} cells)" + (f" {' '.join(sets)}" if sets else "")
    cores = os.cpu_count() or 1
    shares = [float(g) for g in gpus_per_cell.split(",")] if gpus_per_cell else []
    runs = []
    for engine in engines.split(","):
        if engine == "ray" and shares:
            runs += [("ray", {"gpus_per_cell": g}, f"{round(1 / g)} per GPU") for g in shares]
        elif engine == "ray":
            runs += [("ray", {"cpus_per_cell": 1.0}, f"{cores} (1 thread each)")]
        elif engine == "processes" and shares:  # 1 / share processes at once, all on GPU 0
            runs += [("processes", {"workers": round(1 / g)}, f"{round(1 / g)} per GPU, no Ray") for g in shares]
        elif engine == "processes":
            runs += [("processes", {"workers": cores}, f"{cores} (1 thread each, no Ray)")]
        elif engine.startswith("local:"):
            n = engine.split(":")[1]
            if not n.isdigit() or int(n) < 1:
                raise click.BadParameter(f"{engine}: local:N needs a number of threads N >= 1", param_hint="--engines")
            runs += [("local", {"threads": int(n)}, f"1 ({n} thread{'s' if int(n) > 1 else ''})")]
        else:
            runs += [(engine, {}, f"1 ({torch.get_num_threads()} threads)")]
    if address:  # the ray runs join a running Ray: its start and stop are not in their wall time
        runs = [(e, {**o, "address": address}, p + ", Ray already running") if e == "ray" else (e, o, p)
                for e, o, p in runs]
    baseline = None
    for engine, options, parallel in runs:
        threads = torch.get_num_threads()
        torch.set_num_threads(options.get("threads", threads))
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            if engine == "processes":
                result = run_processes(base, cells, options["workers"])
            else:
                result = run_sweep(base, cells, Path(tmp) / "reports", engine, progress=False,
                                   **{k: v for k, v in options.items() if k not in ("threads", "workers")})
            wall = time.perf_counter() - start
        torch.set_num_threads(threads)
        failed = result.failed
        aurocs = {str(c): r["metrics"]["auroc"] for c, r in result.records.items() if r["status"] == "ok"}
        row = {"sweep": name, "engine": engine, "parallel": parallel, "wall_s": round(wall, 1),
               "cells_s": round(sum(r.get("seconds", 0.0) for r in result.records.values()), 1),
               "cells_per_min": len(cells) / wall * 60, "failed": len(failed), "machine": machine(), **options}
        if baseline is None:
            baseline = (wall, aurocs)
        else:
            row["speedup"] = round(baseline[0] / wall, 2)
            row["same_auroc"] = "yes" if aurocs == baseline[1] else (
                f"no: max diff {max(abs(aurocs[k] - baseline[1][k]) for k in aurocs if k in baseline[1]):.2e}")
        print(f"RESULT {engine} {parallel}: {wall:.1f}s, {row['cells_per_min']:.2f} cells/min, failed {len(failed)}"
              + (f", speed-up {row['speedup']}x, same AUROC: {row['same_auroc']}" if "speedup" in row else ""),
              flush=True)
        with open(out, "a") as fh:
            fh.write(json.dumps(row) + "\n")
    write_table(Path(out), Path(table))


if __name__ == "__main__":
    main()

"""Accuracy benchmark: detectors x normal classes on real data, AUROC on the full test set.

Runs the pipeline's stage functions in-process (the same code `dvc repro` runs), with params.yaml plus
overrides, into a scratch folder, and prints a Markdown table: AUROC of the configured score component,
and the best single component in brackets. Needs the datasets (ODDPIX_DATA_MIRROR or a download).

    python benchmarks/accuracy.py --dataset fashion_mnist --classes 0 --models cae,vae,deep_svdd
    python benchmarks/accuracy.py --dataset mnist --classes 0-9 --models cae -S models.cae.epochs=10
    python benchmarks/accuracy.py --models aae,cae --classes 0 -S data.contamination=0.1   # robustness

    python benchmarks/accuracy.py --models ssl --classes 0-9 --seeds 3   # mean +- std over seeds 42, 43, 44

Results are also appended as JSON lines to --out (default benchmarks/results.jsonl, not in git), and the
table of 10-class means (mean over classes per seed, then mean +- std over seeds) is rebuilt from every
row of --out into --table (default benchmarks/accuracy.md, which the README quotes). `--table-only`
rebuilds it without running anything (e.g. after several processes appended to the same --out).

Many small runs share a GPU (or the cores) well: n processes, each ``--shard i/n`` of the same sweep,
one thread each, appending to one --out (``--skip-done`` resumes a cut sweep)::

    for i in $(seq 0 15); do OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/accuracy.py --models \
      knn,cae,ae,vae,ae_kde,aae,deep_svdd,ganomaly,geom,ssl --classes 0-9 --seeds 3 --dataset mnist \
      -S device=cuda --shard $i/16 --skip-done --out benchmarks/accuracy_results.jsonl & done; wait
    python benchmarks/accuracy.py --table-only --out benchmarks/accuracy_results.jsonl
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import click
import yaml

from oddpix.leaderboard import parse_classes
from oddpix.metrics import metric_key
from oddpix.pipeline import run as run_stages
from oddpix.sweep import set_key  # noqa: F401 (set_key: benchmarks/local.py)


def run_one(raw: dict, root: Path) -> tuple[dict, float]:
    start = time.perf_counter()
    metrics = run_stages(raw, root)
    train_report = json.loads((root / "metrics/train.json").read_text())
    return {**metrics, "train": train_report}, time.perf_counter() - start


def machine() -> str:
    import torch
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def write_table(results: Path, table: Path) -> None:
    """The Markdown table of every (dataset, detector, settings) in ``results``: mean AUROC over classes per
    seed, then mean +- std over the seeds; the last row of a repeated cell wins."""
    cells: dict = {}
    for line in results.read_text().splitlines():
        row = json.loads(line)
        key = (row["dataset"], row["model"], " ".join(row.get("sets", [])), row.get("seed", 42), row["class"])
        cells[key] = row
    groups: dict = defaultdict(lambda: defaultdict(dict))
    for (dataset, model, sets, seed, cls), row in cells.items():
        groups[(dataset, model, sets)][seed][cls] = row
    lines = ["<!-- written by benchmarks/accuracy.py from its results file; do not edit by hand -->", "",
             "| dataset | detector | settings | classes | seeds (each with every class) | mean AUROC | std (seeds) | "
             "per class (mean of seeds) "
             "| s/class | machine |", "|---|---|---|---:|---|---:|---:|---|---:|---|"]
    for (dataset, model, sets), by_seed in sorted(groups.items()):
        classes = sorted(set.union(*(set(c) for c in by_seed.values())))
        complete = [s for s in sorted(by_seed) if set(by_seed[s]) == set(classes)]  # seeds with every class
        if not complete:  # no seed has run every class yet: the classes every seed has
            classes = sorted(set.intersection(*(set(c) for c in by_seed.values())))
            complete = sorted(by_seed)
        means = [statistics.mean(by_seed[s][c]["auroc"] for c in classes) for s in complete]
        per_class = " ".join(f"{c}:{statistics.mean(by_seed[s][c]['auroc'] for s in complete):.3f}" for c in classes)
        rows = [by_seed[s][c] for s in complete for c in classes]
        seconds = statistics.mean(r["seconds"] for r in rows)
        machines = sorted({r.get("machine", "?") for r in rows})
        std = f"{statistics.stdev(means):.4f}" if len(means) > 1 else "-"
        component = rows[0]["component"]
        lines.append(f"| {dataset} | {model} ({component}) | {sets or 'defaults'} | {len(classes)} | "
                     f"{', '.join(map(str, complete))} | {statistics.mean(means):.4f} | {std} | {per_class} | "
                     f"{seconds:.0f} | {'; '.join(machines)} |")
    lines += ["", "Every score component on its own (mean AUROC over every run of the results file):", "",
              "| dataset | detector | settings | " + "component mean AUROC |", "|---|---|---|---|"]
    for (dataset, model, sets), by_seed in sorted(groups.items()):
        rows = [r for s in by_seed for r in by_seed[s].values()]
        names = list(dict.fromkeys(k for r in rows for k in r.get("components", {})))
        if len(names) > 1:
            means = {k: statistics.mean(r["components"][k] for r in rows if k in r["components"]) for k in names}
            lines.append(f"| {dataset} | {model} | {sets or 'defaults'} | "
                         + ", ".join(f"`{k}` {v:.4f}" for k, v in means.items()) + " |")
    table.write_text("\n".join(lines) + "\n")
    print(f"table: {table}")


@click.command()
@click.option("--dataset", default="fashion_mnist", show_default=True)
@click.option("--classes", default="0", show_default=True, help="normal classes, one run each: 0-9, 0,3 ...")
@click.option("--models", default="cae", show_default=True)
@click.option("-S", "--set", "sets", multiple=True, help="extra params, key=value (YAML value)")
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--out", default="benchmarks/results.jsonl", show_default=True)
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(1),
              help="runs per class, seeds params.seed, params.seed + 1, ...")
@click.option("--table", default="benchmarks/accuracy.md", show_default=True,
              help="Markdown table rebuilt from every row of --out")
@click.option("--table-only", is_flag=True, help="only rebuild --table from --out")
@click.option("--shard", default="0/1", show_default=True,
              help="i/n: run only every n-th cell starting at i (n processes share a sweep)")
@click.option("--skip-done", is_flag=True, help="skip cells that already have a row in --out (resume a sweep)")
def main(dataset, classes, models, sets, params_file, out, seeds, table, table_only, shard, skip_done):
    if table_only:
        write_table(Path(out), Path(table))
        return
    base = yaml.safe_load(Path(params_file).read_text())
    rows = []
    cells = [(model, cls, base.get("seed", 42) + i) for i in range(seeds)  # seed-major: a cut sweep has whole seeds
             for model in [m.strip() for m in models.split(",") if m.strip()] for cls in parse_classes(classes)]
    index, _, count = shard.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise click.BadParameter(f"{shard!r} is not i/n with 0 <= i < n", param_hint="--shard")
    cells = cells[int(index)::int(count)]
    if skip_done and Path(out).exists():
        done = {(r["dataset"], r["model"], r["class"], r.get("seed"), tuple(r.get("sets", [])))
                for r in map(json.loads, Path(out).read_text().splitlines())}
        cells = [c for c in cells if (dataset, c[0], c[1], c[2], tuple(sets)) not in done]
    for model, cls, seed in cells:
        raw = json.loads(json.dumps(base))
        set_key(raw, "seed", seed)
        set_key(raw, "model", model)
        set_key(raw, "data.dataset", dataset)
        set_key(raw, "data.normal_classes", [cls])
        for item in sets:
            key, _, value = item.partition("=")
            set_key(raw, key, yaml.safe_load(value))
        with tempfile.TemporaryDirectory() as tmp:
            metrics, seconds = run_one(raw, Path(tmp))
        comps = {k[6:]: v for k, v in metrics.items()
                 if k.startswith("auroc_") and not k[6:].startswith(("class_", "dataset_", "corruption_"))}
        best = max(comps, key=comps.get) if comps else metrics["component"]
        row = {"dataset": dataset, "model": model, "class": cls, "seed": seed, "machine": machine(),
               "component": metrics["component"],
               "auroc": metrics["auroc"], "best_component": best, "best_auroc": comps.get(best, metrics["auroc"]),
               "components": comps, "seconds": round(seconds, 1), "sets": list(sets),
               "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),  # of the process so far
               "train": {k: v for k, v in metrics["train"].items() if k.startswith(("rejected", "cv_", "epochs"))}}
        rows.append(row)
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"RESULT {dataset} {model} class {cls} seed {seed}: AUROC {row['auroc']:.4f} ({row['component']}); "
              f"best {metric_key(best)} {row['best_auroc']:.4f}; {seconds:.0f}s", flush=True)
    print("\n| dataset | detector | class | AUROC (component) | best component | time |")
    print("|---|---|---:|---|---|---:|")
    for r in rows:
        print(f"| {r['dataset']} | {r['model']} | {r['class']} | {r['auroc']:.3f} ({r['component']}) | "
              f"{r['best_component']} {r['best_auroc']:.3f} | {r['seconds']:.0f}s |")
    write_table(Path(out), Path(table))
    models_run = list(dict.fromkeys(r["model"] for r in rows))
    if len(rows) > len(models_run):  # several classes: the one-class benchmark's figure, mean over classes
        print("\n| dataset | detector | classes | mean AUROC | min | time |")
        print("|---|---|---:|---:|---:|---:|")
        for model in models_run:
            mine = [r for r in rows if r["model"] == model]
            aurocs = [r["auroc"] for r in mine]
            print(f"| {dataset} | {model} | {len(mine)} | {sum(aurocs) / len(aurocs):.3f} | {min(aurocs):.3f} | "
                  f"{sum(r['seconds'] for r in mine):.0f}s |")


if __name__ == "__main__":
    main()

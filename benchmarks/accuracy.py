"""Accuracy benchmark: detectors x normal classes on real data, AUROC on the full test set.

Runs the pipeline's stage functions in-process (the same code `dvc repro` runs), with params.yaml plus
overrides, into a scratch folder, and prints a Markdown table: AUROC of the configured score component,
and the best single component in brackets. Needs the datasets (ODDPIX_DATA_MIRROR or a download).

    python benchmarks/accuracy.py --dataset fashion_mnist --classes 0 --models cae,vae,deep_svdd
    python benchmarks/accuracy.py --dataset mnist --classes 0-9 --models cae -S models.cae.epochs=10
    python benchmarks/accuracy.py --models aae,cae --classes 0 -S data.contamination=0.1   # robustness

Results are also appended as JSON lines to --out (default benchmarks/results.jsonl, not in git).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import click
import yaml

from oddpix import pipeline
from oddpix.config import parse_params
from oddpix.leaderboard import parse_classes
from oddpix.metrics import metric_key


def set_key(raw: dict, dotted: str, value) -> None:
    node = raw
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def run_one(raw: dict, root: Path) -> tuple[dict, float]:
    params = parse_params(raw)
    start = time.perf_counter()
    pipeline.download(params, root / "raw", root / "cache")
    pipeline.split(params, root / "raw", root / "split", root / "split.json")
    pipeline.preprocess(params, root / "split", root / "prepared")
    pipeline.train(params, root / "prepared", root / "model.pt", root / "history.csv", root / "train.json")
    pipeline.encode(params, root / "prepared", root / "model.pt", root / "latents.npz", root / "kde.pt")
    pipeline.score(params, root / "prepared", root / "model.pt", root / "latents.npz", root / "kde.pt", root / "scores")
    pipeline.threshold(params, root / "scores", root / "threshold.json")
    metrics = pipeline.evaluate(params, root / "scores", root / "threshold.json", root / "metrics.json", root / "curves")
    train_report = json.loads((root / "train.json").read_text())
    return {**metrics, "train": train_report}, time.perf_counter() - start


@click.command()
@click.option("--dataset", default="fashion_mnist", show_default=True)
@click.option("--classes", default="0", show_default=True, help="normal classes, one run each: 0-9, 0,3 ...")
@click.option("--models", default="cae", show_default=True)
@click.option("-S", "--set", "sets", multiple=True, help="extra params, key=value (YAML value)")
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--out", default="benchmarks/results.jsonl", show_default=True)
def main(dataset, classes, models, sets, params_file, out):
    base = yaml.safe_load(Path(params_file).read_text())
    rows = []
    for model in [m.strip() for m in models.split(",") if m.strip()]:
        for cls in parse_classes(classes):
            raw = json.loads(json.dumps(base))
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
            row = {"dataset": dataset, "model": model, "class": cls, "component": metrics["component"],
                   "auroc": metrics["auroc"], "best_component": best, "best_auroc": comps.get(best, metrics["auroc"]),
                   "components": comps, "seconds": round(seconds, 1), "sets": list(sets),
                   "train": {k: v for k, v in metrics["train"].items() if k.startswith(("rejected", "cv_", "epochs"))}}
            rows.append(row)
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            with open(out, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"RESULT {dataset} {model} class {cls}: AUROC {row['auroc']:.4f} ({row['component']}); "
                  f"best {metric_key(best)} {row['best_auroc']:.4f}; {seconds:.0f}s", flush=True)
    print("\n| dataset | detector | class | AUROC (component) | best component | time |")
    print("|---|---|---:|---|---|---:|")
    for r in rows:
        print(f"| {r['dataset']} | {r['model']} | {r['class']} | {r['auroc']:.3f} ({r['component']}) | "
              f"{r['best_component']} {r['best_auroc']:.3f} | {r['seconds']:.0f}s |")
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

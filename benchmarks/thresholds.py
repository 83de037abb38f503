"""Threshold benchmark: which default decision rule can a user trust? Every rule fitted on the same
validation scores, judged on the test split, over many one-class tasks.

For each (dataset, detector, normal class) the pipeline runs once in-process (params.yaml plus overrides,
the same stage functions `dvc repro` runs); then every rule below is fitted on that run's validation
scores (the rule's only input, as in the threshold stage) and applied to its test scores. The table gives,
per rule, the mean over tasks of the false-alarm rate on the test normals, the share of anomalies
detected, accuracy and F1, and the worst task's false-alarm rate: a default should keep its promise on
every task, not on average.

    python benchmarks/thresholds.py --datasets fashion_mnist,mnist --models knn,ae --classes 0-9

Rows are appended to --out (JSON lines) and the table is rebuilt from every row into --table
(benchmarks/thresholds.md, quoted by the README).
"""

from __future__ import annotations

import json
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

import click
import numpy as np
import pandas as pd
import yaml

from oddpix.config import parse_params
from oddpix.leaderboard import parse_classes
from oddpix.metrics import evaluate
from oddpix.pipeline import run as run_stages
from oddpix.sweep import set_key
from oddpix.thresholds import ThresholdConfig, fit_threshold

# (label, threshold settings): the candidates for the default
RULES = {
    "zscore k=3 (mean + 3 std)": {"rule": "zscore", "k": 3.0},
    "zscore k=2": {"rule": "zscore", "k": 2.0},
    "percentile 99": {"rule": "percentile", "percentile": 99.0},
    "percentile 95": {"rule": "percentile", "percentile": 95.0},
    "percentile 90": {"rule": "percentile", "percentile": 90.0},
    "otsu": {"rule": "otsu"},
}


def judge(rule: dict, val: pd.DataFrame, test: pd.DataFrame, component: str) -> dict:
    """The rule fitted on ``val``, its decisions on ``test`` scored by the evaluate stage's metrics."""
    thr = fit_threshold(ThresholdConfig(**rule), val[component].to_numpy(np.float64), component,
                        val["y"].to_numpy())
    s = test[component].to_numpy(np.float64)
    m = evaluate(test["y"].to_numpy(), s, thr.predict(s))
    return {"false_alarm_rate": m["fp"] / max(m["fp"] + m["tn"], 1), "detected": m["recall"],
            "accuracy": m["accuracy"], "f1": m["f1"]}


def table(rows: list[dict]) -> str:
    by_rule = defaultdict(list)
    for r in rows:
        for label, figures in r["rules"].items():
            by_rule[label].append(figures)
    tasks = sorted({(r["dataset"], r["model"]) for r in rows})
    lines = [f"Tasks: {len(rows)} one-class runs ({', '.join(f'{d} {m}' for d, m in tasks)}; seed 42, params.yaml "
             "defaults otherwise). Each rule fitted on the run's validation scores only; figures on its test split.",
             "", "| rule | false alarms (test normals) | worst task | anomalies detected | accuracy | F1 |",
             "|---|---:|---:|---:|---:|---:|"]
    for label in RULES:
        f = by_rule.get(label)
        if not f:
            continue
        def m(key):
            values = [x[key] for x in f]
            return f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}"
        lines.append(f"| {label} | {m('false_alarm_rate')} | {max(x['false_alarm_rate'] for x in f):.3f} | "
                     f"{m('detected')} | {m('accuracy')} | {m('f1')} |")
    lines += ["", "Accuracy and F1 reward flagging more here (9 of 10 test images of a one-class task are anomalies); "
              "the false-alarm columns say whether a rule keeps its promise. `otsu` needs anomalies in the "
              "validation split: on normals alone it cuts their own score distribution in two."]
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--datasets", default="fashion_mnist,mnist", show_default=True)
@click.option("--models", default="knn,ae", show_default=True)
@click.option("--classes", default="0-9", show_default=True)
@click.option("-S", "overrides", multiple=True, help="key=value on top of params.yaml")
@click.option("--params", "params_path", default="params.yaml", show_default=True)
@click.option("--out", default="benchmarks/thresholds_results.jsonl", show_default=True)
@click.option("--table", "table_path", default="benchmarks/thresholds.md", show_default=True)
@click.option("--table-only", is_flag=True)
def main(datasets, models, classes, overrides, params_path, out, table_path, table_only):
    out = Path(out)
    if not table_only:
        base = yaml.safe_load(Path(params_path).read_text())
        for dataset in datasets.split(","):
            for model in models.split(","):
                for c in parse_classes(classes):
                    raw = json.loads(json.dumps(base))
                    for setting in (f"data.dataset={dataset}", "data.protocol=one_vs_rest",
                                    f"data.normal_classes=[{c}]", f"model={model}", *overrides):
                        key, value = setting.split("=", 1)
                        set_key(raw, key, yaml.safe_load(value))
                    params = parse_params(raw)
                    with tempfile.TemporaryDirectory(prefix="oddpix-thr-") as tmp:
                        metrics = run_stages(params, tmp)
                        val = pd.read_csv(Path(tmp) / "data/scores/val.csv")
                        test = pd.read_csv(Path(tmp) / "data/scores/test.csv")
                    component = metrics["component"]
                    row = {"dataset": dataset, "model": model, "class": c, "component": component,
                           "auroc": metrics["auroc"],
                           "rules": {label: judge(rule, val, test, component) for label, rule in RULES.items()}}
                    with out.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    click.echo(f"{dataset} {model} class {c}: AUROC {row['auroc']:.3f}  " + "  ".join(
                        f"{label.split(' (')[0]}: FA {r['false_alarm_rate']:.3f} det {r['detected']:.3f}"
                        for label, r in row["rules"].items()))
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    text = table(rows)
    Path(table_path).write_text("# Threshold rules compared (benchmarks/thresholds.py)\n\n" + text)
    click.echo(text)


if __name__ == "__main__":
    main()

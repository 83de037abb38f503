"""The one writer of results pages: a preset's records (:mod:`oddpix.sweep`) as a Markdown page under docs/.

Rows are (dataset, detector, settings); a metric is averaged over the normal classes within each seed,
then given as mean +- std over the seeds that ran every class. Every row says how long a cell took and
the machines it ran on; the page starts with the command that made it.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from .io import write_text

KIND_PREFIXES = ("auroc_class_", "auroc_corruption_", "auroc_dataset_")


def read_records(path: str | Path) -> list[dict]:
    path = Path(path)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def write_records(path: str | Path, records: Iterable[dict]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def merge_records(old: Iterable[dict], new: Iterable[dict]) -> list[dict]:
    """``old`` with each cell that ``new`` holds replaced by its new record (kept in first-seen order)."""
    def key(r: dict) -> str:
        return json.dumps(r["cell"], sort_keys=True)
    out = {key(r): r for r in old}
    for r in new:
        out[key(r)] = r
    return list(out.values())


def compact(record: dict) -> dict:
    """A record as results files keep it: without the full params and the log (the params hash stays)."""
    return {k: v for k, v in record.items() if k not in ("params", "log")}


def _groups(records: Iterable[dict]) -> dict:
    groups: dict = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r.get("status") == "ok":
            c = r["cell"]
            groups[(c["dataset"], c["model"], " ".join(c.get("settings") or []))][c["seed"]][c["cls"]] = r
    return groups


def _complete(by_seed: dict) -> tuple[list, list]:
    """The classes and the seeds that ran every one of them (else the classes every seed ran)."""
    classes = sorted(set.union(*(set(c) for c in by_seed.values())), key=str)
    seeds = [s for s in sorted(by_seed) if set(by_seed[s]) == set(classes)]
    if not seeds:
        classes = sorted(set.intersection(*(set(c) for c in by_seed.values())), key=str)
        seeds = sorted(by_seed)
    return classes, seeds


def _summary(by_seed: dict, classes: list, seeds: list, metric: str) -> str:
    """``metric``: mean over classes per seed, then mean ± std over seeds; ``max:metric``: the worst cell."""
    worst, _, metric = metric.rpartition(":")
    if not all(metric in by_seed[s][c]["metrics"] for s in seeds for c in classes):
        return "-"
    if worst == "max":
        return f"{max(by_seed[s][c]['metrics'][metric] for s in seeds for c in classes):.4f}"
    means = [statistics.mean(by_seed[s][c]["metrics"][metric] for c in classes) for s in seeds]
    spread = f" ± {statistics.stdev(means):.3f}" if len(means) > 1 else ""
    return f"{statistics.mean(means):.4f}{spread}"


def _per_class(by_seed: dict, classes: list, seeds: list, metric: str) -> str:
    if len(classes) < 2:
        return "-"
    return " ".join(f"{c}:{statistics.mean(by_seed[s][c]['metrics'].get(metric, float('nan')) for s in seeds):.3f}"
                    for c in classes)


def _row(key: tuple, by_seed: dict, metrics: list[str], per_class: bool, hashes: bool) -> list[str]:
    dataset, model, settings = key
    classes, seeds = _complete(by_seed)
    rows = [by_seed[s][c] for s in seeds for c in classes]
    seconds = [r["seconds"] for r in rows if isinstance(r.get("seconds"), (int, float))]
    peaks = [r["peak_mb"] for r in rows if r.get("peak_mb")]
    cells = [dataset, f"{model} ({rows[0]['metrics'].get('component', '?')})",
             f"`{settings}`" if settings else "defaults", str(len(classes)) if classes != [None] else "-",
             ", ".join(map(str, seeds)), *[_summary(by_seed, classes, seeds, m) for m in metrics],
             *([_per_class(by_seed, classes, seeds, metrics[0])] if per_class else []),
             f"{statistics.mean(seconds):.0f}" if seconds else "-", str(max(peaks)) if peaks else "-",
             "; ".join(sorted({r.get("machine") or "?" for r in rows}))]
    if hashes:
        cells.append(" ".join(sorted({(r.get("scores_sha256") or "-")[:12] for r in rows})))
    return cells


def main_table(groups: dict, metrics: list[str], hashes: bool) -> list[str]:
    per_class = any(len(_complete(g)[0]) > 1 for g in groups.values())
    head = ["dataset", "detector (component)", "settings", "classes", "seeds", *metrics,
            *([f"per class ({metrics[0]})"] if per_class else []), "s / cell", "peak MB", "machine",
            *(["scores sha256"] if hashes else [])]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|---:|---|" + "---:|" * len(metrics)
             + ("---|" if per_class else "") + "---:|---:|---|" + ("---|" if hashes else "")]
    for key, by_seed in sorted(groups.items()):
        lines.append("| " + " | ".join(_row(key, by_seed, metrics, per_class, hashes)) + " |")
    return lines


def extra_table(groups: dict, prefixes: tuple[str, ...], title: str) -> list[str]:
    """Mean over every record of a row of each metric that starts with one of ``prefixes``."""
    names = sorted({k for g in groups.values() for s in g.values() for r in s.values() for k in r["metrics"]
                    if k.startswith(prefixes) and isinstance(r["metrics"][k], (int, float))})
    if not names:
        return []
    short = [n.split("_", 1)[1] for n in names]
    lines = ["", title, "", "| dataset | detector | settings | " + " | ".join(short) + " |",
             "|---|---|---|" + "---:|" * len(names)]
    for (dataset, model, settings), by_seed in sorted(groups.items()):
        records = [r for s in by_seed.values() for r in s.values()]
        values = [[r["metrics"][n] for r in records if n in r["metrics"]] for n in names]
        lines.append(f"| {dataset} | {model} | {settings or 'defaults'} | "
                     + " | ".join(f"{statistics.mean(v):.3f}" if v else "-" for v in values) + " |")
    return lines


def runs_table(runs: list[dict]) -> list[str]:
    """How each run of the preset went: engine, cells, wall time against the cells' own time."""
    if not runs:
        return []
    lines = ["", "Runs of this preset (wall time of the whole sweep against the cells' own time added up):", "",
             "| engine | cells at once | cells run | wall s | cells' own s | cells / min | machine |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in runs:
        lines.append(f"| {r['engine']} | {r['at_once']} | {r['cells']} | {r['wall_s']:.1f} | "
                     f"{r['cells_s'] if r.get('cells_s') is not None else '-'} | {60 * r['cells'] / r['wall_s']:.2f} | "
                     f"{r['machine']} |")
    return lines


def page(preset, records: list[dict], runs: list[dict], results_file: str) -> str:
    groups = _groups(records)
    command = f"oddpix bench benchmarks/{preset.name}.yaml"
    lines = [f"<!-- generated by `{command}` from {results_file}; do not edit -->", "", f"# {preset.title}", ""]
    if preset.about:
        lines += [preset.about.strip(), ""]
    lines += [f"Made with `{command}` (cells already in {results_file} are not run again; `--table-only` rebuilds "
              "this page). A metric is the mean over the normal classes of each seed, then mean ± std over the "
              "seeds.", ""]
    if not groups:
        return "\n".join(lines + ["No finished cells yet.", *runs_table(runs), ""])
    lines += main_table(groups, list(preset.metrics), preset.hash_scores)
    if preset.per_kind:
        lines += extra_table(groups, KIND_PREFIXES, "AUROC of each kind of anomaly against the test normals:")
    if preset.components:
        components = {k for g in groups.values() for s in g.values() for r in s.values() for k in r["metrics"]
                      if k.startswith("auroc_") and not k.startswith(KIND_PREFIXES)}
        lines += extra_table(groups, tuple(components), "Every score component on its own (AUROC):")
    return "\n".join(lines + runs_table(runs)) + "\n"


def write_page(preset, records: list[dict], runs: list[dict], results_file: str, out: str | Path) -> str:
    text = page(preset, records, runs, results_file)
    write_text(out, text)
    return text

"""`oddpix compare`: the experiments of a DVC project as one table that fits a terminal.

`dvc exp show` lists every param and metric (hundreds of columns); this keeps what tells detectors apart:
what ran (model, dataset, normal classes, epochs, score component) and how well (AUROC, AUPRC, F1, the
false-alarm rate). Each value that differs from the baseline row by more than its tolerance is marked
``+`` or ``-``: floating-point sums differ between CPUs, so a fresh run of unchanged params on another
machine differs from the committed metrics in the third or fourth digit, and a marked cell is a change.
"""

from __future__ import annotations

import json
import textwrap
import subprocess
import sys
from dataclasses import dataclass

from oddpix.errors import ConfigError

# metric key in metrics/metrics.json -> column title, default tolerance. The ranking metrics move in the
# fourth digit between machines; the ones at the threshold (a 95th percentile of 600 validation scores)
# move more, since one validation image more or less over the line shifts them by a percent.
METRICS = {"auroc": ("auroc", 0.002), "auprc": ("auprc", 0.002), "f1": ("f1", 0.02),
           "false_alarm_rate": ("alarms", 0.02)}
METRICS_FILE = "metrics/metrics.json"
PARAMS_FILE = "params.yaml"
WIDTH = 100  # the legend's lines


@dataclass(frozen=True)
class Row:
    name: str
    kind: str  # workspace | commit | experiment
    params: dict
    metrics: dict


def parse_tolerances(pairs: tuple[str, ...] | list[str]) -> dict[str, float]:
    """The default tolerance of each metric, with ``metric=value`` overrides."""
    tolerances = {key: default for key, (_, default) in METRICS.items()}
    titles = {title: key for key, (title, _) in METRICS.items()}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        key = titles.get(name.strip(), name.strip())
        if not sep or key not in tolerances:
            raise ConfigError(f"--tolerance {pair!r}: expected METRIC=VALUE with METRIC one of "
                              f"{', '.join(sorted(set(tolerances) | set(titles)))}")
        try:
            tolerances[key] = float(value)
        except ValueError:
            raise ConfigError(f"--tolerance {pair!r}: {value!r} is not a number") from None
        if not tolerances[key] >= 0:
            raise ConfigError(f"--tolerance {pair!r}: must be >= 0")
    return tolerances


def _file_data(data: dict | None, section: str, name: str) -> dict:
    files = (data or {}).get(section) or {}
    return ((files.get(name) or {}).get("data")) or {}


def rows_from_exp_show(entries: list) -> list[Row]:
    """The rows of `dvc exp show --json`'s output: the workspace, each commit, each commit's experiments."""
    rows = []
    for entry in entries:
        data = entry.get("data") or {}
        rev = entry.get("rev", "")
        if rev == "workspace":
            name, kind = "workspace", "workspace"
        else:
            name, kind = entry.get("name") or rev[:7], "commit"
        rows.append(Row(name, kind, _file_data(data, "params", PARAMS_FILE), _file_data(data, "metrics", METRICS_FILE)))
        for exp in entry.get("experiments") or []:
            for revision in exp.get("revs") or []:
                exp_data = revision.get("data") or {}
                rows.append(Row(exp.get("name") or revision.get("name") or revision.get("rev", "")[:7], "experiment",
                                _file_data(exp_data, "params", PARAMS_FILE), _file_data(exp_data, "metrics", METRICS_FILE)))
    return rows


def _classes(value) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def describe(row: Row) -> dict[str, str]:
    """What ran: model, dataset, classes, epochs, component (the metrics' when the run finished)."""
    params, metrics = row.params, row.metrics
    model = metrics.get("model") or params.get("model") or ""
    data = params.get("data") or {}
    config = (params.get("models") or {}).get(model) or {}
    component = metrics.get("component") or (params.get("score") or {}).get("component") or ""
    epochs = config.get("epochs", "")
    return {"model": str(model), "dataset": str(data.get("dataset", "")), "classes": _classes(data.get("normal_classes")),
            "epochs": "" if epochs is None else str(epochs), "component": str(component)}


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "~"


# columns cut (ending in '~') to fit WIDTH, in this order, each down to its floor: the experiment's name and
# the classes first (the row's position and the rest tell them apart), then the component and the dataset
SHRINK = ((0, 10), (3, 7), (5, 10), (2, 8), (0, 6))
GAP = 2


def fit(widths: list[int]) -> list[int]:
    """Column widths whose line fits WIDTH."""
    widths = list(widths)
    for column, floor in SHRINK:
        excess = sum(widths) + GAP * (len(widths) - 1) - WIDTH
        if excess <= 0:
            break
        widths[column] = max(min(widths[column], floor), widths[column] - excess)
    return widths


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def table(rows: list[Row], baseline: Row | None, tolerances: dict[str, float]) -> list[str]:
    """The lines printed: a header, one line per row, a legend."""
    titles = ["experiment", "model", "dataset", "classes", "epochs", "component"] + [t for t, _ in METRICS.values()]
    cells = []
    for row in rows:
        line = [row.name + (" *" if row is baseline else "")] + list(describe(row).values())
        for key in METRICS:
            value = _number(row.metrics.get(key))
            if value is None:
                line.append("-")
                continue
            mark = " "
            reference = _number(baseline.metrics.get(key)) if baseline is not None and row is not baseline else None
            if reference is not None and abs(value - reference) > tolerances[key]:
                mark = "+" if value > reference else "-"
            line.append(f"{value:.3f}{mark}")
        cells.append(line)
    widths = fit([max(len(t), *(len(c[i]) for c in cells)) for i, t in enumerate(titles)])
    cells = [[_cut(c, w) for c, w in zip(line, widths)] for line in cells]
    if baseline is not None:  # its mark survives the cut
        cells[rows.index(baseline)][0] = _cut(baseline.name, widths[0] - 2) + " *"
    numeric = set(range(6, len(titles)))

    def fmt(values):
        return (" " * GAP).join(v.rjust(w) if i in numeric else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    lines = [fmt(titles)] + [fmt(c) for c in cells]
    if baseline is not None:
        bounds = ", ".join(f"{METRICS[k][0]} {tolerances[k]:g}" for k in METRICS)
        lines.append("alarms: the false-alarm rate on the test normals.")
        lines += textwrap.wrap(f"* baseline; +/-: above/below it by more than the tolerance ({bounds}). Smaller "
                               "differences are floating-point differences between machines, not changes.", WIDTH)
    return lines


def pick_baseline(rows: list[Row], name: str | None) -> Row | None:
    """The row named ``name``; by default the first commit (HEAD), else the first row."""
    if name is not None:
        for row in rows:
            if row.name == name:
                return row
        raise ConfigError(f"--baseline {name!r}: no such row (one of: {', '.join(r.name for r in rows)})")
    commits = [r for r in rows if r.kind == "commit"]
    return commits[0] if commits else (rows[0] if rows else None)


def exp_show(all_commits: bool = False, num: int = 1) -> list:
    """`dvc exp show --json` in the current project."""
    import importlib.util

    if importlib.util.find_spec("dvc") is None:
        raise ModuleNotFoundError("No module named 'dvc'", name="dvc")  # errors.one_line names the extra
    command = [sys.executable, "-m", "dvc", "exp", "show", "--json"]
    command += ["--all-commits"] if all_commits else ["-n", str(num)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        message = (proc.stderr.strip().splitlines() or ["dvc exp show failed"])[-1]
        raise ConfigError(f"dvc exp show: {message.removeprefix('ERROR: ')}")
    return json.loads(proc.stdout or "[]")

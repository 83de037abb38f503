"""Every detector over every normal class: DVC experiments, one leaderboard.

Each (detector, class) pair is one DVC experiment of the current commit, named
``lb-<dataset>-<model>-c<class>[-<hash of extra -S settings>]`` and run with
``dvc exp run --temp -n NAME -S model=... -S data.normal_classes=[...]`` (outside the workspace, so the
workspace's params and outputs are left alone). An experiment of that name that already exists for the
current commit is reused, so running the sweep again only runs what is missing; after a new commit
(changed code or params) everything runs again, as it should. The results are read back with
``dvc exp show --json`` and written as a Markdown table (detector x class, and the mean), a CSV and a PNG
bar chart.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from .errors import OddpixError
from .io import write_csv, write_text


def parse_classes(text: str) -> list[int]:
    """``0-9`` or ``0,3,5`` or ``0-2,7`` -> sorted class numbers."""
    out: set[int] = set()
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "-" in part:
                a, b = part.split("-", 1)
                out.update(range(int(a), int(b) + 1))
            else:
                out.add(int(part))
    except ValueError:
        raise OddpixError(f"--classes: {text!r} is not a list like 0-9 or 0,3,5") from None
    if not out:
        raise OddpixError("--classes: no class given")
    return sorted(out)


def experiment_name(dataset: str, model: str, cls: int, extra: Sequence[str] = ()) -> str:
    suffix = ""
    if extra:
        suffix = "-" + hashlib.sha1("\n".join(sorted(extra)).encode()).hexdigest()[:6]
    return f"lb-{dataset.replace('_', '-')}-{model}-c{cls}{suffix}"


def _dvc(args: list[str], capture: bool = True) -> str:
    try:
        proc = subprocess.run(["dvc", *args], capture_output=capture, text=True)
    except FileNotFoundError:
        raise OddpixError("`dvc` is not on PATH; activate the project's environment (source .venv/bin/activate)") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] if capture else []
        raise OddpixError(f"`dvc {' '.join(args)}` failed" + (f": {detail[0]}" if detail else ""))
    return proc.stdout if capture else ""


def finished_experiments(show_json: str | None = None) -> dict[str, dict]:
    """Name -> flat metrics of metrics/metrics.json for the experiments of the current commit."""
    data = json.loads(show_json if show_json is not None else _dvc(["exp", "show", "--json"]))
    out: dict[str, dict] = {}
    for commit in data:
        if commit.get("rev") == "workspace":
            continue
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs") or []:
                name = rev.get("name") or exp.get("name")
                metrics = (((rev.get("data") or {}).get("metrics") or {}).get("metrics/metrics.json") or {}).get("data")
                if name and metrics and not rev.get("error"):
                    out[name] = metrics
        break  # only the baseline commit (HEAD): results of older code do not count
    return out


def sweep(models: Sequence[str], classes: Sequence[int], dataset: str, extra: Sequence[str] = (),
          dry_run: bool = False, log: Callable[[str], None] = print) -> list[tuple[str, int, str]]:
    """Run the missing experiments; returns (model, class, name) for every cell of the table."""
    cells = [(m, c, experiment_name(dataset, m, c, extra)) for m in models for c in classes]
    done = finished_experiments()
    todo = [cell for cell in cells if cell[2] not in done]
    log(f"leaderboard: {len(cells)} runs, {len(cells) - len(todo)} finished already, {len(todo)} to run")
    for i, (model, cls, name) in enumerate(todo, 1):
        args = ["exp", "run", "--temp", "-n", name, "-S", f"model={model}", "-S", f"data.dataset={dataset}",
                "-S", f"data.normal_classes=[{cls}]"]
        for setting in extra:
            args += ["-S", setting]
        log(f"[{i}/{len(todo)}] dvc " + " ".join(args))
        if not dry_run:
            _dvc(args, capture=False)
    return cells


def table(cells: Iterable[tuple[str, int, str]], results: dict[str, dict], metric: str = "auroc") -> pd.DataFrame:
    """Detector x class of ``metric``, plus the mean over classes (NaN where a run is missing)."""
    rows: dict[str, dict] = {}
    for model, cls, name in cells:
        value = results.get(name, {}).get(metric)
        rows.setdefault(model, {})[cls] = float(value) if value is not None else np.nan
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame = frame[sorted(frame.columns)]
    frame["mean"] = frame.mean(axis=1, skipna=False)
    frame.index.name = "detector"
    return frame.sort_values("mean", ascending=False, na_position="last")


def markdown(frame: pd.DataFrame, metric: str, title: str) -> str:
    cols = list(frame.columns)
    head = "| detector | " + " | ".join(str(c) for c in cols) + " |"
    sep = "|---|" + "---:|" * len(cols)
    lines = [f"# {title}", "", f"{metric}, one class normal, the rest anomalous; `mean` over the classes.", "",
             head, sep]
    for name, row in frame.iterrows():
        cells = ["—" if np.isnan(v) else f"{v:.3f}" for v in row.to_numpy(dtype=float)]
        cells[-1] = f"**{cells[-1]}**"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bar_chart(frame: pd.DataFrame, metric: str, title: str):
    from .plots import pyplot

    plt = pyplot()
    classes = [c for c in frame.columns if c != "mean"]
    labels = [str(c) for c in classes] + ["mean"]
    x = np.arange(len(labels))
    width = 0.8 / max(len(frame), 1)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) + 2), 4))
    for i, (name, row) in enumerate(frame.iterrows()):
        ax.bar(x + (i - (len(frame) - 1) / 2) * width, row[classes + ["mean"]].to_numpy(dtype=float), width,
               label=str(name))
    ax.set_xticks(x, labels)
    ax.set_xlabel("normal class")
    ax.set_ylabel(metric)
    finite = frame.to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    ax.set_ylim(max(0.0, (finite.min() if len(finite) else 0.5) - 0.05), 1.0)
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=min(len(frame), 4))
    fig.tight_layout()
    return fig


def write_report(frame: pd.DataFrame, out_dir: str | Path, metric: str, title: str) -> None:
    out_dir = Path(out_dir)
    write_text(out_dir / "leaderboard.md", markdown(frame, metric, title))
    write_csv(out_dir / "leaderboard.csv", frame.reset_index())
    from .plots import save_figure

    save_figure(bar_chart(frame, metric, title), out_dir / "leaderboard.png")

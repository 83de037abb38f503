"""One leaderboard from a sweep's cells: per dataset, detector x normal class, mean and std over seeds.

The sweep itself (which cells run, where, and their JSON records under reports/) is :mod:`oddpix.sweep`;
this module validates the request, talks to DVC for the ``dvc`` engine, and turns records into the
Markdown table, the CSV and the PNG chart, with a paired Wilcoxon test of the best detector against the
second (over every (class, seed) pair both finished).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from .data.sources import class_name
from .errors import OddpixError
from .io import write_csv, write_text

if TYPE_CHECKING:
    from .config import Params

METRICS = ("auroc", "auprc", "accuracy", "balanced_accuracy", "precision", "recall", "f1", "pixel_auroc", "pro")


MAX_CLASS = 999  # the largest class number a range may name (EMNIST's 62 classes, an image folder's sub-folders)


def parse_classes(text: str) -> list[int]:
    """``0-9`` or ``0,3,5`` or ``0-2,7`` -> sorted class numbers."""
    out: set[int] = set()
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "-" in part:
                a, b = (int(v) for v in part.split("-", 1))
                if not 0 <= a <= b <= MAX_CLASS:  # checked before the range is built
                    raise OddpixError(f"--classes: {part!r} is not a range of class numbers from 0 to {MAX_CLASS}")
                out.update(range(a, b + 1))
            else:
                out.add(int(part))
    except ValueError:
        raise OddpixError(f"--classes: {text!r} is not a list like 0-9 or 0,3,5") from None
    if not out:
        raise OddpixError("--classes: no class given")
    return sorted(out)


def check_classes(dataset: str, classes: Sequence[int]) -> None:
    """Every class must exist in ``dataset`` (IDX datasets; an image folder's classes are its sub-folders)."""
    from .data.sources import DATASETS

    if dataset not in DATASETS:
        return
    valid = range(DATASETS[dataset].n_classes)  # labels are 0..n-1 once read (EMNIST letters' offset removed)
    wrong = [c for c in classes if c not in valid]
    if wrong:
        raise OddpixError(f"--classes: {dataset} has no class {wrong[0]}; valid classes: {valid.start}-{valid.stop - 1}")


def check_metric(metric: str, models: Sequence[str]) -> None:
    """``metric`` must be one metrics.json has for these detectors: the fixed metrics or auroc_<component>."""
    from .models import REGISTRY
    from .metrics import metric_key

    components = {f"auroc_{metric_key(c)}" for m in models if m in REGISTRY for c in REGISTRY[m].components(kde=True)}
    if metric not in METRICS and metric not in components:
        raise OddpixError(f"--metric: {metric!r} is not a metric of these detectors; valid choices: "
                          f"{', '.join([*METRICS, *sorted(components)])}")


def results(records: Iterable[dict], metric: str = "auroc") -> pd.DataFrame:
    """One row per cell: dataset, detector, class, seed and ``metric`` (NaN where the cell failed)."""
    rows = []
    for r in records:
        cell = r["cell"]
        value = (r.get("metrics") or {}).get(metric) if r.get("status") == "ok" else None
        rows.append({"dataset": cell["dataset"], "detector": cell["model"], "class": cell["cls"],
                     "seed": cell["seed"], "value": float(value) if isinstance(value, (int, float)) else np.nan})
    return pd.DataFrame(rows, columns=["dataset", "detector", "class", "seed", "value"])


@dataclass
class Board:
    mean: pd.DataFrame   # detector x class, plus `mean` (over classes): mean over seeds
    std: pd.DataFrame    # the same cells' std over seeds (the `mean` column: std of the per-seed class means)
    seeds: int
    significance: Optional[dict]


def board(frame: pd.DataFrame) -> Board:
    """The leaderboard of one dataset's results (:func:`results`), best mean first."""
    if frame.empty:
        raise OddpixError("leaderboard: no results to tabulate")
    per_class = frame.pivot_table(index="detector", columns="class", values="value", aggfunc="mean", dropna=False)
    std = frame.pivot_table(index="detector", columns="class", values="value", aggfunc=_std, dropna=False)
    by_seed = frame.pivot_table(index=["detector", "seed"], columns="class", values="value", dropna=False)
    seed_means = by_seed.mean(axis=1, skipna=False).unstack("seed")
    mean = per_class.reindex(columns=sorted(per_class.columns))
    mean["mean"] = mean.mean(axis=1, skipna=False).where(seed_means.notna().all(axis=1))
    std = std.reindex(index=mean.index, columns=sorted(per_class.columns))
    std["mean"] = seed_means.apply(lambda row: _std(row.to_numpy()), axis=1)
    order = mean.sort_values("mean", ascending=False, na_position="last").index
    mean, std = mean.loc[order], std.loc[order]
    mean.index.name = std.index.name = "detector"
    return Board(mean, std, int(frame["seed"].nunique()), significance(frame, list(order)))


def _std(values) -> float:
    v = np.asarray(values, dtype=float)
    return float(np.std(v, ddof=1)) if len(v) > 1 and np.isfinite(v).all() else (0.0 if len(v) == 1 else np.nan)


def significance(frame: pd.DataFrame, order: Sequence[str]) -> Optional[dict]:
    """Paired one-sided Wilcoxon signed-rank test: is the best detector ahead of the second over the
    (class, seed) pairs both finished?"""
    if len(order) < 2:
        return None
    from scipy.stats import wilcoxon

    best, second = order[0], order[1]
    wide = frame.pivot_table(index=["class", "seed"], columns="detector", values="value")
    if best not in wide or second not in wide:
        return None
    pairs = wide[[best, second]].dropna()
    diff = (pairs[best] - pairs[second]).to_numpy()
    out = {"best": best, "second": second, "pairs": int(len(diff)), "mean_difference": float(diff.mean()) if len(diff) else np.nan}
    if len(diff) == 0 or not np.any(diff):
        return {**out, "p_value": 1.0, "significant": False}
    p = float(wilcoxon(diff, alternative="greater").pvalue)
    return {**out, "p_value": p, "significant": bool(p < 0.05)}


def _fmt(mean: float, std: float, seeds: int) -> str:
    if not np.isfinite(mean):
        return "—"
    if seeds < 2 or not np.isfinite(std):
        return f"{mean:.3f}"
    spread = f"{std:.1g}" if 0 < std < 0.0005 else f"{std:.3f}"  # a small std keeps a significant digit
    return f"{mean:.3f} ± {spread}"


def column_name(column, class_names: Sequence[str] | None, sep: str = " ") -> str:
    """A class column's title: its number and name (``0 T-shirt/top``); the number alone where the name is it."""
    name = class_name(column, class_names)
    return str(column) if name == str(column) else f"{column}{sep}{name}"


def markdown(b: Board, metric: str, title: str, failed: Sequence[str] = (),
             class_names: Sequence[str] | None = None) -> str:
    cols = list(b.mean.columns)
    seeds = f"mean ± std over {b.seeds} seeds" if b.seeds > 1 else "one seed"
    lines = [f"# {title}", "", f"{metric}, one class normal, the rest anomalous ({seeds}); `mean` over the classes.",
             "", "| detector | " + " | ".join(column_name(c, class_names) for c in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for name in b.mean.index:
        cells = [_fmt(b.mean.loc[name, c], b.std.loc[name, c], b.seeds) for c in cols]
        if name == b.mean.index[0]:  # the best mean only
            cells[-1] = f"**{cells[-1]}**"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    s = b.significance
    if s:
        verdict = "significant" if s["significant"] else "not significant"
        lines += ["", f"Best: {s['best']}, ahead of {s['second']} by {s['mean_difference']:+.4f} on average; paired "
                      f"one-sided Wilcoxon test over {s['pairs']} (class, seed) pairs: p = {s['p_value']:.3g} "
                      f"({verdict} at 0.05)."]
        if s["pairs"] < 5:  # the smallest p of a one-sided signed-rank test over n pairs is 1 / 2^n
            lines[-1] += (f" With {s['pairs']} pairs this test cannot go below p = {0.5 ** s['pairs']:.3g}: "
                          "5 or more (classes x seeds) are needed for p < 0.05.")
    if failed:
        lines += ["", f"Failed cells ({len(failed)}; their JSON under reports/ holds the error):", "",
                  *[f"- {f}" for f in failed]]
    return "\n".join(lines) + "\n"


def bar_chart(b: Board, metric: str, title: str, class_names: Sequence[str] | None = None):
    from .figures import pyplot

    plt = pyplot()
    frame, std = b.mean, b.std
    labels = [column_name(c, class_names, "\n") for c in frame.columns]
    x = np.arange(len(labels))
    width = 0.8 / max(len(frame), 1)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) + 2), 4))
    for i, name in enumerate(frame.index):
        err = std.loc[name].to_numpy(dtype=float) if b.seeds > 1 else None
        ax.bar(x + (i - (len(frame) - 1) / 2) * width, frame.loc[name].to_numpy(dtype=float), width,
               yerr=err, capsize=2, label=str(name))
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


def csv_frame(b: Board) -> pd.DataFrame:
    out = b.mean.copy()
    for col in b.mean.columns:
        out[f"{col}_std"] = b.std[col]
    return out.reset_index()


def write_report(b: Board, out_dir: str | Path, metric: str, title: str, failed: Sequence[str] = (),
                 class_names: Sequence[str] | None = None) -> str:
    """leaderboard.md, leaderboard.csv and leaderboard.png in ``out_dir``; returns the Markdown."""
    out_dir = Path(out_dir)
    text = markdown(b, metric, title, failed, class_names)
    write_text(out_dir / "leaderboard.md", text)
    write_csv(out_dir / "leaderboard.csv", csv_frame(b))
    from .figures import save_figure

    save_figure(bar_chart(b, metric, title, class_names), out_dir / "leaderboard.png")
    return text


@dataclass
class Request:
    models: list[str]
    classes: list[int]
    datasets: list[str]
    seeds: int = 1
    settings: tuple[str, ...] = ()
    metric: str = "auroc"


def validate(request: Request, base: "Params") -> None:
    """Everything checkable before a single run: detectors, classes, metric, seeds."""
    unknown = [m for m in request.models if m not in base.models]
    if unknown or not request.models:
        raise OddpixError(f"--models: unknown model {(unknown or [''])[0]!r}; valid choices: {', '.join(base.models)}")
    for dataset in request.datasets:
        check_classes(dataset, request.classes)
    check_metric(request.metric, request.models)
    if request.seeds < 1:
        raise OddpixError(f"--seeds: {request.seeds}; it must be at least 1")


def run(request: Request, base_raw: dict, engine: str, reports: str | Path, out: str | Path,
        log=print, dry_run: bool = False, **engine_options) -> tuple[str, list[str]]:
    """Validate, run the sweep (every dataset), write one leaderboard per dataset; returns the Markdown of
    every leaderboard and the failed cells (their names and errors)."""
    from .config import parse_params
    from .data.sources import DATASETS
    from .sweep import cells_of, run_sweep

    base = parse_params(base_raw)
    request.datasets = request.datasets or [base.data.dataset]
    validate(request, base)
    seeds = [base.seed + i for i in range(request.seeds)]
    cells = [c for d in request.datasets for c in cells_of(d, request.models, request.classes, seeds, request.settings)]
    result = run_sweep(base_raw, cells, reports, engine, log=log, dry_run=dry_run, **engine_options)
    if dry_run:
        return "", []
    failed = {c: f"{c}: {result.records[c].get('error')}" for c in result.failed}
    texts = []
    for dataset in request.datasets:
        records = [r for c, r in result.records.items() if c.dataset == dataset]
        where = Path(out) if len(request.datasets) == 1 else Path(out) / dataset
        if not any(r.get("status") == "ok" for r in records):  # an earlier table is kept, not dashed over
            log(f"not written: {where}/leaderboard.md (no cell of {dataset} finished)")
            continue
        title = f"{dataset}: one class normal" + (f" ({', '.join(request.settings)})" if request.settings else "")
        spec = DATASETS.get(dataset)
        texts.append(write_report(board(results(records, request.metric)), where, request.metric, title,
                                  [f for c, f in failed.items() if c.dataset == dataset],
                                  spec.classes if spec else None))
        log(f"written: {where}/leaderboard.md, leaderboard.csv, leaderboard.png")
    return "\n".join(texts), list(failed.values())

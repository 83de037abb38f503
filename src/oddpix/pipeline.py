"""The pipeline, defined once: the layout of its files and the table of its stages.

``dvc repro`` runs the table through dvc.yaml, which is generated from it (``oddpix dvc-yaml --write``,
:mod:`oddpix.dvc_yaml`); tests, sweeps and benchmarks run the very same table in one process with
:func:`run`, with the same paths under a folder of their own. Each stage's step is the function of the
same name in ``oddpix.steps.<stage>``, called as ``step(params, **paths)``: the table maps each of the
step's path arguments to a key of :data:`LAYOUT`. Steps are imported only when a stage runs, so a stage
script depends on its own step's code and not on every step's.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

# Every file and folder the pipeline reads or writes, relative to the workspace (the repository root).
LAYOUT: dict[str, str] = {
    "params_ok": "data/params.ok",
    "raw": "data/raw",
    "downloads": "data/downloads",
    "split": "data/split",
    "split_summary": "metrics/split.json",
    "prepared": "data/prepared",
    "model": "models/detector.pt",
    "history": "plots/train/history.csv",
    "train_metrics": "metrics/train.json",
    "samples": "plots/samples",
    "latents": "data/latents.npz",
    "kde": "models/kde.pt",
    "scores": "data/scores",
    "threshold": "models/threshold.json",
    "metrics": "metrics/metrics.json",
    "predictions": "data/predictions.csv",
    "curves": "plots/curves",
    "images": "plots/images",
    "bundle": "models/bundle",
}


@dataclass(frozen=True)
class Stage:
    """One stage: its step's path arguments, each mapped to a :data:`LAYOUT` key, by what DVC does with it."""

    name: str
    doc: str
    deps: dict[str, str] = field(default_factory=dict)     # read
    outs: dict[str, str] = field(default_factory=dict)     # written, cached by DVC
    after: tuple[str, ...] = ()                             # keys that must exist first, not passed to the step
    scratch: dict[str, str] = field(default_factory=dict)  # a work folder DVC does not track (download cache)
    metrics: tuple[str, ...] = ()                           # outs that are DVC metrics (kept in git, not cached)
    plots: tuple[str, ...] = ()                             # outs that are DVC plots (kept in git, not cached)
    uncached: tuple[str, ...] = ()                          # other outs kept in git rather than DVC's cache
    whole_params: bool = False                              # tracks every key of params.yaml

    @property
    def module(self) -> str:
        return f"oddpix.steps.{self.name}"

    def step(self) -> Callable[..., Any]:
        return getattr(importlib.import_module(self.module), self.name)

    def paths(self, root: str | Path = ".") -> dict[str, Path]:
        """The step's path arguments under ``root``."""
        return {arg: Path(root) / LAYOUT[key] for arg, key in {**self.deps, **self.outs, **self.scratch}.items()}


STAGES: tuple[Stage, ...] = (
    Stage("params", "validate the whole params.yaml (any edit runs this stage only)",
          outs={"out_path": "params_ok"}, uncached=("params_ok",), whole_params=True),
    Stage("download", "every dataset the protocol needs, from the mirror or a download",
          outs={"out_dir": "raw"}, after=("params_ok",), scratch={"cache_dir": "downloads"}),
    Stage("split", "labelled train / val / test splits of the protocol",
          deps={"raw_dir": "raw"}, outs={"out_dir": "split", "summary_path": "split_summary"},
          metrics=("split_summary",)),
    Stage("preprocess", "images to normalized float tensors",
          deps={"split_dir": "split"}, outs={"out_dir": "prepared"}),
    Stage("train", "fit the detector chosen by `model` on the normal training images",
          deps={"prepared_dir": "prepared"},
          outs={"model_path": "model", "samples_dir": "samples", "metrics_path": "train_metrics",
                "history_path": "history"},
          metrics=("train_metrics",), plots=("history",)),
    Stage("encode", "latent codes of every split and the KDE fitted on the training codes",
          deps={"prepared_dir": "prepared", "model_path": "model"},
          outs={"latents_path": "latents", "kde_path": "kde"}),
    Stage("score", "every score component of the validation and test images",
          deps={"prepared_dir": "prepared", "model_path": "model", "latents_path": "latents", "kde_path": "kde"},
          outs={"out_dir": "scores"}),
    Stage("threshold", "the threshold rule fitted on the validation scores",
          deps={"scores_dir": "scores"}, outs={"out_path": "threshold"}),
    Stage("evaluate", "metrics, curves and per-image decisions on the test split",
          deps={"scores_dir": "scores", "threshold_path": "threshold"},
          outs={"curves_dir": "curves", "predictions_path": "predictions", "metrics_path": "metrics"},
          metrics=("metrics",), uncached=("curves",)),
    Stage("plots", "figures: histogram with the threshold, reconstructions, extremes, maps, latent space",
          deps={"prepared_dir": "prepared", "model_path": "model", "scores_dir": "scores",
                "threshold_path": "threshold", "latents_path": "latents", "kde_path": "kde"},
          outs={"out_dir": "images"}, uncached=("images",)),  # in git: `dvc plots diff` draws a commit's without its cache
    Stage("export", "the trained detector as a bundle (ONNX scoring graph + manifest) for `oddpix predict "
          "--bundle` and `oddpix serve`, scoring without PyTorch",
          deps={"model_path": "model", "kde_path": "kde", "threshold_path": "threshold"},
          outs={"out_dir": "bundle"}),
)
# Stages that only `dvc repro` (and run() when asked) runs: sweeps and benchmarks need neither.
OPTIONAL = ("plots", "export")
STAGE: dict[str, Stage] = {s.name: s for s in STAGES}

# dvc.yaml's `artifacts:`: the bundle, so each `dvc exp` keeps its own and `dvc artifacts get` fetches it.
ARTIFACTS: dict[str, Any] = {
    "detector": {"path": "models/bundle", "type": "model",
                 "desc": "the trained detector, its preprocessing, KDE and threshold as one ONNX graph and a "
                         "manifest (oddpix predict --bundle, oddpix serve)"},
}

# DVC's plot views (dvc.yaml's top-level `plots:`): curves from the CSV outputs, and the figures.
PLOT_VIEWS: list[Any] = [
    {"Training": {"template": "linear", "x": "epoch", "y": {LAYOUT["history"]: ["loss", "val_loss"]}}},
    {"ROC": {"template": "simple", "x": "fpr", "y": {f"{LAYOUT['curves']}/roc.csv": "tpr"}}},
    {"Precision-Recall": {"template": "simple", "x": "recall", "y": {f"{LAYOUT['curves']}/pr.csv": "precision"}}},
    {"Confusion": {"template": "confusion", "x": "predicted", "y": {f"{LAYOUT['curves']}/confusion.csv": "actual"}}},
    *[f"{LAYOUT['images']}/{name}.png" for name in ("score_histogram", "reconstructions", "extremes", "latent_space")],
]


def path(root: str | Path, key: str) -> Path:
    """Where the pipeline keeps ``key`` (a :data:`LAYOUT` key) in the workspace ``root``."""
    return Path(root) / LAYOUT[key]


def run(params: Any, root: str | Path, plots: bool = False, export: bool = False,
        stages: Optional[tuple[str, ...]] = None) -> dict:
    """Run the stages in order in this process, files under ``root`` laid out as ``dvc repro`` lays them;
    returns the metrics of the evaluate stage. ``params`` is a :class:`~oddpix.config.Params` or the raw
    mapping; the :data:`OPTIONAL` stages run only when asked (``plots``, ``export``: a sweep needs neither
    its figures nor a bundle); ``stages`` runs only those named."""
    from .config import Params, parse_params

    params = params if isinstance(params, Params) else parse_params(params)
    wanted = {"plots": plots, "export": export}
    metrics: dict = {}
    for stage in STAGES:
        if stages is not None:
            if stage.name not in stages:
                continue
        elif stage.name in OPTIONAL and not wanted[stage.name]:
            continue
        result = stage.step()(params, **stage.paths(root))
        if stage.name == "evaluate":
            metrics = result
    return metrics

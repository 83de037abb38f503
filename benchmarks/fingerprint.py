"""Behaviour fingerprint: every registered detector through the whole in-process pipeline on generated data.

For a refactor that must not change behaviour: run it before and after and compare the two files
(``python benchmarks/fingerprint.py --out before.json``, change, ``--out after.json``, ``diff``). Each
detector gets the tiny settings of the test suite on the generated 10-class pattern set (class 0
normal); the record holds its metrics and a hash of its validation and test score tables, so any change
in training, scoring or thresholds shows. A few set-ups exercise other paths: ``ae_kde`` with the dual
rule, ``cnn`` with labelled anomalies and 3-fold cross-validation, ``vae`` under the corrupted protocol.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import TINY_MODELS, run_pipeline  # noqa: E402  (the test suite's tiny settings and runner)

from oddpix.config import parse_params  # noqa: E402
from oddpix.data.synthetic import pattern_dataset, write_idx_folder  # noqa: E402

SETUPS = {name: {} for name in TINY_MODELS}
SETUPS["ae_kde"] = {"threshold": {"rule": "dual"}}
SETUPS["cnn"] = {"data": {"contamination": 0.1, "val_anomaly_fraction": 0.1}, "models": {"cnn": {"folds": 3}}}
SETUPS["vae corrupted"] = {"model": "vae", "data": {"protocol": "corrupted", "normal_classes": "all"},
                           "score": {"component": "pixel_fraction"}, "threshold": {"rule": "otsu"}}


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def fingerprint(setup: str, overrides: dict, mirror: Path, work: Path) -> dict:
    model = overrides.get("model", setup)
    raw = _merge({"device": "cpu", "model": model, "models": TINY_MODELS,
                  "data": {"mirror": str(mirror), "checksums": "mirror", "download": False,
                           "val_fraction": 0.1}}, overrides)
    start = time.perf_counter()
    metrics = run_pipeline(parse_params(raw), work)
    digest = hashlib.sha256()
    for name in ("val", "test"):
        digest.update((work / "data/scores" / f"{name}.csv").read_bytes())
    return {"metrics": metrics, "scores_sha256": digest.hexdigest(), "seconds": round(time.perf_counter() - start, 1)}


@click.command()
@click.option("--out", default="benchmarks/fingerprint.json", show_default=True)
@click.option("--only", default="", help="comma-separated set-ups (default: all)")
def main(out: str, only: str) -> None:
    """Write every detector's metrics and score hashes on a fixed generated task."""
    chosen = [s for s in SETUPS if not only or s in only.split(",")]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        mirror = Path(tmp) / "mirror"
        write_idx_folder(pattern_dataset(n_train_per_class=100, n_test_per_class=30, seed=0), mirror / "fashion-mnist")
        for setup in chosen:
            results[setup] = fingerprint(setup, SETUPS[setup], mirror, Path(tmp) / setup.replace(" ", "_"))
            print(f"{setup}: auroc {results[setup]['metrics']['auroc']:.4f} "
                  f"scores {results[setup]['scores_sha256'][:12]} ({results[setup]['seconds']}s)", flush=True)
    Path(out).write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()

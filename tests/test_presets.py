"""Benchmark presets: files that validate, cells run by the library's sweep with the pipeline's own code,
one record schema, and results pages generated from the committed records."""

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from oddpix import pipeline, presets, results_page
from oddpix.cli import main
from oddpix.errors import OddpixError
from tests.conftest import TINY_MODELS

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted((ROOT / "benchmarks").glob("*.yaml"))


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_preset_validates_and_names_known_detectors(path, monkeypatch):
    from oddpix.config import parse_params
    from oddpix.sweep import apply_settings

    monkeypatch.setenv("ODDPIX_DATA_MIRROR", "/mirror")
    preset = presets.load(path)
    base = presets.base_params(preset, yaml.safe_load((ROOT / "params.yaml").read_text()), Path("/work"))
    cells = presets.cells(preset, base)
    assert cells
    for cell in cells:  # every cell's params validate (an image folder's root need not exist to validate)
        parse_params(apply_settings(base, cell.overrides()))


def test_a_typo_in_a_preset_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: x\nmodels: [knn]\nseeds: 2\nvariant: [[seed=1]]\n")
    with pytest.raises(OddpixError, match=r"bad.yaml.variant: unknown key \(did you mean 'variants'\?\)"):
        presets.load(bad)
    bad.write_text("title: x\nmodels: [knn]\nprepare: {patern: {}}\n")
    with pytest.raises(OddpixError, match="'patern' is not a preparation; valid choices: patterns, textures"):
        presets.load(bad)


@pytest.mark.parametrize("name", [p.stem for p in PRESETS if (ROOT / f"docs/results/{p.stem}.md").exists()])
def test_committed_pages_are_generated_from_the_committed_records(name, tmp_path):
    page = tmp_path / "page.md"
    result = CliRunner().invoke(main, ["bench", str(ROOT / f"benchmarks/{name}.yaml"), "--table-only", "--results",
                                       str(ROOT / f"benchmarks/results/{name}.jsonl"), "--page", str(page)])
    assert result.exit_code == 0, result.output
    committed = (ROOT / f"docs/results/{name}.md").read_text()
    assert page.read_text() == committed.replace(f"benchmarks/results/{name}.jsonl",
                                                 str(ROOT / f"benchmarks/results/{name}.jsonl"))


def test_a_preset_runs_its_cells_once_and_writes_its_page(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("seed: 42\n")
    preset = tmp_path / "tiny.yaml"
    preset.write_text(yaml.safe_dump({
        "title": "Tiny", "base": "defaults", "prepare": {"patterns": {}},
        "params": {"device": "cpu", "data": {"mirror": "${work}/mirror", "checksums": "mirror", "download": False},
                   "models": {"knn": TINY_MODELS["knn"], "cae": TINY_MODELS["cae"]}},
        "datasets": ["fashion_mnist"], "models": ["knn", "cae"], "classes": [0, 1], "seeds": 2,
        "metrics": ["auroc", "max:false_alarm_rate"], "hash_scores": True}))
    args = ["bench", str(preset), "--results", "r.jsonl", "--page", "page.md", "--quiet"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "sweep: 8 cells, 0 finished already, 8 to run (engine local)" in first.output
    records = results_page.read_records("r.jsonl")
    assert len(records) == 8 and all(r["status"] == "ok" and r["machine"].startswith("CPU") for r in records)
    assert all("params" not in r and len(r["scores_sha256"]) == 64 for r in records)
    text = (tmp_path / "page.md").read_text()
    knn = [line for line in text.splitlines() if line.startswith("| fashion_mnist | knn (distance)")]
    assert len(knn) == 1 and " 42, 43 " in knn[0] and " ± " in knn[0]
    assert "Made with `oddpix bench benchmarks/tiny.yaml`" in text and "| local | 1 | 8 |" in text

    # the same cell run by the pipeline itself gives the very same scores
    cell = next(r for r in records if r["cell"]["model"] == "knn" and r["cell"]["cls"] == 0 and r["cell"]["seed"] == 42)
    raw = presets.overlay(presets.base_params(presets.load(preset), {}, (tmp_path / "reports/bench/tiny/work")),
                          {"model": "knn", "data": {"normal_classes": [0]}, "seed": 42})
    pipeline.run(raw, tmp_path / "direct")
    digest = hashlib.sha256()
    for split in ("val", "test"):
        digest.update((pipeline.path(tmp_path / "direct", "scores") / f"{split}.csv").read_bytes())
    assert cell["scores_sha256"] == digest.hexdigest()

    again = CliRunner().invoke(main, args)
    assert "8 finished already, 0 to run" in again.output and len(results_page.read_records("r.jsonl")) == 8
    assert len(results_page.read_records("r.runs.jsonl")) == 1  # nothing ran: no second run summary
    assert (tmp_path / "page.md").read_text() == text
    assert json.loads(Path("r.jsonl").read_text().splitlines()[0])["cell"]["dataset"] == "fashion_mnist"

    only = CliRunner().invoke(main, [*args, "--rerun", "--dry-run", "--only", "fashion_mnist/knn/c0-s43*,*/cae/c1-s42*"])
    assert only.exit_code == 0, only.output
    assert "sweep: 2 cells" in only.output and "would run: fashion_mnist/knn/c0-s43" in only.output
    assert "would run: fashion_mnist/cae/c1-s42" in only.output and "knn/c0-s42" not in only.output


def test_two_runs_of_one_preset_at_once_keep_each_others_records(tmp_path, monkeypatch):
    import oddpix.sweep as sweep

    monkeypatch.chdir(tmp_path)
    preset = tmp_path / "tiny.yaml"
    preset.write_text(yaml.safe_dump({
        "title": "Tiny", "base": "defaults", "prepare": {"patterns": {}},
        "params": {"device": "cpu", "data": {"mirror": "${work}/mirror", "checksums": "mirror", "download": False},
                   "models": {"knn": TINY_MODELS["knn"]}},
        "datasets": ["fashion_mnist"], "models": ["knn"], "classes": [0, 1]}))
    other = {"cell": {"dataset": "fashion_mnist", "model": "knn", "cls": 7, "seed": 42, "settings": []},
             "status": "ok", "metrics": {"auroc": 0.5}}
    real = sweep.run_sweep

    def meanwhile(*args, **kwargs):  # another run of the preset finishes a cell while this one runs
        out = real(*args, **kwargs)
        results_page.write_records("r.jsonl", [other])
        results_page.write_records("r.runs.jsonl", [{"engine": "local", "cells": 1, "at_once": "1", "wall_s": 1.0,
                                                  "cells_s": 1.0, "machine": "CPU"}])
        return out

    monkeypatch.setattr(sweep, "run_sweep", meanwhile)
    presets.run(preset, {}, results="r.jsonl", page="page.md", only=["*/c0-*"], log=lambda m: None, progress=False)
    cells = [r["cell"]["cls"] for r in results_page.read_records("r.jsonl")]
    assert sorted(cells) == [0, 7]  # its own cell (only c0) and the other run's
    assert len(results_page.read_records("r.runs.jsonl")) == 2

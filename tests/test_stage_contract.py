"""dvc.yaml tells DVC the truth: it is generated from the stage table, each stage's code deps are the
modules its step imports, its params are exactly the keys its step reads (enforced at run time by
``config.ParamsView``), and detectors do not depend on the pipeline's figures or threshold rules."""

import ast
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from oddpix import pipeline
from oddpix.cli import main
from oddpix.config import ParamsView, parse_params, reads
from oddpix.dvc_yaml import generate
from oddpix.imports import closure

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src/oddpix"


def test_the_committed_dvc_yaml_is_the_generated_one():
    assert (ROOT / "dvc.yaml").read_text() == generate(ROOT), "dvc.yaml is stale: run `oddpix dvc-yaml --write`"


def test_dvc_yaml_check_command_reports_drift(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    ok = CliRunner().invoke(main, ["dvc-yaml", "--check"])
    assert ok.exit_code == 0 and "matches" in ok.output
    stale = tmp_path / "dvc.yaml"  # a hand edit: the plots stage no longer reads `plots`
    stale.write_text((ROOT / "dvc.yaml").read_text().replace("    - plots\n", "", 1))
    bad = CliRunner().invoke(main, ["dvc-yaml", "--check", "--file", str(stale)])
    assert bad.exit_code == 1 and "differs from the stage table; run `oddpix dvc-yaml --write`" in bad.output
    CliRunner().invoke(main, ["dvc-yaml", "--write", "--file", str(stale)])
    assert stale.read_text() == (ROOT / "dvc.yaml").read_text()


def test_every_step_module_is_one_stage_of_the_table_with_a_thin_script():
    steps = sorted(p.stem for p in (SRC / "steps").glob("*.py") if p.stem not in ("__init__", "common"))
    assert sorted(s.name for s in pipeline.STAGES) == steps
    assert sorted(p.stem for p in (ROOT / "stages").glob("*.py")) == steps
    for stage in pipeline.STAGES:
        script = (ROOT / "stages" / f"{stage.name}.py").read_text()
        assert f'stage_main("{stage.name}")' in script and len(script.splitlines()) <= 6
        step = stage.step()
        arguments = list(step.__wrapped__.__code__.co_varnames[1:step.__wrapped__.__code__.co_argcount])
        assert sorted(arguments) == sorted(stage.paths()), f"{stage.name}: the table names every path argument"


def test_every_path_is_in_the_layout_once_and_dvc_yaml_uses_only_those():
    assert len(set(pipeline.LAYOUT.values())) == len(pipeline.LAYOUT)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, entry in stages.items():
        data = [d for d in entry["deps"] if not d.startswith(("src/", "stages/"))]
        outs = [next(iter(o)) if isinstance(o, dict) else o
                for section in ("outs", "metrics", "plots") for o in entry.get(section, [])]
        assert set(data + outs) <= set(pipeline.LAYOUT.values()), name


@pytest.mark.parametrize("leaf", ["plots.py", "thresholds.py", "metrics.py", "figures.py"])
def test_detectors_and_their_training_import_no_figures_or_rules(leaf):
    models = closure(["oddpix.models", "oddpix.training", "oddpix.scoring", "oddpix.density"])
    if leaf == "figures.py":  # the GANs' training-time sample grids are the one picture a detector draws
        assert SRC / leaf in models
        assert not {ast.unparse(n) for n in ast.walk(ast.parse((SRC / leaf).read_text()))
                    if isinstance(n, ast.ImportFrom) and n.module in ("plots", "thresholds")}
        return
    assert SRC / leaf not in models


def test_train_and_score_stages_do_not_depend_on_plots_or_threshold_rules():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name in ("train", "encode", "score"):
        assert not {"src/oddpix/plots.py", "src/oddpix/thresholds.py"} & set(stages[name]["deps"]), name
    assert [n for n, e in stages.items() if "src/oddpix/plots.py" in e["deps"]] == ["plots"]
    assert [n for n, e in stages.items() if "src/oddpix/thresholds.py" in e["deps"]] == ["threshold"]


def test_a_step_cannot_read_an_undeclared_key():
    params = parse_params({"model": "ae"})

    @reads("seed", "data.dataset", "model", "models.${model}")
    def step(p):
        return p.seed, p.data.dataset, p.model_config.hidden

    assert step(params) == (42, "fashion_mnist", [512, 128])

    @reads("data.dataset")
    def sneaky(p):
        return p.data.protocol

    with pytest.raises(AttributeError, match="reads params 'data.protocol', which it does not declare"):
        sneaky(params)
    view = ParamsView(params, ("data.dataset", "data.protocol", "data.anomaly_dataset"), "test")
    assert view.data.datasets() == ["fashion_mnist"]  # methods read through the view too
    with pytest.raises(AttributeError, match="does not declare"):
        ParamsView(params, ("data.dataset",), "test").data.datasets()

"""dvc.yaml tells DVC the truth: each stage's code deps are the modules its step imports, its params are
exactly the keys its step reads (enforced at run time by ``config.ParamsView``), and paths are written
only in dvc.yaml."""

import importlib

import pytest
import yaml

from oddpix.config import ParamsView, parse_params, reads
from stage_deps import ROOT, code_deps

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _expand(entry: str) -> set[str]:
    path = ROOT / entry
    if path.is_dir():
        return {str(p.relative_to(ROOT)) for p in path.rglob("*.py")}
    return {entry}


@pytest.mark.parametrize("stage", list(STAGES))
def test_code_deps_are_exactly_the_modules_the_stage_imports(stage):
    listed = set()
    for dep in STAGES[stage]["deps"]:
        if dep.startswith(("src/", "stages/")):
            listed |= _expand(dep)
    wanted = code_deps(stage)
    assert not wanted - listed, f"dvc.yaml stage {stage} misses code deps {sorted(wanted - listed)}"
    assert not listed - wanted, f"dvc.yaml stage {stage} lists code it does not import: {sorted(listed - wanted)}"


@pytest.mark.parametrize("stage", list(STAGES))
def test_params_are_exactly_what_the_step_reads(stage):
    step = getattr(importlib.import_module(f"oddpix.steps.{stage}"), stage)
    if stage == "params":  # the one stage that tracks the whole file (its step reads no key)
        assert STAGES[stage]["params"] == [{"params.yaml": None}] and step.params_read == ()
        return
    assert list(STAGES[stage].get("params", [])) == list(step.params_read)


@pytest.mark.parametrize("stage", list(STAGES))
def test_stage_scripts_take_every_path_from_dvc_yaml(stage):
    namespace: dict = {}
    exec(compile((ROOT / "stages" / f"{stage}.py").read_text(), f"stages/{stage}.py", "exec"), namespace)
    command = namespace["main"]
    paths = [p for p in command.params if p.name != "params_file"]
    assert paths and all(p.required and not isinstance(p.default, str) for p in paths)
    for option in paths:
        assert f"--{option.opts[0].lstrip('-')} " in STAGES[stage]["cmd"] + " "


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


def test_every_stage_of_the_flow_is_in_dvc_yaml():
    steps = sorted(p.stem for p in (ROOT / "src/oddpix/steps").glob("*.py") if p.stem not in ("__init__", "common"))
    assert sorted(STAGES) == steps
    assert sorted(p.stem for p in (ROOT / "stages").glob("*.py")) == steps

"""An exported bundle on its own: the command-line export of a workspace, scoring its folder's test images
with `oddpix predict --bundle` in a process where PyTorch cannot be imported, and the scores, decisions
and p-values the pipeline gave them. (Every detector's parity: tests/test_detector_contract.py.)"""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from oddpix.cli import main

# a process where none of the pipeline's packages can be imported (PyTorch, pandas, scikit-learn, DVC, ...)
NO_PIPELINE = ("import sys\nfrom oddpix.errors import EXTRAS\nfor name in EXTRAS['pipeline']: sys.modules[name] = None\n"
               "from oddpix.cli import main\nsys.argv = ['oddpix'] + sys.argv[1:]\nmain()")


def _run_folder(tmp_path, tiny_params, model, settings):
    from oddpix import pipeline
    from oddpix.data.synthetic import write_defect_folder

    root = write_defect_folder(tmp_path / "textures", n=120, size=32, defect_share=0.3, seed=2)
    data = {"dataset": "folder", "protocol": "folder", "normal_classes": ["good"],
            "folder": {"root": str(root), "image_size": 32, "channels": 3, "test_fraction": 0.3}}
    params = tiny_params(model=model, data=data, **settings)
    run = tmp_path / "run"
    pipeline.run(params, run)
    return root, run


@pytest.mark.parametrize("model, settings", [
    ("patch_knn", {"preprocess": {"normalize": "local"}}),
    ("cae", {"models": {"cae": {"channels": [8, 16], "latent_dim": 8, "epochs": 2, "batch_size": 16}}}),
])
def test_a_bundle_scores_as_the_pipeline_did_without_pytorch(tmp_path, tiny_params, model, settings):
    root, run = _run_folder(tmp_path, tiny_params, model, settings)
    bundle = tmp_path / "bundle"
    result = CliRunner().invoke(main, ["export", "--out", str(bundle), "--model", str(run / "models/detector.pt"),
                                       "--kde", str(run / "models/kde.pt"),
                                       "--threshold", str(run / "models/threshold.json"), "--params", "none.yaml"])
    assert result.exit_code == 0, result.output
    assert "bundle:" in result.output and (bundle / "model.onnx").exists()
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["detector"] == model and manifest["input"]["height"] == 32 and manifest["input"]["channels"] == 3

    test = pd.read_csv(run / "data/scores/test.csv")
    files = [str(root / s) for s in test["source"]]
    done = subprocess.run([sys.executable, "-c", NO_PIPELINE, "predict", "--bundle", str(bundle), "--format", "json",
                           "--components", *files], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    got = pd.DataFrame(json.loads(done.stdout))
    assert list(got["file"]) == files
    components = [c for c in manifest["components"] if c in test.columns]
    assert components
    for c in components:  # every component within 1e-5 of the score stage's (relative; maps: tests/test_detector_contract.py)
        scale = np.maximum(np.abs(test[c].to_numpy()), np.ptp(test[c].to_numpy()))
        assert (np.abs(got[c].to_numpy() - test[c].to_numpy()) / scale).max() <= 1e-5, c
    predictions = pd.read_csv(run / "data/predictions.csv")
    assert list(got["anomaly"].astype(bool)) == list(predictions["anomaly"].astype(bool))
    assert "p_value" in got and got["p_value"].between(0, 1).all()


def test_a_bundle_that_is_not_one_gets_one_line(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.json").write_text('{"format": "something else"}')
    result = CliRunner().invoke(main, ["predict", "--bundle", str(tmp_path / "b"), str(tmp_path)])
    assert result.exit_code == 1 and "not an oddpix bundle" in result.output
    result = CliRunner().invoke(main, ["predict", "--bundle", str(tmp_path / "missing"), str(tmp_path)])
    assert result.exit_code == 1 and "not a readable bundle manifest" in result.output


def test_the_base_install_and_serve_group_pull_no_pipeline_package():
    import re
    import tomllib
    from pathlib import Path

    from oddpix.errors import EXTRAS

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    light = project["dependencies"] + project["optional-dependencies"]["serve"]
    names = {re.split(r"[<>=\[ ;]", spec, maxsplit=1)[0].lower().replace("-", "_") for spec in light}
    assert "onnxruntime" in names and "fastapi" in names
    pipeline = {n.replace("sklearn", "scikit_learn") for n in EXTRAS["pipeline"]}
    assert not names & pipeline, names & pipeline
    heavy = {re.split(r"[<>=\[ ;]", spec, maxsplit=1)[0].lower().replace("-", "_")
             for spec in project["optional-dependencies"]["pipeline"]}
    assert pipeline <= heavy  # every module the error message names comes with oddpix[pipeline]


def test_a_command_that_needs_the_pipeline_says_what_to_install(tmp_path):
    done = subprocess.run([sys.executable, "-c", NO_PIPELINE, "export", "--out", str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "pip install 'oddpix[pipeline]'" in done.stderr and "oddpix predict --bundle" in done.stderr
    stage = ("import sys\nsys.modules['torch'] = None\nfrom oddpix.stage import stage_main\n"
             "sys.argv = ['train']\nstage_main('train')")
    done = subprocess.run([sys.executable, "-c", stage], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.startswith("error: torch is not installed"), done.stderr

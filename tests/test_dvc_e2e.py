"""`dvc repro`, a no-op `dvc repro`, `dvc exp run -S model=ae` and `dvc metrics diff` in a temporary git repo."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY_MODELS

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "stages", "src"]

pytestmark = pytest.mark.slow


def sh(*args, cwd, env, check=True):
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def repo(tmp_path, mirror):
    work = tmp_path / "project"
    work.mkdir()
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, work / name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["device"] = "cpu"
    params["data"].update(mirror=str(mirror), checksums="mirror", download=False)
    for name, overrides in TINY_MODELS.items():
        params["models"][name].update(overrides)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ)
    env.pop("ODDPIX_DATA_MIRROR", None)
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", PYTHONPATH=str(work / "src"),
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@e",
               DVC_NO_ANALYTICS="1")
    sh("git", "init", "-q", cwd=work, env=env)
    sh("dvc", "init", "-q", cwd=work, env=env)
    sh("git", "add", "-A", cwd=work, env=env)
    sh("git", "commit", "-qm", "project", cwd=work, env=env)
    return work, env


def metrics(work):
    return json.loads((work / "metrics/metrics.json").read_text())


def test_repro_noop_experiment_diff_compare_and_export(repo):
    work, env = repo
    out = sh("dvc", "repro", cwd=work, env=env).stdout
    assert "Running stage 'plots'" in out and "evaluate: AUROC" in out and "Running stage 'export'" in out
    bundle = json.loads((work / "models/bundle/manifest.json").read_text())  # the artifact: ONNX + manifest
    assert bundle["detector"] == "cae" and (work / "models/bundle/model.onnx").stat().st_size > 10000
    assert bundle["params"]["model"] == "cae"
    fitted = json.loads((work / "models/threshold.json").read_text())
    assert bundle["threshold"] == {k: v for k, v in fitted.items() if k != "model_id"}
    assert bundle["model_id"] == fitted["model_id"]
    assert "is empty" not in out and (work / "plots/samples/README.txt").exists()  # cae draws no samples
    cae = metrics(work)
    assert cae["model"] == "cae" and cae["auroc"] > 0.9 and cae["n_test"] == 300
    for key in ("auroc", "auprc", "accuracy", "precision", "recall", "f1", "threshold"):
        assert isinstance(cae[key], float)
    split = json.loads((work / "metrics/split.json").read_text())
    assert split["test_n"] == 300 and split["train_anomaly"] == 0
    assert (work / "plots/images/score_histogram.png").stat().st_size > 5000
    assert (work / "plots/curves/roc.csv").read_text().startswith("fpr,tpr")
    rendered = json.loads(sh("dvc", "plots", "show", "--json", cwd=work, env=env).stdout)["data"]
    assert {"ROC", "Precision-Recall", "plots/images/score_histogram.png", "plots/images/reconstructions.png",
            "plots/train/history.csv"} <= set(rendered)
    assert rendered["ROC"][0]["type"] == "vega" and '"tpr"' in json.dumps(rendered["ROC"][0]["content"])

    # nothing changed: nothing runs
    again = sh("dvc", "repro", cwd=work, env=env).stdout
    assert "Running stage" not in again and "up to date" in again
    # an edit to the figures changes only the plots stage, one to the threshold rules only the threshold stage
    for edited, expected in (("plots.py", {"plots"}), ("thresholds.py", {"threshold"}),
                             ("fitted_threshold.py", {"score", "threshold", "evaluate", "plots", "export"}),
                             ("export.py", {"export"})):
        source = work / "src/oddpix" / edited
        original = source.read_text()
        source.write_text(original + "\n# an edit\n")
        status = json.loads(sh("dvc", "status", "--json", cwd=work, env=env).stdout)
        assert {name.split(":")[-1] for name in status} == expected, (edited, status)
        source.write_text(original)

    sh("git", "add", "-A", cwd=work, env=env)
    sh("git", "commit", "-qm", "cae results", cwd=work, env=env)
    # a fresh clone (no DVC cache, no remote) draws the commit's plots, figures included, from git
    clone = work.parent / "clone"
    sh("git", "clone", "-q", str(work), str(clone), cwd=work.parent, env=env)
    drawn = json.loads(sh("dvc", "plots", "diff", "--json", cwd=clone, env=env).stdout)
    assert not drawn.get("errors") and "plots/images/score_histogram.png" in drawn["data"], drawn.get("errors")
    shutil.rmtree(clone)
    exp = sh("dvc", "exp", "run", "-S", "model=ae", "-n", "ae-run", cwd=work, env=env).stdout
    assert "Running stage 'train'" in exp and "Running stage 'download'" not in exp
    ae = metrics(work)
    assert ae["model"] == "ae" and ae["auroc"] > 0.9 and ae["auroc"] != cae["auroc"]
    assert json.loads((work / "models/bundle/manifest.json").read_text())["detector"] == "ae"  # its own bundle
    diff = json.loads(sh("dvc", "metrics", "diff", "--json", cwd=work, env=env).stdout)
    auroc = diff["metrics/metrics.json"]["auroc"]
    assert auroc["old"] == pytest.approx(cae["auroc"]) and auroc["new"] == pytest.approx(ae["auroc"])
    compared = sh("oddpix", "compare", cwd=work, env=env).stdout.splitlines()
    assert max(map(len, compared)) <= 100 and compared[0].split()[:6] == [
        "experiment", "model", "dataset", "classes", "epochs", "component"]
    rows = {line.split()[0]: line.split() for line in compared[1:4]}
    assert {"workspace", "ae-run"} < set(rows) and len(rows) == 3, compared  # and the commit, the baseline
    assert rows["ae-run"][1:5] == ["ae", "fashion_mnist", "0", str(TINY_MODELS["ae"]["epochs"])]
    assert rows["ae-run"][6].rstrip("+-") == f"{ae['auroc']:.3f}"

    # the experiment's own bundle, from DVC's cache, whatever the workspace holds now
    sh("git", "checkout", "--", ".", cwd=work, env=env)
    sh("oddpix", "export", "--exp", "ae-run", "--out", "shipped", cwd=work, env=env)
    assert json.loads((work / "shipped/manifest.json").read_text())["detector"] == "ae"
    missing = sh("oddpix", "export", "--exp", "no-such-run", "--out", "none", cwd=work, env=env, check=False)
    assert missing.returncode == 1 and missing.stderr.startswith("error: no bundle in 'no-such-run'"), missing.stderr
    shutil.rmtree(work / "shipped")

    # an edit no stage reads runs only the params stage; a misspelt section no stage reads stops `dvc repro`
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["models"]["vae"]["epochs"] = 3
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = sh("dvc", "repro", cwd=work, env=env).stdout
    assert "Running stage 'params'" in out and "Running stage 'download'" not in out and "Running stage 'train'" not in out, out
    params["thresold"] = {"rule": "percentile"}
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = sh("dvc", "repro", cwd=work, env=env, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr
    assert "error: params: thresold: unknown key (did you mean 'threshold'?)" in proc.stdout + proc.stderr


def test_leaderboard_runs_cells_as_dvc_experiments_and_in_process_alike(repo):
    work, env = repo
    # a cell as a named experiment, its row in the table; a second call reuses it (a table of several
    # detectors and classes from the same records: tests/test_leaderboard.py)
    first, second = leaderboard_then_again(work, env)
    assert "sweep: 1 cell, 0 finished already, 1 to run (engine dvc)" in first.stderr
    assert "sweep: 1 cell, 1 finished already, 0 to run (engine dvc)" in second.stderr
    assert "Running stage" not in second.stdout + second.stderr
    board = (work / "reports/leaderboard/leaderboard.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in board.splitlines() if line.startswith("| ") and "detector" not in line}
    assert set(rows) == {"ae"} and "—" not in board and "| detector | 0 T-shirt/top |" in board
    by_dvc = json.loads((work / "reports/sweep/fashion_mnist/ae/c0-s42.json").read_text())
    assert f"{by_dvc['metrics']['auroc']:.3f}" in rows["ae"] and by_dvc["metrics"]["auroc"] > 0.9
    assert (work / "reports/leaderboard/leaderboard.png").stat().st_size > 5000
    exps = sh("dvc", "exp", "show", "--no-pager", "--csv", cwd=work, env=env).stdout
    assert "lb-fashion-mnist-ae-c0-s42" in exps  # each cell is a named experiment

    # the in-process engine gives the same AUROC for the same cell as the dvc engine (and the ray engine the
    # in-process one's: tests/test_ray_cluster.py)
    sh("oddpix", "leaderboard", "--engine", "local", "--models", "ae", "--classes", "0", "--reports",
       "reports/local", "--out", "reports/local-board", "--quiet", cwd=work, env=env)
    by_local = json.loads((work / "reports/local/fashion_mnist/ae/c0-s42.json").read_text())
    assert by_dvc["engine"] == "dvc" and by_local["engine"] == "local"
    assert by_local["metrics"]["auroc"] == pytest.approx(by_dvc["metrics"]["auroc"], abs=1e-12)
    assert by_local["params_hash"] == by_dvc["params_hash"]


def test_bad_params_stop_dvc_repro_with_the_key(repo):
    work, env = repo
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["models"]["cae"]["lr"] = -1
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    proc = sh("dvc", "repro", cwd=work, env=env, check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "error: params: models.cae.lr: -1.0 is out of range; it must be > 0.0" in output
    assert "Traceback" not in output
    assert not (work / "data/raw").exists()  # the first stage stopped before writing anything


def leaderboard_then_again(work, env):
    first = sh("oddpix", "leaderboard", "--models", "ae", "--classes", "0", cwd=work, env=env)
    second = sh("oddpix", "leaderboard", "--models", "ae", "--classes", "0", cwd=work, env=env)
    return first, second


def repro_killed_in(stage: str, work, env, timeout: float = 300.0, starts_with: str = "") -> None:
    """Start `dvc repro` and SIGKILL it (with its stage process) once ``stage`` has been running a moment;
    ``starts_with``: the first stage it must run (the earlier ones are up to date)."""
    import signal
    import time

    log = work / f"killed-{stage}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["dvc", "repro"], cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.monotonic() + timeout
        while f"Running stage '{stage}'" not in log.read_text():
            assert proc.poll() is None, f"dvc repro ended before stage {stage}:\n{log.read_text()}"
            assert time.monotonic() < deadline, "stage never started"
            time.sleep(0.05)
        time.sleep(1.5)  # inside the stage
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    ran = [line.split("'")[1] for line in log.read_text().splitlines() if line.startswith("Running stage '")]
    assert not starts_with or ran[0] == starts_with, ran


def test_a_killed_repro_leaves_nothing_up_to_date_and_recovers(repo):
    work, env = repo
    repro_killed_in("train", work, env)
    status = sh("dvc", "status", cwd=work, env=env).stdout
    assert "train:" in status and not (work / "metrics/metrics.json").exists()
    # the next repro takes up from the train stage (what finished stays done) and is killed in turn, scoring
    repro_killed_in("score", work, env, starts_with="train")
    status = sh("dvc", "status", cwd=work, env=env).stdout
    assert "score:" in status and "train:" not in status and not (work / "metrics/metrics.json").exists()
    sh("dvc", "repro", "evaluate", cwd=work, env=env)  # up to the metrics: the figures and bundle are not the point
    recovered = metrics(work)
    # an uninterrupted run of the same params (in this process: the same steps, thread count and seed)
    from oddpix import pipeline
    from oddpix.config import load_params

    uninterrupted = pipeline.run(load_params(work / "params.yaml"), work.parent / "uninterrupted")
    assert recovered == uninterrupted

import json

import numpy as np
import pytest

from oddpix import leaderboard as lb
from oddpix.errors import OddpixError


def exp_show(results: dict[str, float], error: str | None = None) -> str:
    """The shape of `dvc exp show --json`: the workspace, then the baseline commit and its experiments."""
    def rev(name, auroc):
        return {"rev": "abc", "name": name, "error": error,
                "data": {"metrics": {"metrics/metrics.json": {"data": {"auroc": auroc, "f1": 0.5}}}}}
    return json.dumps([
        {"rev": "workspace", "data": {}, "experiments": None},
        {"rev": "123", "name": "main", "data": {}, "experiments": [
            {"name": n, "revs": [rev(n, a)]} for n, a in results.items()]},
        {"rev": "old", "name": "older", "experiments": [{"name": "stale", "revs": [rev("stale", 0.1)]}]},
    ])


def test_parse_classes():
    assert lb.parse_classes("0-9") == list(range(10))
    assert lb.parse_classes("0-2,7,7") == [0, 1, 2, 7]
    with pytest.raises(OddpixError, match="not a list like"):
        lb.parse_classes("a-b")


def test_names_are_stable_and_depend_on_extra_settings():
    assert lb.experiment_name("fashion_mnist", "cae", 3) == "lb-fashion-mnist-cae-c3"
    a = lb.experiment_name("mnist", "ae", 0, ["models.ae.epochs=5"])
    assert a.startswith("lb-mnist-ae-c0-") and a != lb.experiment_name("mnist", "ae", 0, ["models.ae.epochs=6"])


def test_only_the_baseline_commits_finished_experiments_count():
    found = lb.finished_experiments(exp_show({"lb-x-cae-c0": 0.9, "lb-x-cae-c1": 0.7}))
    assert set(found) == {"lb-x-cae-c0", "lb-x-cae-c1"} and found["lb-x-cae-c1"]["auroc"] == 0.7
    assert lb.finished_experiments(exp_show({"lb-x-cae-c0": 0.9}, error="failed")) == {}


def test_table_markdown_and_chart(tmp_path):
    cells = [(m, c, f"{m}-{c}") for m in ("cae", "ae") for c in (0, 1)]
    results = {"cae-0": {"auroc": 0.9}, "cae-1": {"auroc": 0.7}, "ae-0": {"auroc": 0.95}, "ae-1": {"auroc": 0.85}}
    frame = lb.table(cells, results)
    assert list(frame.index) == ["ae", "cae"]  # best mean first
    assert frame.loc["ae", "mean"] == pytest.approx(0.9) and frame.loc["cae", "mean"] == pytest.approx(0.8)
    text = lb.markdown(frame, "auroc", "FMNIST")
    assert "| ae | 0.950 | 0.850 | **0.900** |" in text and "| detector | 0 | 1 | mean |" in text
    missing = lb.table(cells, {k: v for k, v in results.items() if k != "cae-1"})
    assert np.isnan(missing.loc["cae", "mean"]) and "| cae | 0.900 | — | **—** |" in lb.markdown(missing, "auroc", "")
    lb.write_report(frame, tmp_path, "auroc", "FMNIST")
    assert (tmp_path / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "leaderboard.csv").read_text().startswith("detector,0,1,mean")

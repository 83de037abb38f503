import json

import pytest

from oddpix import leaderboard as lb
from oddpix import sweep
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


def test_only_the_baseline_commits_finished_experiments_count():
    found = sweep.finished_experiments(exp_show({"lb-x-cae-c0": 0.9, "lb-x-cae-c1": 0.7}))
    assert set(found) == {"lb-x-cae-c0", "lb-x-cae-c1"} and found["lb-x-cae-c1"]["auroc"] == 0.7
    assert sweep.finished_experiments(exp_show({"lb-x-cae-c0": 0.9}, error="failed")) == {}

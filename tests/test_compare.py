"""`oddpix compare`: experiments side by side in 100 columns, machine noise told apart from changes."""

import pytest

from oddpix.compare import parse_tolerances, pick_baseline, rows_from_exp_show, table
from oddpix.errors import ConfigError


def state(model, epochs, auroc, f1, far, component="reconstruction", classes=(0,), dataset="fashion_mnist"):
    params = {"model": model, "data": {"dataset": dataset, "normal_classes": list(classes)},
              "models": {model: {"epochs": epochs}}, "score": {"component": "auto"}}
    metrics = {"model": model, "component": component, "auroc": auroc, "auprc": 0.98, "f1": f1,
               "false_alarm_rate": far, "accuracy": 0.5}
    return {"params": {"params.yaml": {"data": params}}, "metrics": {"metrics/metrics.json": {"data": metrics}}}


# the shape of `dvc exp show --json`: the workspace, then each commit with its experiments
EXP_SHOW = [
    {"rev": "workspace", "name": None, "data": state("cae", 20, 0.89831, 0.6466, 0.045)},  # a fresh run: noise
    {"rev": "0123456789abcdef", "name": "main", "data": state("cae", 20, 0.89808, 0.6602, 0.050),
     "experiments": [
         {"name": "vae-quick", "revs": [{"rev": "aaaa", "name": "vae-quick",
                                          "data": state("vae", 3, 0.8512, 0.60, 0.047, component="pixel_fraction")}]},
         {"name": "a-very-long-experiment-name", "revs": [{"rev": "bbbb", "data": state(
             "ssl", 10, 0.9402, 0.72, 0.110, component="fused", classes=("Uninfected", "Parasitized"),
             dataset="folder")}]},
         {"name": "failed", "revs": [{"rev": "cccc", "data": None}]},
     ]},
]


def test_table_fits_100_columns_and_shows_what_ran():
    rows = rows_from_exp_show(EXP_SHOW)
    assert [r.name for r in rows] == ["workspace", "main", "vae-quick", "a-very-long-experiment-name", "failed"]
    lines = table(rows, pick_baseline(rows, None), parse_tolerances([]))
    assert max(map(len, lines)) <= 100, "\n".join(lines)
    header = lines[0].split()
    assert header == ["experiment", "model", "dataset", "classes", "epochs", "component", "auroc", "auprc", "f1",
                      "alarms"]
    by_name = {line.split()[0]: line for line in lines[1:6]}
    vae = by_name["vae-quick"].split()
    assert vae[1:6] == ["vae", "fashion_mnist", "0", "3", "pixel_fraction"]  # 3 epochs and the component visible
    assert by_name["main"].split()[:2] == ["main", "*"]  # the baseline is the last commit
    assert "a-very-lo~" in by_name  # cut, marked
    assert "Uninfecte~" in by_name["a-very-lo~"]
    assert by_name["failed"].split()[-4:] == ["-", "-", "-", "-"]


def test_only_differences_beyond_the_tolerance_are_marked():
    rows = rows_from_exp_show(EXP_SHOW)
    lines = table(rows, pick_baseline(rows, None), parse_tolerances([]))
    cells = {line.split()[0]: line.split()[-4:] for line in lines[1:6]}
    # the workspace: AUROC 0.0002 up, F1 0.014 down, 0.5 % fewer false alarms: all machine noise
    assert cells["workspace"] == ["0.898", "0.980", "0.647", "0.045"]
    assert cells["vae-quick"] == ["0.851-", "0.980", "0.600-", "0.047"]
    assert cells["a-very-lo~"] == ["0.940+", "0.980", "0.720+", "0.110+"]
    assert "not changes" in " ".join(lines[-2:])
    # a tighter tolerance marks the workspace's AUROC too; a baseline can be any row
    tight = table(rows, pick_baseline(rows, None), parse_tolerances(["auroc=0.0001"]))
    assert tight[1].split()[-4] == "0.898+"
    against_vae = table(rows, pick_baseline(rows, "vae-quick"), parse_tolerances([]))
    assert against_vae[2].split()[-4] == "0.898+" and against_vae[3].split()[:2] == ["vae-qui~", "*"]


@pytest.mark.parametrize("bad, message", [
    ("auroc", "expected METRIC=VALUE"), ("accuracy=0.1", "one of alarms, auprc, auroc, f1, false_alarm_rate"),
    ("f1=x", "'x' is not a number"), ("f1=-1", "must be >= 0"), ("f1=nan", "must be >= 0"),
])
def test_bad_tolerances_name_the_choices(bad, message):
    with pytest.raises(ConfigError, match=message):
        parse_tolerances([bad])


def test_unknown_baseline_names_the_rows():
    with pytest.raises(ConfigError, match="no such row .one of: workspace, main, vae-quick"):
        pick_baseline(rows_from_exp_show(EXP_SHOW), "nope")

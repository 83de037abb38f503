"""Sweeps on generated data: the ray engine on a local Ray with 2 workers, resuming, failing cells, and the
same AUROC from every engine."""

import copy
import json

import pytest

from oddpix import leaderboard as lb
from oddpix import sweep
from oddpix.errors import OddpixError
from tests.conftest import TINY_MODELS


@pytest.fixture
def base(mirror):
    return {"device": "cpu", "models": copy.deepcopy(TINY_MODELS),
            "data": {"mirror": str(mirror), "checksums": "mirror", "download": False}}


def test_settings_cells_and_names():
    raw = sweep.apply_settings({"data": {"dataset": "mnist"}}, ["data.normal_classes=[3]", "models.ae.lr=1e-3", "seed=7"])
    assert raw == {"data": {"dataset": "mnist", "normal_classes": [3]}, "models": {"ae": {"lr": "1e-3"}}, "seed": 7}
    from oddpix.config import parse_params

    assert parse_params(raw).models["ae"].lr == 1e-3  # YAML 1.1 reads 1e-3 as a string; params accept it
    with pytest.raises(OddpixError, match="expected key=value"):
        sweep.apply_settings({}, ["models.ae.lr"])
    cells = sweep.cells_of("mnist", ["knn", "ae"], [0, 1], [42, 43], ["models.ae.epochs=2"])
    assert len(cells) == 8 and len(set(c.path("r") for c in cells)) == 8
    cell = cells[0]
    assert str(cell.path("reports")).startswith("reports/mnist/knn/c0-s42-") and cell.path("r").suffix == ".json"
    assert cell.overrides()[:4] == ["model=knn", "data.dataset=mnist", "data.normal_classes=[0]", "seed=42"]
    assert sweep.experiment_name("fashion_mnist", "cae", 3, (), 42) == "lb-fashion-mnist-cae-c3-s42"
    assert sweep.experiment_name("mnist", "ae", 0, ["a=1"], 42) != sweep.experiment_name("mnist", "ae", 0, ["a=2"], 42)
    assert len(sweep.code_version()) == 16 and sweep.code_version() == sweep.code_version()


@pytest.mark.xdist_group("ray")  # the tests that start Ray run one after another
def test_ray_engine_runs_resumes_and_reports_a_failing_cell(tmp_path, base):
    ray = pytest.importorskip("ray")
    reports = tmp_path / "reports"
    cells = sweep.cells_of("fashion_mnist", ["knn", "ae"], [0, 1], [42, 43])
    crash = sweep.Cell("fashion_mnist", "knn", 0, 42, ("models.knn.k=100000",))  # fails inside fit
    invalid = sweep.Cell("fashion_mnist", "knn", 1, 42, ("models.knn.k=-1",))    # fails validation
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # a local Ray with 2 workers
    try:
        first = sweep.run_sweep(base, [*cells, crash, invalid], reports, "ray", progress=False, log=lambda m: None)
        assert first.ran == 9 and first.reused == 0
        assert set(first.failed) == {crash, invalid}
        ok = {c: r for c, r in first.records.items() if r["status"] == "ok"}
        assert set(ok) == set(cells)
        for cell, record in ok.items():
            on_disk = json.loads(cell.path(reports).read_text())
            assert on_disk["metrics"]["auroc"] == record["metrics"]["auroc"] > 0.8
            assert on_disk["engine"] == "ray" and on_disk["device"] == "cpu" and on_disk["seconds"] > 0
            assert on_disk["gpus"] == []  # no --gpus-per-cell: no GPU asked for
            assert on_disk["params"]["model"] == cell.model and on_disk["params"]["seed"] == cell.seed
            assert {"python", "torch", "ray"} <= set(on_disk["versions"]) and on_disk["code_version"]
        crashed = json.loads(crash.path(reports).read_text())
        assert crashed["status"] == "failed" and "models.knn.k: 100000 neighbours" in crashed["error"]
        assert crashed["log"]  # the cell's last output lines, for the post-mortem
        assert "models.knn.k" in json.loads(invalid.path(reports).read_text())["error"]

        # an interrupted sweep: three results never got written; the rerun runs those (and the failures) only
        lost = cells[:3]
        for cell in lost:
            cell.path(reports).unlink()
        kept = {c: c.path(reports).stat().st_mtime_ns for c in cells[3:]}
        second = sweep.run_sweep(base, [*cells, crash, invalid], reports, "ray", progress=False, log=lambda m: None)
        assert second.ran == 4 and second.reused == len(cells) - 3
        assert all(c.path(reports).stat().st_mtime_ns == t for c, t in kept.items())
        for cell in lost:  # same params, same seed: the same AUROC
            assert second.records[cell]["metrics"]["auroc"] == first.records[cell]["metrics"]["auroc"]
    finally:
        ray.shutdown()

    # the local engine (in this process) gives the same AUROC for the same cell, and can keep its scores
    local = sweep.run_sweep(base, cells[:1], tmp_path / "local", "local", progress=False, log=lambda m: None,
                            keep_scores=True)
    assert local.records[cells[0]]["metrics"]["auroc"] == first.records[cells[0]]["metrics"]["auroc"]
    import hashlib

    kept_scores = cells[0].path(tmp_path / "local").with_suffix(".scores")
    digest = hashlib.sha256((kept_scores / "val.csv").read_bytes() + (kept_scores / "test.csv").read_bytes())
    assert digest.hexdigest() == local.records[cells[0]]["scores_sha256"]  # the tables the metrics came from

    # the leaderboard of those records: 2 detectors x 2 classes, mean +- std over the 2 seeds
    frame = lb.results(second.records.values())
    board = lb.board(frame[frame.detector.isin(["knn", "ae"])].dropna())
    assert list(board.mean.columns) == [0, 1, "mean"] and board.seeds == 2


@pytest.mark.xdist_group("ray")  # the tests that start Ray run one after another
def test_ray_engine_gives_each_cell_its_share_of_a_gpu(tmp_path, base):
    """--gpus-per-cell reaches Ray: on a Ray that has one (pretend) GPU, cells asking for a whole GPU run one
    at a time although two CPUs are free, cells asking for half of it are both given GPU 0, and ``device:
    auto`` runs on what torch can see (the CPU on a machine without CUDA)."""
    from datetime import datetime, timedelta

    import torch

    ray = pytest.importorskip("ray")
    cells = sweep.cells_of("fashion_mnist", ["knn"], [0, 1], [42])
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        runs = {share: sweep.run_sweep({**base, "device": "auto"}, cells, tmp_path / f"gpu{share}", "ray",
                                       gpus_per_cell=share, progress=False, log=lambda m: None)
                for share in (1.0, 0.5)}
    finally:
        ray.shutdown()
    for run in runs.values():
        assert not run.failed and run.ran == 2
        for record in run.records.values():
            assert record["gpus"] == ["0"] and record["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    spans = sorted((datetime.fromisoformat(r["started"]), r["seconds"]) for r in runs[1.0].records.values())
    (first, length), (second, _) = spans
    # a whole GPU each: the second waited for the first (0.02 s: the times are rounded)
    assert first + timedelta(seconds=length) <= second + timedelta(seconds=0.02)
    aurocs = {share: {c: r["metrics"]["auroc"] for c, r in run.records.items()} for share, run in runs.items()}
    assert aurocs[0.5] == aurocs[1.0]


def records(values: dict) -> list[dict]:
    """Records as the sweep writes them, from {(model, class, seed): auroc or None (failed)}."""
    out = []
    for (model, cls, seed), auroc in values.items():
        cell = {"dataset": "mnist", "model": model, "cls": cls, "seed": seed, "settings": []}
        out.append({"cell": cell, "status": "ok" if auroc is not None else "failed",
                    "metrics": {"auroc": auroc} if auroc is not None else None})
    return out


def test_board_mean_std_over_seeds_and_wilcoxon(tmp_path):
    values = {}
    for cls in range(5):
        for seed in (1, 2):
            values[("good", cls, seed)] = 0.90 + 0.01 * cls + 0.002 * seed
            values[("worse", cls, seed)] = 0.85 + 0.01 * cls + 0.001 * seed
    b = lb.board(lb.results(records(values)))
    assert list(b.mean.index) == ["good", "worse"] and b.seeds == 2
    assert b.mean.loc["good", 0] == pytest.approx(0.903) and b.std.loc["good", 0] == pytest.approx(0.0014142, rel=1e-3)
    assert b.mean.loc["good", "mean"] == pytest.approx(0.923)
    s = b.significance
    assert s["best"] == "good" and s["second"] == "worse" and s["pairs"] == 10 and s["p_value"] < 0.01
    assert s["significant"] and s["mean_difference"] == pytest.approx(0.0515)
    text = lb.write_report(b, tmp_path, "auroc", "MNIST", failed=["mnist/x/c0-s1: boom"])
    assert "| good | 0.903 ± 0.001 |" in text and "**0.923 ± 0.001**" in text
    assert text.count("**") == 2  # only the best mean is bold
    assert "p = 0.000977 (significant at 0.05)" in text and "- mnist/x/c0-s1: boom" in text
    assert (tmp_path / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "leaderboard.csv").read_text().startswith("detector,0,1,2,3,4,mean,0_std")

    # a failed cell: that class has no mean for the detector, so neither has the detector overall
    values[("worse", 3, 2)] = None
    b = lb.board(lb.results(records(values)))
    assert b.mean.loc["worse", 3] == pytest.approx(0.881) and b.mean["mean"].isna()["worse"]
    assert b.significance["pairs"] == 9
    # a tie is not significant
    tie = {("a", c, 1): 0.9 for c in range(4)} | {("b", c, 1): 0.9 for c in range(4)}
    assert lb.board(lb.results(records(tie))).significance["significant"] is False
    # a tiny std keeps a significant digit; with 4 pairs the test's floor is said
    close = {("a", c, s): 0.9 + 0.01 * c + 0.0002 * s for c in range(2) for s in (1, 2)}
    close |= {("b", c, s): 0.8 + 0.01 * c for c in range(2) for s in (1, 2)}
    text = lb.markdown(lb.board(lb.results(records(close))), "auroc", "t")
    row_a = next(line for line in text.splitlines() if line.startswith("| a |"))
    assert "0.900 ± 0.0001" in row_a and "± 0.000 " not in row_a  # an exact 0 (row b) stays 0.000
    assert "With 4 pairs this test cannot go below p = 0.0625: 5 or more (classes x seeds) are needed" in text
    # the class columns are named where the dataset names its classes (MNIST's names are its numbers)
    garments = lb.markdown(lb.board(lb.results(records(close))), "auroc", "t", class_names=("T-shirt/top", "Trouser"))
    assert "| detector | 0 T-shirt/top | 1 Trouser | mean |" in garments
    assert "| detector | 0 | 1 | mean |" in lb.markdown(lb.board(lb.results(records(close))), "auroc", "t",
                                                      class_names=tuple("0123456789"))


def test_requests_are_checked_before_any_run():
    from oddpix.config import parse_params

    params = parse_params({})
    with pytest.raises(OddpixError, match="mnist has no class 10; valid classes: 0-9"):
        lb.validate(lb.Request(["knn"], list(range(0, 100)), ["mnist"]), params)
    with pytest.raises(OddpixError, match="emnist_letters has no class 26; valid classes: 0-25"):
        lb.validate(lb.Request(["knn"], [26], ["emnist_letters"]), params)
    lb.validate(lb.Request(["knn"], [0, 25], ["emnist_letters"]), params)  # a and z
    with pytest.raises(OddpixError, match="'nosuch' is not a metric of these detectors; valid choices: auroc, "):
        lb.validate(lb.Request(["knn"], [0], ["mnist"], metric="nosuch"), params)
    with pytest.raises(OddpixError, match="unknown model 'vea'; valid choices: cae, ae"):
        lb.validate(lb.Request(["vea"], [0], ["mnist"]), params)
    lb.validate(lb.Request(["cae"], [0], ["mnist"], metric="auroc_density"), params)  # a component's AUROC
    with pytest.raises(OddpixError, match="--engine: 'slurm' is not an engine; valid choices: dvc, ray, local"):
        sweep.run_sweep({}, [], "r", "slurm")



def test_a_dry_run_says_what_would_run_and_writes_nothing(tmp_path):
    said = []
    cells = sweep.cells_of("mnist", ["knn"], [0, 1], [42]) + [sweep.Cell("mnist", "knn", 2, 42, ("models.knn.k=-1",))]
    result = sweep.run_sweep({}, cells, tmp_path / "r", "dvc", dry_run=True, log=said.append)
    assert result.ran == 0 and not (tmp_path / "r").exists()
    assert said[0] == "sweep: 3 cells, 0 finished already, 2 to run, 1 with invalid params (engine dvc)"
    assert said[1].startswith("invalid: mnist/knn/c2-s42-") and "models.knn.k" in said[1]
    assert said[2] == ("would run: mnist/knn/c0-s42  (dvc exp run --temp -n lb-mnist-knn-c0-s42 -S model=knn "
                       "-S data.dataset=mnist -S data.normal_classes=[0] -S seed=42 evaluate)")


def test_rays_start_up_warnings_are_noted_above_the_bar_not_written_into_it(capsys):
    """Ray logs e.g. its token-authentication notice to stderr while it starts, where the bar is drawn."""
    import logging

    from oddpix.sweep.engines import _ray_init

    class FakeRay:
        def init(self, **_):
            logging.getLogger("ray._private.authentication.authentication_token_setup").warning(
                "Token authentication is enabled for this Ray cluster.")
            logging.getLogger("ray._private.worker").info("Started a local Ray instance.")

    ray_logger = logging.getLogger("ray")
    stderr_handler = logging.StreamHandler()  # as Ray configures its logger when imported
    ray_logger.addHandler(stderr_handler)
    notes, propagate = [], ray_logger.propagate
    try:
        _ray_init(FakeRay(), None, notes.append)
        assert stderr_handler in ray_logger.handlers and ray_logger.propagate == propagate  # as it was
    finally:
        ray_logger.removeHandler(stderr_handler)
    assert notes == ["ray: Token authentication is enabled for this Ray cluster."]
    assert capsys.readouterr().err == ""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from oddpix.config import parse_params
from oddpix.data.protocols import DataConfig
from oddpix.data.protocols import make_splits
from oddpix.data.synthetic import pattern_dataset, write_idx_folder

# `make test` runs the tests in parallel (pytest-xdist, one worker per core): one thread per worker, for it and
# the processes it starts, so that the workers do not fight over the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

# The small settings every detector trains with here: the fingerprint preset's, defined once in its file.
TINY_MODELS = yaml.safe_load((Path(__file__).resolve().parents[1] / "benchmarks/fingerprint.yaml").read_text())[
    "params"]["models"]


@pytest.fixture(scope="session")
def patterns():
    """A generated 10-class dataset (100 train, 30 test images per class)."""
    return pattern_dataset(n_train_per_class=100, n_test_per_class=30, seed=0)


@pytest.fixture(scope="session")
def pattern_splits(patterns):
    return make_splits(DataConfig(normal_classes=[0], val_fraction=0.1), {"fashion_mnist": patterns}, seed=0)


@pytest.fixture
def mirror(tmp_path, patterns):
    """A mirror folder holding the generated data as fashion-mnist/ IDX files with MD5SUMS."""
    write_idx_folder(patterns, tmp_path / "mirror" / "fashion-mnist")
    return tmp_path / "mirror"


@pytest.fixture
def tiny_params():
    def make(**overrides):
        raw = {"device": "cpu", "models": TINY_MODELS}
        raw.update(overrides)
        return parse_params(raw)
    return make


def run_pipeline(params, root):
    """Every stage in order (plots included), outputs under ``root`` as `dvc repro` lays them; the metrics."""
    from oddpix import pipeline

    return pipeline.run(params, root, plots=True)


TRAINED_SCORE = {"local": {"sigma": 0.5, "topk": 4}}  # not the defaults: predict must reapply them


@pytest.fixture(scope="session")
def trained(tmp_path_factory, patterns):
    """The whole pipeline run once on generated data (tiny cae): (folder, metrics)."""
    root = tmp_path_factory.mktemp("trained")
    write_idx_folder(patterns, root / "mirror" / "fashion-mnist")
    return root, run_pipeline(trained_params(root), root)


def trained_params(root):
    """The params the ``trained`` run was made with (its mirror under ``root``)."""
    return parse_params({"device": "cpu", "models": TINY_MODELS, "score": TRAINED_SCORE,
                         "data": {"mirror": str(root / "mirror"), "checksums": "mirror", "download": False}})


@pytest.fixture(autouse=True)
def _fresh_seed():
    torch.manual_seed(0)
    np.random.seed(0)


# Under pytest-xdist the longest tests start first, so that no worker is left with one of them at the end
# while the other has finished: the end-to-end runs (marked slow), then the detectors that train longest.
LONG = ("test_draem_learns", "test_detector_contract[ssl]", "test_cutpaste_learns", "test_detector_contract[draem]",
        "test_ssl_", "test_service.py", "test_detector_contract[ganomaly]", "test_export.py")


def pytest_collection_modifyitems(config, items):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def cost(item) -> int:
        if item.get_closest_marker("slow"):
            return 0
        return 1 if any(name in item.nodeid for name in LONG) else 2
    items.sort(key=cost)  # stable: the same order on every worker

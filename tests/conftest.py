import numpy as np
import pytest
import torch

from oddpix.config import parse_params
from oddpix.data.protocols import one_vs_rest
from oddpix.data.synthetic import pattern_dataset, write_idx_folder

TINY_MODELS = {
    "cae": {"channels": [8, 16], "latent_dim": 8, "epochs": 10, "batch_size": 16},
    "ae": {"hidden": [64], "latent_dim": 8, "epochs": 10, "batch_size": 16},
}


@pytest.fixture(scope="session")
def patterns():
    """A generated 10-class dataset (100 train, 30 test images per class)."""
    return pattern_dataset(n_train_per_class=100, n_test_per_class=30, seed=0)


@pytest.fixture(scope="session")
def pattern_splits(patterns):
    return one_vs_rest(patterns, [0], val_fraction=0.1, seed=0)


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


@pytest.fixture(autouse=True)
def _fresh_seed():
    torch.manual_seed(0)
    np.random.seed(0)

import numpy as np
import pytest
import torch
from sklearn.neighbors import KernelDensity

from oddpix.density import LatentKDE, gaussian_log_density
from oddpix.errors import OddpixError


def test_matches_scikit_learn():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(300, 5))
    points = rng.normal(size=(50, 5)) * 1.5
    ours = gaussian_log_density(torch.from_numpy(points), torch.from_numpy(data), 0.7, block=16).numpy()
    ref = KernelDensity(kernel="gaussian", bandwidth=0.7).fit(data).score_samples(points)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_outliers_have_low_density_and_rules_give_positive_bandwidths():
    gen = torch.Generator().manual_seed(0)
    train = torch.randn(500, 8, generator=gen) * 3 + 10
    for rule in ("scott", "silverman", 0.4):
        kde = LatentKDE.fit(train, rule)
        assert kde.bandwidth > 0
        inlier = kde.log_density(torch.full((1, 8), 10.0))
        outlier = kde.log_density(torch.full((1, 8), 25.0))
        assert inlier.item() > outlier.item() + 10


def test_cv_bandwidth_prefers_a_sensible_width():
    gen = torch.Generator().manual_seed(0)
    train, val = torch.randn(400, 2, generator=gen), torch.randn(200, 2, generator=gen)
    kde = LatentKDE.fit(train, "cv", val)
    assert kde.rule == "cv" and 0.05 < kde.bandwidth < 2.0
    with pytest.raises(OddpixError, match="'cv' needs validation codes"):
        LatentKDE.fit(train, "cv", None)


def test_subsample_and_state_round_trip():
    train = torch.randn(100, 3)
    kde = LatentKDE.fit(train, "scott", max_train=40, generator=torch.Generator().manual_seed(1))
    assert len(kde.data) == 40
    again = LatentKDE.from_state(kde.state())
    torch.testing.assert_close(again.log_density(train[:5]), kde.log_density(train[:5]))

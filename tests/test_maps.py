import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from oddpix.maps import LocalConfig, gaussian_blur, local_scores
from oddpix.models import REGISTRY, build_detector


def test_local_scores_find_a_small_spot_that_the_mean_drowns():
    gen = torch.Generator().manual_seed(0)
    maps = torch.rand(200, 28, 28, generator=gen) * 0.2  # background error everywhere
    anomalous = torch.arange(200) >= 100
    maps[:100] += 0.02  # the normal half has a slightly larger error overall ...
    for i in range(100, 200):  # ... the anomalous half one small spot of 3 x 3 pixels
        r, c = torch.randint(2, 24, (2,), generator=gen).tolist()
        maps[i, r:r + 3, c:c + 3] += 1.0
    local = local_scores(maps, LocalConfig(sigma=1.0, topk=9))
    mean = maps.flatten(1).mean(1)
    assert roc_auc_score(anomalous, local["local_topk"]) == 1.0
    assert roc_auc_score(anomalous, local["local_max"]) == 1.0
    assert roc_auc_score(anomalous, mean) < 0.9
    # local_max is the largest smoothed value, local_topk the mean of the topk largest
    smooth = gaussian_blur(maps[:, None], 1.0).flatten(1)
    torch.testing.assert_close(local["local_max"], smooth.max(1).values)
    torch.testing.assert_close(local["local_topk"], smooth.sort(1, descending=True).values[:, :9].mean(1))
    # sigma 0: the raw map; topk larger than the map: every pixel
    raw = local_scores(maps[:2], LocalConfig(sigma=0.0, topk=10_000))
    torch.testing.assert_close(raw["local_max"], maps[:2].flatten(1).max(1).values)
    torch.testing.assert_close(raw["local_topk"], maps[:2].flatten(1).mean(1))


@pytest.mark.parametrize("name", [n for n in REGISTRY if REGISTRY[n].has_maps])
def test_reconstruction_maps_agree_with_the_whole_image_score(name, tiny_params):
    det = build_detector(name, tiny_params().models[name], (3, 20, 24)).eval()
    x = torch.rand(4, 3, 20, 24)
    maps = det.anomaly_map(x)
    assert maps.shape == (4, 20, 24) and torch.isfinite(maps).all()
    scores = det.score(x)
    if "reconstruction" in scores and name != "ganomaly" and name != "gan_mse":
        # the map is what `reconstruction` averages, per pixel, the channels summed
        torch.testing.assert_close(maps.flatten(1).sum(1) / x[0].numel(), scores["reconstruction"],
                                   rtol=1e-4, atol=1e-6)
    assert {"local_max", "local_topk"} <= set(REGISTRY[name].components(kde=False))


def test_detectors_without_maps_have_no_local_components():
    for name in ("knn", "geom", "ssl", "cnn", "deep_svdd"):
        assert not REGISTRY[name].has_maps and "local_max" not in REGISTRY[name].components(kde=True)

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from oddpix.maps import LocalConfig, gaussian_blur, read_local, smooth_maps
from oddpix.models import REGISTRY, build_detector


def test_local_scores_find_a_small_spot_that_the_mean_drowns():
    gen = torch.Generator().manual_seed(0)
    maps = torch.rand(200, 28, 28, generator=gen) * 0.2  # background error everywhere
    anomalous = torch.arange(200) >= 100
    maps[:100] += 0.02  # the normal half has a slightly larger error overall ...
    for i in range(100, 200):  # ... the anomalous half one small spot of 3 x 3 pixels
        r, c = torch.randint(2, 24, (2,), generator=gen).tolist()
        maps[i, r:r + 3, c:c + 3] += 1.0
    cfg = LocalConfig(sigma=1.0, topk=9)
    local = read_local(smooth_maps(maps, cfg), cfg)
    mean = maps.flatten(1).mean(1)
    assert roc_auc_score(anomalous, local["local_topk"]) == 1.0
    assert roc_auc_score(anomalous, local["local_max"]) == 1.0
    assert roc_auc_score(anomalous, mean) < 0.9
    # local_max is the largest smoothed value, local_topk the mean of the topk largest
    smooth = gaussian_blur(maps[:, None], 1.0).flatten(1)
    torch.testing.assert_close(local["local_max"], smooth.max(1).values)
    torch.testing.assert_close(local["local_topk"], smooth.sort(1, descending=True).values[:, :9].mean(1))
    # sigma 0: the raw map; topk larger than the map: every pixel
    raw_cfg = LocalConfig(sigma=0.0, topk=10_000)
    raw = read_local(smooth_maps(maps[:2], raw_cfg), raw_cfg)
    torch.testing.assert_close(raw["local_max"], maps[:2].flatten(1).max(1).values)
    torch.testing.assert_close(raw["local_topk"], maps[:2].flatten(1).mean(1))


@pytest.mark.parametrize("name", [n for n in REGISTRY if REGISTRY[n].has_maps and n not in ("patch_knn", "fusion")])
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


@pytest.mark.parametrize("gallery", [0, 5])  # a global patch memory; aligned against the 5 nearest images
def test_patch_knn_finds_and_locates_a_small_dot(tmp_path, tiny_params, pattern_splits, gallery):
    from oddpix.data.corruptions import dot
    from oddpix.models import FitData, load_detector, save_detector
    from oddpix.preprocess import Preprocessor
    from oddpix.runtime import seed_everything
    from oddpix.scoring import score_components
    from oddpix.training import FitContext

    prep = Preprocessor()
    train = prep.transform(pattern_splits["train"].x)
    test = pattern_splits["test"]
    normal = test.x[test.y == 0]  # clean normal test images; half of them get a small bright dot
    dotted = dot(normal[::2], np.random.default_rng(1), dot_radius=(1.5, 2.0))
    x = prep.transform(np.concatenate([normal[1::2], dotted]))
    y = np.r_[np.zeros(len(normal[1::2])), np.ones(len(dotted))]
    config = tiny_params(models={"patch_knn": {"memory": 5000, "gallery": gallery, "max_images": 60}}).models["patch_knn"]
    det = build_detector("patch_knn", config, (1, 28, 28))
    logs = []
    det.fit(FitData(train, prep.transform(pattern_splits["val"].x)),
            FitContext(torch.device("cpu"), seed_everything(0), log=logs.append))
    if gallery:
        assert len(train) > 60 and det.bank.shape == (60, 28 * 28)
        assert logs[0].startswith("patch_knn: remembering 60 training images; each test image is compared with "
                                  "its 5 nearest")
    else:
        assert len(det.bank) == 5000 and logs[0].startswith("patch_knn: remembering 5000 patches of 5x5")
    comps = score_components(det, x, local=LocalConfig(sigma=1.0, topk=4))
    assert roc_auc_score(y, comps["patch_max"]) > 0.9 and roc_auc_score(y, comps["local_max"]) > 0.9
    # the map peaks where the dot was drawn
    maps = det.anomaly_map(x[y == 1])
    changed = torch.from_numpy(np.any(dotted != normal[::2], axis=3))
    peak = maps.flatten(1).argmax(1)
    on_dot = changed.flatten(1).gather(1, peak[:, None]).squeeze(1) | \
        gaussian_blur(changed[:, None].float(), 1.0)[:, 0].flatten(1).gather(1, peak[:, None]).squeeze(1).gt(0.05)
    assert on_dot.float().mean() > 0.8
    assert maps.shape == (len(dotted), 28, 28)
    save_detector(det, tmp_path / "p.pt")
    again, _ = load_detector(tmp_path / "p.pt")
    torch.testing.assert_close(again.score(x)["patch_max"], comps["patch_max"])


def test_defect_textures_mark_exactly_the_small_dark_defects():
    from oddpix.data.synthetic import DEFECTS, defect_textures

    images, masks, kinds = defect_textures(60, size=48, defect_share=0.5, seed=3)
    assert images.shape == (60, 48, 48, 3) and images.dtype == np.uint8 and masks.shape == (60, 48, 48)
    has = kinds != ""
    assert 15 < has.sum() < 45 and set(kinds[has]) <= set(DEFECTS)
    assert not masks[~has].any() and masks[has].any(axis=(1, 2)).all()
    area = masks[has].sum(axis=(1, 2))
    assert area.max() < 0.05 * 48 * 48  # small: under 5 % of the image
    brightness = images.astype(float).mean(axis=3)
    for i in np.flatnonzero(has):  # the defect pixels are darker than the rest of their image
        assert brightness[i][masks[i]].mean() < 0.7 * brightness[i][~masks[i]].mean()
    again, _, _ = defect_textures(60, size=48, defect_share=0.5, seed=3)
    assert np.array_equal(images, again)


def test_folder_masks_give_pixel_metrics_for_the_patch_detector(tmp_path, tiny_params):
    from conftest import run_pipeline
    from oddpix.data.synthetic import write_defect_folder

    root = write_defect_folder(tmp_path / "textures", n=200, size=32, defect_share=0.3, seed=1)
    data = {"dataset": "folder", "protocol": "folder", "normal_classes": ["good"],
            "folder": {"root": str(root), "image_size": 32, "channels": 3, "test_fraction": 0.3}}
    params = tiny_params(model="patch_knn", data=data, models={"patch_knn": {"patch": 5, "stride": 1}})
    metrics = run_pipeline(params, tmp_path / "run")
    assert metrics["component"] == "patch_max" and metrics["auroc"] > 0.85
    assert metrics["pixel_auroc"] > 0.85 and metrics["pro"] > 0.5
    assert {"auroc_local_max", "auroc_local_topk"} <= set(metrics)
    assert (tmp_path / "run/plots/images/anomaly_maps.png").stat().st_size > 5000

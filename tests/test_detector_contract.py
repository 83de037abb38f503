"""The contract every registered detector keeps: it builds from its params section, fits a tiny generated
task, scores exactly its declared components (finite, one per image), saves and loads to identical
scores, exports to a bundle that scores as the pipeline does (onnxruntime, within 1e-5, the same
decisions), and a rerun with the same seed gives identical scores. A new detector is covered by
registering it."""

import pytest
import torch

from conftest import TINY_MODELS
from oddpix.config import parse_params
from oddpix.data.protocols import DataConfig, make_splits
from oddpix.models import REGISTRY, FitData, build_detector, load_detector, save_detector
from oddpix.preprocess import Preprocessor
from oddpix.runtime import seed_everything
from oddpix.training import FitContext


@pytest.fixture(scope="module")
def tasks(patterns):
    plain = make_splits(DataConfig(normal_classes=[0]), {"fashion_mnist": patterns}, seed=0)
    labelled = make_splits(DataConfig(normal_classes=[0], contamination=0.1, val_anomaly_fraction=0.2),
                           {"fashion_mnist": patterns}, seed=0)
    return plain, labelled


# The contract needs a detector that fits, not one that learns well (the learning tests check that): the
# slowest ones train shorter here, and the memory banks are smaller.
LIGHTER = {"draem": {"epochs": 2, "epoch_images": 128, "memory": 1000},
           "ganomaly": {"epochs": 6}, "gan_mse": {"epochs": 6}, "synth_seg": {"epochs": 2, "epoch_images": 128},
           "cutpaste": {"epochs": 2, "epoch_images": 128, "memory": 1000}, "patch_knn": {"memory": 1000}}
CONTRACT_MODELS = {name: {**settings, **LIGHTER.get(name, {})} for name, settings in TINY_MODELS.items()}


def _fit_and_score(name, splits, seed):
    params = parse_params({"device": "cpu", "models": CONTRACT_MODELS})
    prep = Preprocessor().fit(splits["train"].x)
    x = {k: prep.transform(v.x) for k, v in splits.items()}
    y = {k: torch.from_numpy(v.y) for k, v in splits.items()}
    generator = seed_everything(seed)
    detector = build_detector(name, params.models[name], tuple(x["train"].shape[1:]))
    history = detector.fit(FitData(x["train"], x["val"], y["train"], y["val"]),
                           FitContext(torch.device("cpu"), generator, log=lambda _m: None, progress=False))
    return detector, history, detector.score(x["test"]), x["test"], prep


@pytest.mark.parametrize("name", list(REGISTRY))
def test_detector_contract(name, tasks, tmp_path):
    cls = REGISTRY[name]
    splits = tasks[1] if cls.supervised else tasks[0]
    detector, history, scores, test_x, prep = _fit_and_score(name, splits, seed=1)
    assert all("epoch" in row and "loss" in row for row in history)
    trains = any(True for _ in detector.parameters())  # one that only remembers (knn, patch_knn) has no epochs
    assert bool(history) == trains, f"{name}: {len(history)} history rows"
    assert list(scores) and set(scores) == set(cls.score_components)
    for component, values in scores.items():
        assert values.shape == (len(test_x),) and torch.isfinite(values).all(), component
    if cls.has_encoder:
        assert detector.encode(test_x[:3]).shape[0] == 3
    recon = detector.reconstruct(test_x[:3])
    assert recon is None or recon.shape == test_x[:3].shape

    save_detector(detector, tmp_path / "d.pt")
    again, _ = load_detector(tmp_path / "d.pt")
    for component, values in again.score(test_x).items():
        torch.testing.assert_close(values, scores[component], rtol=0, atol=0)

    _check_export(detector, prep, splits, tmp_path / "bundle")

    _, _, rerun, _, _ = _fit_and_score(name, splits, seed=1)
    for component, values in rerun.items():
        assert torch.equal(values, scores[component]), f"{name}: {component} differs on a rerun with the same seed"


def _check_export(detector, prep, splits, out):
    """Export the detector (with its KDE and a fitted threshold) and score the test images from the bundle:
    every component, the map and every decision as the pipeline's scoring gives them."""
    import numpy as np

    from oddpix.bundle import RunBundle, ScoringSettings, as_numpy
    from oddpix.density import LatentKDE
    from oddpix.export import export, tolerance
    from oddpix.served import ServedBundle, relative_difference
    from oddpix.thresholds import ThresholdConfig, fit_threshold

    x = {k: prep.transform(v.x) for k, v in splits.items()}
    kde = LatentKDE.fit(detector.encode(x["train"]).detach(), "scott") if detector.has_encoder else None
    bundle = RunBundle(detector.eval(), prep, kde, None, ScoringSettings(), "contract")
    val = as_numpy(bundle.components(x["val"])[0])
    normal = splits["val"].y == 0
    bundle.threshold = fit_threshold(ThresholdConfig(), val, detector.components(kde is not None)[0], splits["val"].y)
    bundle.threshold.calibrate({k: v[normal] for k, v in val.items()})
    export(bundle, out)
    served = ServedBundle(out)
    pixels = splits["test"].x.astype(np.float32)
    got, maps = served.score(pixels[..., None] if pixels.ndim == 3 else pixels)
    want, want_maps = bundle.components(x["test"], keep_maps=detector.has_maps)
    want = as_numpy(want)
    assert set(got) == set(want)
    for component in want:
        assert relative_difference(got[component], want[component]) <= tolerance(component), component
    if detector.has_maps:
        assert relative_difference(maps, want_maps.numpy()) <= tolerance("anomaly_map")
    else:
        assert maps is None
    thr = bundle.threshold
    assert np.array_equal(thr.predict(got), thr.predict(want))
    assert np.allclose(thr.p_value(got), thr.p_value(want), atol=2 / normal.sum())  # ties may move one rank

import pytest
import torch
from sklearn.metrics import roc_auc_score

from oddpix.models import REGISTRY, FitData, build_detector, load_detector, save_detector
from oddpix.preprocess import Preprocessor
from oddpix.runtime import resolve_device, seed_everything
from oddpix.training import FitContext


def _fit(name, params, splits, seed=0):
    prep = Preprocessor()
    gen = seed_everything(seed)
    det = build_detector(name, params.models[name], (1, 28, 28))
    logs = []
    history = det.fit(FitData(prep.transform(splits["train"].x), prep.transform(splits["val"].x)),
                      FitContext(torch.device("cpu"), gen, log=logs.append))
    return det, history, logs, prep.transform(splits["test"].x)


@pytest.mark.parametrize("name", ["cae", "ae"])
def test_autoencoder_learns_the_normal_class(name, tiny_params, pattern_splits):
    det, history, logs, test_x = _fit(name, tiny_params(), pattern_splits)
    assert history[-1]["loss"] < history[0]["loss"]
    assert len(logs) == len(history) and logs[0].startswith(f"{name} epoch 1/10 loss=")
    scores = det.score(test_x)
    assert set(scores) == set(REGISTRY[name].score_components)
    y = pattern_splits["test"].y
    assert roc_auc_score(y, scores["reconstruction"].numpy()) > 0.9
    assert det.encode(test_x[:5]).shape == (5, 8)
    assert det.reconstruct(test_x[:5]).shape == test_x[:5].shape


def test_excess_bce_is_zero_for_a_perfect_reconstruction(tiny_params):
    det = build_detector("cae", tiny_params().models["cae"], (1, 4, 4))
    x = torch.rand(3, 1, 4, 4)
    logits = torch.logit(x.clamp(1e-6, 1 - 1e-6))
    det.forward = lambda _: logits  # a model that reconstructs perfectly
    scores = det.score(x)
    torch.testing.assert_close(scores["reconstruction"], torch.zeros(3), atol=1e-4, rtol=0)
    assert (scores["bce"] > 0.1).all()  # raw BCE is the images' own entropy


def test_training_is_deterministic(tiny_params, pattern_splits):
    a, *_ = _fit("cae", tiny_params(), pattern_splits, seed=3)
    b, *_ = _fit("cae", tiny_params(), pattern_splits, seed=3)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_early_stopping_keeps_the_best_epoch(tiny_params, pattern_splits):
    params = tiny_params(models={"cae": {"channels": [4], "latent_dim": 4, "epochs": 40, "lr": 0.05,
                                         "patience": 2, "batch_size": 16}})
    det, history, logs, _ = _fit("cae", params, pattern_splits)
    if len(history) < 40:  # stopped early: the message names the kept epoch and its loss
        assert logs[-1].startswith("early stop")
    best = min(history, key=lambda r: r["val_loss"])
    val_x = Preprocessor().transform(pattern_splits["val"].x)
    with torch.no_grad():
        val_loss = det.pixel_loss(det(val_x), val_x).mean().item()
    assert val_loss == pytest.approx(best["val_loss"], rel=1e-4)


def test_save_and_load_give_identical_scores(tmp_path, tiny_params, pattern_splits):
    det, _, _, test_x = _fit("ae", tiny_params(), pattern_splits)
    save_detector(det, tmp_path / "m.pt", preprocess={"normalize": "unit"})
    again, extra = load_detector(tmp_path / "m.pt")
    assert extra == {"preprocess": {"normalize": "unit"}}
    assert type(again) is type(det) and again.config == det.config
    torch.testing.assert_close(again.score(test_x)["reconstruction"], det.score(test_x)["reconstruction"])


def test_cae_adapts_to_odd_sizes_and_rgb(tiny_params):
    det = build_detector("cae", tiny_params().models["cae"], (3, 37, 30))
    x = torch.rand(2, 3, 37, 30)
    assert det.reconstruct(x).shape == x.shape
    assert det.score(x)["reconstruction"].shape == (2,)


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")

import numpy as np
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


@pytest.mark.parametrize("name", ["cae", "ae", "vae"])
def test_autoencoder_learns_the_normal_class(name, tiny_params, pattern_splits):
    det, history, logs, test_x = _fit(name, tiny_params(), pattern_splits)
    assert history[-1]["loss"] < history[0]["loss"]
    assert len(logs) == len(history) and logs[0].startswith(f"{name} epoch 1/")
    scores = det.score(test_x)
    assert set(scores) == set(REGISTRY[name].score_components)
    y = pattern_splits["test"].y
    assert roc_auc_score(y, scores["reconstruction"].numpy()) > 0.9
    assert det.encode(test_x[:5]).shape == (5, tiny_params().models[name].latent_dim)
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


def test_vae_scores(tiny_params, pattern_splits):
    det, history, _, test_x = _fit("vae", tiny_params(), pattern_splits)
    scores = det.score(test_x)
    y = pattern_splits["test"].y
    for component in ("elbo", "pixel_fraction"):
        assert roc_auc_score(y, scores[component].numpy()) > 0.85, component
    # the KL term is active: the posterior is not the prior
    mu, logvar = det.posterior(test_x[:20])
    assert (det.kl(mu, logvar) > 0.1).all()
    # pixel_fraction is the share of pixels whose |x - x_hat| exceeds the pixel threshold
    recon = det.reconstruct(test_x[:3])
    want = ((test_x[:3] - recon).abs() > det.config.pixel_threshold).float().mean(dim=(1, 2, 3))
    torch.testing.assert_close(scores["pixel_fraction"][:3], want)
    assert 0.0 <= float(scores["pixel_fraction"].min()) and float(scores["pixel_fraction"].max()) <= 1.0


def test_deep_svdd_follows_the_paper(tiny_params, pattern_splits):
    det, history, logs, test_x = _fit("deep_svdd", tiny_params(), pattern_splits)
    assert not any(name.endswith("bias") for name, _ in det.encoder.named_parameters())  # no bias terms
    assert all(not m.affine for m in det.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert (det.center.abs() >= det.config.eps - 1e-7).all()  # centre pushed away from 0
    assert [r["phase"] for r in history].count("pretrain") == 8 and history[-1]["phase"] == "svdd"
    assert [r["epoch"] for r in history] == list(range(1, len(history) + 1))
    assert any(line.startswith("deep_svdd pretrain epoch 1/8") for line in logs)
    y = pattern_splits["test"].y
    assert roc_auc_score(y, det.score(test_x)["distance"].numpy()) > 0.9


@pytest.mark.parametrize("name, component", [("ganomaly", "latent"), ("gan_mse", "reconstruction")])
def test_gan_detectors_learn(name, component, tmp_path, tiny_params, pattern_splits):
    prep = Preprocessor()
    gen = seed_everything(0)
    det = build_detector(name, tiny_params().models[name], (1, 28, 28))
    history = det.fit(FitData(prep.transform(pattern_splits["train"].x), prep.transform(pattern_splits["val"].x)),
                      FitContext(torch.device("cpu"), gen, log=lambda _: None, sample_dir=tmp_path))
    assert {"loss", "loss_d", "val_loss"} <= set(history[0])
    assert not det.training  # scored in eval mode, BatchNorm with its running statistics
    test_x = prep.transform(pattern_splits["test"].x)
    scores = det.score(test_x)
    assert roc_auc_score(pattern_splits["test"].y, scores[component].numpy()) > 0.9
    assert det.reconstruct(test_x[:4]).shape == (4, 1, 28, 28)
    samples = sorted(p.name for p in tmp_path.glob("*.png"))
    if det.config.sample_every:  # 6 batches an epoch x 30 epochs = 180 steps: grids at 60, 120, 180
        assert samples == [f"{name}_step{s:06d}.png" for s in (60, 120, 180)]
    else:
        assert samples == []


def test_aae_rejects_the_least_likely_training_images(tiny_params, patterns):
    from oddpix.data.protocols import DataConfig
    from oddpix.data.protocols import make_splits

    splits = make_splits(DataConfig(normal_classes=[0], contamination=0.1), {"fashion_mnist": patterns}, seed=0)
    prep = Preprocessor()
    gen = seed_everything(0)
    det = build_detector("aae", tiny_params().models["aae"], (1, 28, 28))
    logs = []
    history = det.fit(FitData(prep.transform(splits["train"].x), prep.transform(splits["val"].x),
                              torch.from_numpy(splits["train"].y), torch.from_numpy(splits["val"].y)),
                      FitContext(torch.device("cpu"), gen, log=logs.append))
    assert [r["epoch"] for r in history] == list(range(1, 13))
    assert [r["kept"] for r in history][:4] == [100] * 4 and history[-1]["kept"] == 90
    assert sum("robust training: leaving out 10 of 100" in line for line in logs) == 2
    # the rejected images are mostly the real anomalies (10 of the 100 training images)
    assert det.fit_report["rejected_train"] == 10 and det.fit_report["rejected_true_anomalies"] >= 7
    scores = det.score(prep.transform(splits["test"].x))
    y = splits["test"].y
    assert roc_auc_score(y, scores["reconstruction"].numpy()) > 0.9
    assert roc_auc_score(y, scores["combined"].numpy()) > 0.7
    assert set(scores) == {"reconstruction", "prior", "combined", "bce", "mse"}


def test_cnn_uses_class_weights_and_cross_validates(tiny_params, patterns):
    from oddpix.data.protocols import DataConfig
    from oddpix.data.protocols import make_splits
    from oddpix.errors import OddpixError
    from oddpix.models.cnn import class_weights

    w = class_weights(torch.tensor([0, 0, 0, 1]))
    torch.testing.assert_close(w, torch.tensor([4 / 6, 4 / 6, 4 / 6, 2.0]))  # each class weighs half
    assert float(w[:3].sum()) == pytest.approx(float(w[3:].sum()))

    splits = make_splits(DataConfig(normal_classes=[0], contamination=0.2, val_anomaly_fraction=0.3),
                         {"fashion_mnist": patterns}, seed=0)
    prep = Preprocessor()
    cfg = tiny_params(models={"cnn": {"channels": [8, 16], "hidden": 16, "epochs": 8, "batch_size": 16,
                                      "folds": 3}}, data={"contamination": 0.2}).models["cnn"]
    det = build_detector("cnn", cfg, (1, 28, 28))
    logs = []
    det.fit(FitData(prep.transform(splits["train"].x), prep.transform(splits["val"].x),
                    torch.from_numpy(splits["train"].y), torch.from_numpy(splits["val"].y)),
            FitContext(torch.device("cpu"), seed_everything(0), log=logs.append))
    report = det.fit_report
    assert report["cv_folds"] == 3 and 0.0 <= report["cv_auroc_std"] <= 0.5
    assert report["cv_auroc_mean"] == pytest.approx(np.mean([report[f"cv_auroc_fold{i}"] for i in (1, 2, 3)]))
    assert any(line.startswith("cnn cross-validation: AUROC") for line in logs)
    scores = det.score(prep.transform(splits["test"].x))["probability"]
    assert 0.0 <= float(scores.min()) and float(scores.max()) <= 1.0
    assert roc_auc_score(splits["test"].y, scores.numpy()) > 0.95
    unlabeled = build_detector("cnn", cfg, (1, 28, 28))
    with pytest.raises(OddpixError, match="no labelled anomalies"):
        unlabeled.fit(FitData(torch.rand(8, 1, 28, 28), None, torch.zeros(8)), FitContext(torch.device("cpu"),
                                                                                          seed_everything(0)))


def test_model_level_param_checks():
    from oddpix.config import parse_params
    from oddpix.errors import ConfigError

    with pytest.raises(ConfigError, match="data.contamination: model 'cnn' is supervised"):
        parse_params({"model": "cnn"})
    with pytest.raises(ConfigError, match="kde.enabled: model 'ae_kde' scores by the density"):
        parse_params({"model": "ae_kde", "kde": {"enabled": False}})
    with pytest.raises(ConfigError, match="models.cnn.folds: 1 is not valid"):
        parse_params({"models": {"cnn": {"folds": 1}}})


def test_the_catalog_lists_the_detectors_in_registration_order():
    # each module registers its class when oddpix.models imports it; params validation and the docs list this order
    assert list(REGISTRY) == ["cae", "ae", "vae", "ae_kde", "aae", "deep_svdd", "ganomaly", "gan_mse", "cnn", "knn",
                              "geom", "ssl", "patch_knn", "synth_seg", "draem", "cutpaste", "fusion"]
    assert all(cls.__module__ == f"oddpix.models.{name}" for name, cls in REGISTRY.items())  # one module each


def test_knn_scores_the_distance_to_the_nearest_training_image(tmp_path, tiny_params, pattern_splits):
    det, history, logs, test_x = _fit("knn", tiny_params(), pattern_splits)
    train_x = Preprocessor().transform(pattern_splits["train"].x)
    scores = det.score(test_x)["distance"]
    from oddpix.maps import gaussian_blur

    assert det.config.blur == 1.0  # the default: distances between blurred images
    b_train, b_test = gaussian_blur(train_x, 1.0), gaussian_blur(test_x[:10], 1.0)
    brute = torch.stack([(b_train - img).flatten(1).norm(dim=1).min() for img in b_test])  # the definition
    torch.testing.assert_close(scores[:10], brute, rtol=1e-4, atol=1e-4)
    assert det.score(train_x[:5])["distance"].max() < 1e-2  # a training image is its own nearest neighbour
    assert roc_auc_score(pattern_splits["test"].y, scores.numpy()) > 0.9
    assert history == [] and det.fit_report == {"n_memory": len(train_x)}  # nothing trained: no epochs
    save_detector(det, tmp_path / "knn.pt")
    again, _ = load_detector(tmp_path / "knn.pt")
    torch.testing.assert_close(again.score(test_x)["distance"], scores)
    # mean of the k nearest is at least the nearest, and k-th nearest at least the mean
    k3 = build_detector("knn", tiny_params(models={"knn": {"k": 3}}).models["knn"], (1, 28, 28))
    k3.memory = det.memory
    k3m = build_detector("knn", tiny_params(models={"knn": {"k": 3, "mean_of_k": True}}).models["knn"], (1, 28, 28))
    k3m.memory = det.memory
    d1, d3, d3m = scores[:20], k3.score(test_x[:20])["distance"], k3m.score(test_x[:20])["distance"]
    assert (d1 <= d3m + 1e-5).all() and (d3m <= d3 + 1e-5).all() and (d3 > d1).any()


def test_geom_transformations_are_the_papers(tiny_params):
    from oddpix.errors import ConfigError

    full = tiny_params(models={"geom": {"shift": 8}}).models["geom"]
    det = build_detector("geom", full, (1, 28, 28))
    assert det.n_transforms == 72  # 2 flips x 9 shifts x 4 rotations, as in Golan & El-Yaniv 2018
    x = torch.rand(3, 1, 28, 28)
    xt, y = det.transformed(x)
    assert xt.shape == (72 * 3, 1, 28, 28) and y.tolist() == [t for t in range(72) for _ in range(3)]
    flat = xt.view(72, -1)
    assert len({tuple(r.tolist()) for r in flat.round(decimals=5)}) == 72  # all different images
    torch.testing.assert_close(det.apply_transform(x, False, (0, 0), 1), torch.rot90(x, 1, dims=(-2, -1)))
    torch.testing.assert_close(det.apply_transform(x, True, (0, 0), 0), x.flip(-1))
    shifted = det.apply_transform(x, False, (8, 0), 0)  # down by 8 rows, reflected at the top
    torch.testing.assert_close(shifted[..., 8:, :], x[..., :-8, :])
    torch.testing.assert_close(shifted[..., 7, :], x[..., 1, :])
    two = tiny_params(models={"geom": {"flips": False, "rotations": 2}}).models["geom"]
    det2 = build_detector("geom", two, (1, 20, 28))  # non-square: padded to 28 x 28; 0 and 180 degrees
    xt2, _ = det2.transformed(torch.rand(2, 1, 20, 28))
    assert det2.transforms == [(False, (0, 0), 0), (False, (0, 0), 2)] and xt2.shape == (4, 1, 28, 28)
    with pytest.raises(ConfigError, match=r"models.geom.shift: 14 pixels is too large for 28x28 images"):
        build_detector("geom", tiny_params(models={"geom": {"shift": 14}}).models["geom"], (1, 28, 28))
    with pytest.raises(ConfigError, match=r"models.geom.rotations: 3 is not a group"):
        tiny_params(models={"geom": {"rotations": 3}})


def test_geom_learns_which_transformation_was_applied(tmp_path, tiny_params, pattern_splits):
    det, history, logs, test_x = _fit("geom", tiny_params(), pattern_splits)
    assert history[-1]["accuracy"] > 0.9 and history[-1]["loss"] < history[0]["loss"]
    assert logs[0].startswith("geom: 4 transformations")
    scores = det.score(test_x)["transform"]
    assert roc_auc_score(pattern_splits["test"].y, scores.numpy()) > 0.9
    # the score is minus the mean log-probability of the right transformation
    xt, y = det.transformed(test_x[:5])
    with torch.no_grad():
        want = -torch.log_softmax(det(xt), 1).gather(1, y[:, None]).view(4, 5).mean(0)
    torch.testing.assert_close(scores[:5], want, rtol=1e-4, atol=1e-5)
    save_detector(det, tmp_path / "g.pt")
    again, _ = load_detector(tmp_path / "g.pt")
    torch.testing.assert_close(again.score(test_x)["transform"], scores)


def test_gaussian_blur_smooths_and_keeps_the_mass():
    from oddpix.maps import gaussian_blur

    x = torch.zeros(2, 3, 15, 15)
    x[:, :, 7, 7] = 1.0  # an impulse in every channel
    y = gaussian_blur(x, 1.0)
    assert y.shape == x.shape and torch.allclose(y.sum(dim=(2, 3)), torch.ones(2, 3), atol=1e-4)
    assert y[0, 0, 7, 7] == y.max() and 0.1 < float(y[0, 0, 7, 7]) < 0.2  # 1 / (2 pi) for sigma 1
    torch.testing.assert_close(y[0, 0, 7, 8], y[0, 0, 8, 7])  # isotropic
    torch.testing.assert_close(y[:, 0], y[:, 2])  # channels alike, none mixed
    assert torch.equal(gaussian_blur(x, 0.0), x)
    # a one-pixel shift moves a sharp stroke far in raw pixels, much less after blurring
    shifted = torch.roll(x, 1, dims=3)
    raw = (x - shifted).norm()
    assert (gaussian_blur(x, 1.0) - gaussian_blur(shifted, 1.0)).norm() < 0.5 * raw


def test_ssl_task_turns_and_shifts_the_images_it_says(tiny_params):
    from oddpix.errors import ConfigError

    det = build_detector("ssl", tiny_params(models={"ssl": {"shift": 3}}).models["ssl"], (1, 26, 26))
    assert det.side == 28  # zero-padded to a multiple of 4, the image in the middle
    x = torch.rand(5, 1, 26, 26)
    square = det.square(x)
    torch.testing.assert_close(square[..., 1:27, 1:27], x)
    assert square[..., 0, :].abs().sum() == 0
    plain, labels = det.task(x, random_shift=False)  # every rotation, unshifted: rotation-major
    assert plain.shape == (20, 1, 28, 28) and labels[:, 0].tolist() == [r for r in range(4) for _ in range(5)]
    assert (labels[:, 1:] == 0).all()
    for r in range(4):
        torch.testing.assert_close(plain[5 * r:5 * r + 5], torch.rot90(square, r, dims=(-2, -1)))
    torch.manual_seed(0)
    moved, labels = det.task(x, random_shift=True)
    assert len(set(map(tuple, labels[:, 1:].tolist()))) > 3  # shifts drawn per image
    for i in range(20):  # undo the rotation: the image is the square one moved by the labelled shift
        r, iy, ix = labels[i].tolist()
        back = torch.rot90(moved[i], -r, dims=(-2, -1))
        dy, dx = det.shifts[iy], det.shifts[ix]
        torch.testing.assert_close(back, det.shifted(square[i % 5:i % 5 + 1], dy, dx)[0])
        if dy > 0:
            torch.testing.assert_close(back[:, dy:, :][:, :, max(dx, 0):28 + min(dx, 0)],
                                       square[i % 5][:, :-dy, :][:, :, max(-dx, 0):28 + min(-dx, 0)])
    with pytest.raises(ConfigError, match=r"models.ssl.fuse\[0\]: 'pixel' is not a valid choice \(did you mean 'pixels'"):
        tiny_params(models={"ssl": {"fuse": ["pixel"]}})
    with pytest.raises(ConfigError, match=r"models.ssl.rotations: 3 is not a group"):
        tiny_params(models={"ssl": {"rotations": 3}})


def test_ssl_learns_and_fuses_on_the_validation_normals(tmp_path, tiny_params, pattern_splits):
    det, history, logs, test_x = _fit("ssl", tiny_params(), pattern_splits)
    assert history[-1]["loss"] < history[0]["loss"]
    assert logs[0] == "ssl: 4 rotations, 28x28 input" and logs[-1].startswith("ssl: memory of 90")
    scores = det.score(test_x)
    y = pattern_splits["test"].y
    for name in ("fused", "transform", "rotation", "features", "rotated_features", "pixels"):
        assert roc_auc_score(y, scores[name].numpy()) > 0.9, name
    # rotation: the rotation head's part of transform (shift heads, where there are any, add their own)
    with torch.no_grad():
        logits = [det.heads[0](det.net(torch.rot90(det.square(test_x), r, dims=(-2, -1)))) for r in range(4)]
    want = -sum(torch.log_softmax(lg, 1)[:, r] for r, lg in enumerate(logits)) / 4
    torch.testing.assert_close(scores["rotation"], want, rtol=1e-4, atol=1e-4)
    assert len(det.heads) == 1  # no shift heads here: transform is the rotation head's score
    torch.testing.assert_close(scores["transform"], scores["rotation"])
    # rotated_features: the features view under every quarter turn, each against the training images under
    # the same turn, summed
    train_x = Preprocessor().transform(pattern_splits["train"].x)
    with torch.no_grad():
        def turned(x, r):
            return torch.nn.functional.normalize(det.net(torch.rot90(det.square(x), r, dims=(-2, -1))), dim=1)
        want = sum(torch.cdist(turned(test_x, r), turned(train_x, r)).min(1).values for r in range(4))
    torch.testing.assert_close(scores["rotated_features"], want, rtol=1e-4, atol=1e-4)
    # fused = the sum of the fuse components, each standardised on the validation normals
    val_x = Preprocessor().transform(pattern_splits["val"].x)
    val = det.score(val_x)
    for name in ("transform", "pixels"):
        z = (val[name] - val[name].mean()) / val[name].std()
        assert abs(float(z.mean())) < 1e-4 and abs(float(z.std()) - 1) < 1e-4
    want = sum((scores[n] - val[n].mean()) / val[n].std() for n in ("transform", "pixels"))
    torch.testing.assert_close(scores["fused"], want, rtol=1e-4, atol=1e-4)
    # the memory banks and statistics travel with the weights
    save_detector(det, tmp_path / "s.pt")
    again, _ = load_detector(tmp_path / "s.pt")
    assert len(again.pixel_memory) == 90
    for name, value in again.score(test_x).items():
        torch.testing.assert_close(value, scores[name])


def test_ssl_test_flip_views_an_image_and_its_mirror_alike(tiny_params, pattern_splits):
    import dataclasses

    det, _, _, test_x = _fit("ssl", tiny_params(models={"ssl": {"test_flip": True}}), pattern_splits)
    mirrored = test_x.flip(-1)
    a, b = det.score(test_x), det.score(mirrored)
    for name in ("transform", "rotation", "features", "rotated_features"):  # mirror and image averaged
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)
    assert roc_auc_score(pattern_splits["test"].y, a["fused"].numpy()) > 0.9
    # the same network without test_flip: the transform view of each pass differs, and test_flip is their mean
    flip_config = det.config
    det.config = dataclasses.replace(flip_config, test_flip=False)
    with torch.no_grad():
        nll = [det._views(v.float())["transform"] for v in (test_x, mirrored)]
    assert float((nll[0] - nll[1]).abs().max()) > 1e-4
    torch.testing.assert_close(a["transform"], 0.5 * (nll[0] + nll[1]), rtol=1e-4, atol=1e-5)


def test_ssl_cosine_schedule_and_training_on_mirror_images(tiny_params, pattern_splits):
    import math

    config = tiny_params(models={"ssl": {"schedule": "cosine", "train_flip": True, "epochs": 3,
                                         "batch_size": 32}}).models["ssl"]
    det = build_detector("ssl", config, (1, 28, 28))
    prep = Preprocessor()
    train_x = prep.transform(pattern_splits["train"].x)
    seen, lrs = [], []
    task, step = det.task, det.training_step

    def spy_task(batch, random_shift):
        seen.append((det.training, batch.clone()))
        return task(batch, random_shift)

    def spy_step(batch, phase):
        lrs.append(phase.optimizers[0].param_groups[0]["lr"])
        return step(batch, phase)

    det.task, det.training_step = spy_task, spy_step
    det.fit(FitData(train_x, prep.transform(pattern_splits["val"].x)),
            FitContext(torch.device("cpu"), seed_everything(0), log=lambda _: None))
    steps = 3 * math.ceil(len(train_x) / 32)
    assert len(lrs) == steps
    want = [config.lr * 0.5 * (1 + math.cos(math.pi * i / steps)) for i in range(steps)]
    assert lrs == pytest.approx(want, rel=1e-9)
    # each training image is seen as itself or mirrored, a random half mirrored; validation images never
    flat, mirrored = train_x.flatten(1), train_x.flip(-1).flatten(1)
    n_mirrored = n_rows = 0
    for training, batch in seen:
        rows = batch.flatten(1)
        as_is = (rows[:, None] == flat[None]).all(2).any(1)
        as_mirror = (rows[:, None] == mirrored[None]).all(2).any(1)
        if training:
            assert bool((as_is | as_mirror).all())
            n_mirrored += int((as_mirror & ~as_is).sum())
            n_rows += len(rows)
        else:
            assert not bool((as_mirror & ~as_is).any())
    assert 0.3 < n_mirrored / n_rows < 0.7


def test_ssl_needs_validation_normals(tiny_params, pattern_splits):
    from oddpix.errors import OddpixError

    det = build_detector("ssl", tiny_params().models["ssl"], (1, 28, 28))
    x = Preprocessor().transform(pattern_splits["train"].x)
    with pytest.raises(OddpixError, match="set data.val_fraction > 0"):
        det.fit(FitData(x, None), FitContext(torch.device("cpu"), seed_everything(0)))

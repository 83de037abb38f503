import math

import torch

from oddpix.models.gaussian import ledoit_wolf
from oddpix.models.synthetic_anomalies import cut_paste


def test_cut_paste_moves_a_piece_of_the_image_itself_and_scars_are_thin():
    gen = torch.Generator().manual_seed(0)
    x = 2.0 + torch.rand(300, 1, 64, 64, generator=gen)  # data in [2, 3]
    kinds = torch.arange(300) % 3
    out, mask = cut_paste(x, kinds, 2.0, 3.0, gen, jitter=0.0)
    assert torch.equal(out[kinds == 0], x[kinds == 0]) and not mask[kinds == 0].any()
    assert torch.equal((out != x).any(1).float(), mask)  # only the masked pixels moved
    assert out.min() >= 2.0 and out.max() <= 3.0
    area = mask.flatten(1).mean(1)
    patch, scar = area[kinds == 1], area[kinds == 2]
    assert 0.015 < patch.median() < 0.15 and patch.max() <= 0.16  # a rectangle of 2-15 % of the image
    assert scar.median() < 0.01 and (scar > 0).float().mean() > 0.95  # a thin scar, nearly always present
    for i in torch.nonzero(kinds == 1).flatten()[:20]:  # a pasted rectangle is a shifted window of the image
        ys, xs = torch.nonzero(mask[i], as_tuple=True)
        h, w = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        assert len(ys) == h * w  # axis-aligned rectangle
        piece = out[i, 0, ys.min():ys.min() + h, xs.min():xs.min() + w]
        windows = x[i, 0].unfold(0, h, 1).unfold(1, w, 1)  # every h x w window of the original
        assert ((windows - piece).abs().amax((-2, -1)) < 1e-6).any()
    again, _ = cut_paste(x, kinds, 2.0, 3.0, torch.Generator().manual_seed(0), jitter=0.0)
    first, _ = cut_paste(x, kinds, 2.0, 3.0, torch.Generator().manual_seed(0), jitter=0.0)
    assert torch.equal(again, first)


def test_ledoit_wolf_matches_scikit_learn():
    from sklearn.covariance import LedoitWolf

    x = torch.randn(40, 12, generator=torch.Generator().manual_seed(1)) @ torch.randn(12, 12)
    mean, cov = ledoit_wolf(x)
    ref = LedoitWolf().fit(x.double().numpy())
    assert torch.allclose(cov, torch.from_numpy(ref.covariance_), atol=1e-10)
    assert torch.allclose(mean, torch.from_numpy(ref.location_), atol=1e-12)
    assert math.isfinite(float(cov.det()))


def test_cutpaste_learns_to_find_and_locate_small_defects(tmp_path, tiny_params):
    from conftest import run_pipeline
    from oddpix.data.synthetic import write_defect_folder

    root = write_defect_folder(tmp_path / "textures", n=200, size=32, defect_share=0.3, seed=1)
    data = {"dataset": "folder", "protocol": "folder", "normal_classes": ["good"],
            "folder": {"root": str(root), "image_size": 32, "channels": 3, "test_fraction": 0.3}}
    # score.batch_size: scoring pads every call to a full batch; 64 fits these 70 images
    params = tiny_params(model="cutpaste", data=data, score={"batch_size": 64}, models={"cutpaste": {
        "channels": [16, 32, 64], "head": 32, "epochs": 8, "epoch_images": 512, "flip": True}})
    metrics = run_pipeline(params, tmp_path / "run")
    assert metrics["component"] == "patch_max" and metrics["auroc"] > 0.85 and metrics["pixel_auroc"] > 0.9
    assert metrics["auroc_gde"] > 0.7  # the pooled features' Gaussian sees them too, less sharply
    assert (tmp_path / "run" / "plots" / "images" / "anomaly_maps.png").exists()

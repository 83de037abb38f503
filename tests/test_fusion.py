"""The fusion detector: its members train as they would alone, their scores are z-scored on the validation
normals and combined as documented, and it finds local defects end to end through the pipeline."""

import torch
from sklearn.metrics import roc_auc_score

from conftest import TINY_MODELS
from oddpix.models import FitData, build_detector
from oddpix.preprocess import Preprocessor
from oddpix.runtime import seed_everything
from oddpix.training import FitContext

# ae draws its initial weights first, cae after it, patch_knn a random subset of training images last: each
# must get the draws it would get alone
MEMBERS = {"ae": TINY_MODELS["ae"], "cae": TINY_MODELS["cae"], "patch_knn": {"gallery": 5, "max_images": 60}}


def _fit(name, config, x, seed=3):
    generator = seed_everything(seed)
    det = build_detector(name, config, tuple(x["train"].shape[1:]))
    det.fit(FitData(x["train"], x["val"]), FitContext(torch.device("cpu"), generator, log=lambda _m: None,
                                                      progress=False))
    return det


def test_members_score_as_alone_and_fuse_by_validation_z_scores(tiny_params, pattern_splits):
    params = tiny_params(models={**TINY_MODELS, "fusion": {"members": MEMBERS, "components": {"cae": "local_topk"},
                                                           "local": {"sigma": 1.0, "topk": 4}}})
    prep = Preprocessor()
    x = {k: prep.transform(v.x) for k, v in pattern_splits.items()}
    fusion = _fit("fusion", params.models["fusion"], x)
    alone = {name: _fit(name, fusion.members[name].config, x) for name in MEMBERS}

    for name, det in alone.items():  # same weights and memory as a run of the member alone with the seed
        for key, value in det.state_dict().items():
            assert torch.equal(value, fusion.members[name].state_dict()[key]), f"{name}: {key}"

    from oddpix.maps import LocalConfig, read_local, smooth_maps
    local = LocalConfig(sigma=1.0, topk=4)

    def member_scores(t):
        ae_out, ae_map = alone["ae"].score_and_map(t)
        cae_out, cae_map = alone["cae"].score_and_map(t)
        knn_out, knn_map = alone["patch_knn"].score_and_map(t)
        return torch.stack([ae_out["reconstruction"], read_local(smooth_maps(cae_map, local), local)["local_topk"],
                            knn_out["patch_max"]]), torch.stack([ae_map, cae_map, knn_map])

    val_scores, val_maps = member_scores(x["val"])
    mean, std = val_scores.mean(1, keepdim=True), val_scores.std(1, keepdim=True)
    test_scores, test_maps = member_scores(x["test"])
    z = (test_scores - mean) / std
    out, fused_map = fusion.score_and_map(x["test"])
    torch.testing.assert_close(out["fused_mean"], z.mean(0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out["fused_max"], z.amax(0), rtol=1e-4, atol=1e-4)
    pixel_mean = val_maps.flatten(1).mean(1).view(3, 1, 1, 1)
    pixel_std = val_maps.flatten(1).std(1, unbiased=False).view(3, 1, 1, 1)
    torch.testing.assert_close(fused_map, ((test_maps - pixel_mean) / pixel_std).mean(0), rtol=1e-3, atol=1e-3)
    y = pattern_splits["test"].y
    assert roc_auc_score(y, out["fused_mean"].numpy()) > 0.9


def test_fusion_finds_and_locates_local_defects_end_to_end(tmp_path, tiny_params):
    from oddpix import pipeline
    from oddpix.data.synthetic import write_defect_folder

    root = write_defect_folder(tmp_path / "textures", n=200, size=32, defect_share=0.3, seed=1)
    data = {"dataset": "folder", "protocol": "folder", "normal_classes": ["good"],
            "folder": {"root": str(root), "image_size": 32, "channels": 3, "test_fraction": 0.3}}
    members = {"patch_knn": {"gallery": 5}, "cae": {**TINY_MODELS["cae"], "epochs": 5}}
    params = tiny_params(model="fusion", data=data, models={**TINY_MODELS, "fusion": {"members": members}})
    metrics = pipeline.run(params, tmp_path / "run")
    assert metrics["component"] == "fused_mean" and metrics["auroc"] > 0.9 and metrics["auroc_fused_max"] > 0.9
    assert metrics["pixel_auroc"] > 0.85
    assert {"auroc_local_max", "auroc_local_topk"} <= set(metrics)

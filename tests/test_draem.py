import torch

from oddpix.models.synthetic_anomalies import SOURCES, augment, max_exponent, paste, perlin, perlin_masks


def test_pasted_anomalies_change_only_their_masks_and_stay_in_the_data_range():
    gen = torch.Generator().manual_seed(0)
    x = 2.0 + torch.rand(400, 3, 32, 32)  # data in [2, 3]: the anomalies must land in that range too
    out, mask = paste(x, 2.0 + torch.rand(50, 3, 32, 32), 2.0, 3.0, SOURCES, 0.5, 0.5, 0.1, gen)
    assert out.shape == x.shape and mask.shape == (400, 32, 32)
    changed = (out - x).abs().amax(1) > 1e-6
    assert torch.equal(changed, mask.bool())  # nothing outside the mask moved
    assert out.min() >= 2.0 - 1e-5 and out.max() <= 3.0 + 1e-5
    tampered = mask.flatten(1).any(1).float().mean()
    assert 0.3 < tampered < 0.55  # about the share asked for (a Perlin draw can stay under the threshold)
    again, _ = paste(x, 2.0 + torch.rand(50, 3, 32, 32, generator=torch.Generator().manual_seed(9)), 2.0, 3.0,
                     SOURCES, 0.5, 0.5, 0.1, torch.Generator().manual_seed(0))
    assert not torch.equal(again, out)  # a different pool gives different content


def test_perlin_masks_are_smooth_blobs_of_varied_size_and_seeded():
    gen = torch.Generator().manual_seed(1)
    noise = perlin(4, 64, 64, 4, 4, gen, "cpu")
    assert noise.abs().max() <= 1.5 and noise.std() > 0.1
    assert (noise[:, 1:] - noise[:, :-1]).abs().max() < 0.3  # smooth: neighbours differ little
    masks = perlin_masks(300, 64, 64, 0.5, gen, "cpu").float().flatten(1).mean(1)
    assert 0.02 < masks.mean() < 0.2 and masks.max() > 0.15 and (masks[masks > 0].min() < 0.01)
    assert max_exponent(64, 64) == 4 and max_exponent(256, 256) == 5 and max_exponent(8, 8) == 1
    again = perlin_masks(300, 64, 64, 0.5, torch.Generator().manual_seed(1), "cpu")
    first = perlin_masks(300, 64, 64, 0.5, torch.Generator().manual_seed(1), "cpu")
    assert torch.equal(again, first)


def test_augmentations_keep_images_in_unit_range_and_change_them():
    u = torch.rand(64, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    v = augment(u, torch.Generator().manual_seed(3))
    assert v.shape == u.shape and v.min() >= 0 and v.max() <= 1
    assert (v - u).abs().flatten(1).mean(1).gt(0.01).float().mean() > 0.8


def test_draem_learns_to_find_and_locate_small_defects(tmp_path, tiny_params):
    from conftest import run_pipeline
    from oddpix.data.synthetic import write_defect_folder

    root = write_defect_folder(tmp_path / "textures", n=200, size=32, defect_share=0.3, seed=1)
    data = {"dataset": "folder", "protocol": "folder", "normal_classes": ["good"],
            "folder": {"root": str(root), "image_size": 32, "channels": 3, "test_fraction": 0.3}}
    # score.batch_size: scoring pads every call to a full batch; 64 fits these 70 images
    params = tiny_params(model="draem", data=data, score={"batch_size": 64}, models={"draem": {
        "recon_channels": [8, 16], "seg_channels": [8, 16], "epochs": 6, "epoch_images": 512, "flip": True}})
    metrics = run_pipeline(params, tmp_path / "run")
    assert metrics["component"] == "mean_max" and metrics["auroc"] > 0.85
    assert metrics["pixel_auroc"] > 0.85
    assert metrics["auroc_memory_max"] > 0.8  # the memory of the network's own patch features finds them too
    assert (tmp_path / "run" / "plots" / "images" / "reconstructions.png").exists()


def test_draem_trains_on_crops_and_scores_whole_images():
    from oddpix.errors import OddpixError
    from oddpix.models.base import FitData
    from oddpix.models.draem import Draem, DraemConfig
    from oddpix.training import FitContext

    det = Draem(DraemConfig(recon_channels=[4], seg_channels=[4], crop=16, epochs=1, epoch_images=8), (1, 40, 48))
    crops = det._crop(torch.arange(2 * 40 * 48.0).view(2, 1, 40, 48), torch.Generator().manual_seed(0))
    assert crops.shape == (2, 1, 16, 16)
    for img, crop in zip(torch.arange(2 * 40 * 48.0).view(2, 1, 40, 48), crops):  # a window of its own image
        r, c = divmod(int(crop[0, 0, 0]) - int(img[0, 0, 0]), 48)
        assert torch.equal(crop, img[:, r:r + 16, c:c + 16])
    ctx = FitContext(torch.device("cpu"), torch.Generator().manual_seed(0), log=lambda _m: None, progress=False)
    history = det.fit(FitData(torch.rand(20, 1, 40, 48), torch.rand(6, 1, 40, 48)), ctx)
    assert len(history) == 1 and det._val is None
    scores, maps = det.score_and_map(torch.rand(3, 1, 40, 48))
    assert maps.shape == (3, 40, 48) and scores["mean_max"].shape == (3,)
    try:
        Draem(DraemConfig(crop=64), (1, 40, 48))
    except OddpixError as exc:
        assert "models.draem.crop: 64" in str(exc)
    else:
        raise AssertionError("a crop larger than the image was accepted")


def test_draem_remembers_training_patch_features_and_maps_their_distances():
    from oddpix.models.base import FitData
    from oddpix.models.draem import Draem, DraemConfig
    from oddpix.training import FitContext

    cfg = DraemConfig(recon_channels=[4, 8], seg_channels=[4, 8], epochs=1, epoch_images=8, memory=50, map="memory")
    det = Draem(cfg, (1, 16, 16))
    x = torch.rand(30, 1, 16, 16)
    det.fit(FitData(x, torch.rand(4, 1, 16, 16)),
            FitContext(torch.device("cpu"), torch.Generator().manual_seed(0), log=lambda _m: None, progress=False))
    assert det.patch_memory.shape == (50, 8) and det.level == 1
    every = det._features(x).permute(0, 2, 3, 1).flatten(0, 2)
    gap = (det.patch_memory[:, None] - every[None]).abs().amax(-1).amin(1)
    assert gap.max() < 1e-5  # each one is a training patch's feature
    scores, maps = det.score_and_map(x[:3])
    assert maps.shape == (3, 16, 16) and scores["memory_max"].shape == (3,)
    far = det.score(x[:3] + 5.0)["memory_max"]
    assert (far > scores["memory_max"]).all()  # far from the training images, far from the memory

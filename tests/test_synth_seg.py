import torch

from oddpix.models.synth_seg import SynthSegConfig, blob_masks, curve_masks, synthesize


def test_synthetic_anomalies_change_exactly_the_pixels_their_masks_claim():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(400, 3, 28, 28)
    out, mask = synthesize(x, torch.rand(50, 3, 28, 28), 1.0, SynthSegConfig(anomaly_share=0.5), gen)
    assert out.shape == x.shape and mask.shape == (400, 28, 28)
    changed = (out - x).abs().amax(1) > 0
    assert torch.equal(changed, mask.bool())  # nothing outside the mask moved, everything inside did
    tampered = mask.flatten(1).any(1).float().mean()
    assert 0.35 < tampered < 0.55  # about anomaly_share of the images (a walk may leave the image)
    assert mask.flatten(1).mean(1).max() < 0.1  # small regions (blobs at most max_area, 5 %; curves thin)


def test_blobs_cover_the_asked_share_and_curves_are_thin():
    gen = torch.Generator().manual_seed(1)
    area = blob_masks(200, 32, 32, 0.05, gen, "cpu").float().flatten(1).mean(1)
    assert area.min() >= 0.005 - 1 / 1024 and area.max() <= 0.05 + 1 / 1024  # within a pixel
    curves = curve_masks(200, 32, 32, gen, "cpu").float()
    assert curves.flatten(1).mean(1).max() < 0.15 and curves.flatten(1).sum(1).gt(0).float().mean() > 0.8
    again = blob_masks(200, 32, 32, 0.05, torch.Generator().manual_seed(1), "cpu").float().flatten(1).mean(1)
    assert torch.equal(area, again)  # seeded: the same draw again


def test_synth_seg_learns_to_find_and_locate_small_defects(tmp_path, tiny_params):
    from oddpix import pipeline
    from oddpix.data.synthetic import write_defect_folder

    root = write_defect_folder(tmp_path / "textures", n=200, size=32, defect_share=0.3, seed=1)
    data = {"dataset": "folder", "protocol": "folder", "normal_classes": ["good"],
            "folder": {"root": str(root), "image_size": 32, "channels": 3, "test_fraction": 0.3}}
    params = tiny_params(model="synth_seg", data=data, models={"synth_seg": {"channels": [8, 16], "epochs": 6,
                                                                            "epoch_images": 512, "batch_size": 16, "flip": True}})
    metrics = pipeline.run(params, tmp_path / "run")
    assert metrics["component"] == "seg_max" and metrics["auroc"] > 0.85
    assert metrics["pixel_auroc"] > 0.85
    assert {"auroc_local_max", "auroc_local_topk"} <= set(metrics)


def test_synth_seg_fits_photos_with_more_pixels_than_quantile_takes():
    from oddpix.models.base import FitData
    from oddpix.models.synth_seg import SyntheticSegmentation
    from oddpix.training import FitContext

    x = torch.rand(100, 3, 256, 256)  # 19.7 million values: torch.quantile refuses more than 2**24
    det = SyntheticSegmentation(SynthSegConfig(channels=[4], epochs=1, epoch_images=4, batch_size=4), (3, 256, 256))
    history = det.fit(FitData(x), FitContext(torch.device("cpu"), torch.Generator().manual_seed(0), log=lambda _m: None,
                                             progress=False))
    assert len(history) == 1 and 0.9 < det._span <= 1.0  # the 1 %-99 % range of uniform pixels

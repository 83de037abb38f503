import numpy as np
import pytest
import torch

from oddpix.preprocess import Preprocessor


def test_unit_scaling_and_layout():
    x = np.zeros((2, 4, 5, 1), np.uint8)
    x[0, 1, 2, 0] = 255
    t = Preprocessor().transform(x)
    assert t.shape == (2, 1, 4, 5) and t.dtype == torch.float32
    assert t[0, 0, 1, 2] == 1.0 and t.sum() == 1.0


def test_resize_and_channels():
    x = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    t = Preprocessor(image_size=14, channels=3).transform(x)
    assert t.shape == (3, 3, 14, 14)
    assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0
    rgb = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    gray = Preprocessor(channels=1).transform(rgb)
    torch.testing.assert_close(gray[:, 0], torch.from_numpy(rgb / 255.0).float().mean(-1))


def test_standardize_uses_training_statistics_only():
    train = np.full((4, 2, 2, 1), 100, np.uint8)
    train[:2] = 50
    prep = Preprocessor(normalize="standardize").fit(train)
    assert prep.mean == pytest.approx([75 / 255])
    out = prep.transform(train)
    assert float(out.mean()) == pytest.approx(0.0, abs=1e-6)
    restored = Preprocessor.from_dict(prep.to_dict())
    torch.testing.assert_close(restored.inverse(restored.transform(train)), torch.from_numpy(train / 255.0)
                               .permute(0, 3, 1, 2).float())


def test_local_contrast_takes_the_lighting_out_and_keeps_a_pit():
    """normalize: local: one texture under two lightings (gain and a gradient) comes out nearly equal; a dark
    pit added to one stays the most extreme pixel."""
    from oddpix.preprocess import Preprocessor

    rng = np.random.default_rng(0)
    texture = rng.random((1, 48, 48, 1)) * 0.2 + 0.4
    ramp = np.linspace(0.6, 1.4, 48)[None, None, :, None]
    pit = texture * ramp * 0.7
    pit[0, 20:23, 30:33] = 0.02
    images = np.concatenate([texture, texture * ramp * 0.7, pit]) * 255
    pre = Preprocessor(normalize="local", local_sigma=4.0).fit(images.astype(np.uint8))
    out = pre.transform(images.astype(np.uint8))
    plain = Preprocessor().transform(images.astype(np.uint8))
    assert (plain[0] - plain[1]).abs().mean() > plain[0].std()  # the lighting dominates the raw pixels
    assert (out[0] - out[1]).abs().mean() < 0.2 * out[0].abs().mean()  # and is gone after
    assert np.unravel_index(int(out[2, 0].argmin()), (48, 48)) in {(r, c) for r in range(20, 23) for c in range(30, 33)}

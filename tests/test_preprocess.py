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

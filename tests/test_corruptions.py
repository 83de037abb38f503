import numpy as np
import pytest

from oddpix.data import corruptions as C


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 200, (16, 28, 28, 1), dtype=np.uint8)
    other = rng.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8)
    return x, other


def keeps_type(out, x):
    assert out.dtype == np.uint8 and out.shape == x.shape
    assert out is not x


def test_invert(batch):
    x, _ = batch
    out = C.invert(x)
    keeps_type(out, x)
    np.testing.assert_array_equal(out.astype(int), 255 - x.astype(int))


def test_noise_changes_most_pixels_by_about_the_std(batch):
    x, _ = batch
    out = C.noise(x, np.random.default_rng(1), noise_std=0.1)
    keeps_type(out, x)
    diff = out.astype(float) - x
    assert (diff != 0).mean() > 0.9
    assert 0.08 * 255 < diff.std() < 0.12 * 255  # few pixels clip at this level
    assert out.min() >= 0 and out.max() <= 255


def test_interpolate_lies_between_the_two_images(batch):
    x, other = batch
    out = C.interpolate(x, np.random.default_rng(2), other, interpolate_alpha=(0.5, 0.5))
    keeps_type(out, x)
    np.testing.assert_allclose(out, np.rint((x.astype(float) + other) / 2), atol=1)
    lo, hi = np.minimum(x, other).astype(int), np.maximum(x, other).astype(int)
    assert ((out >= lo - 1) & (out <= hi + 1)).all()


def test_overlap_is_the_maximum_with_the_shifted_other(batch):
    x, other = batch
    same = C.overlap(x, np.random.default_rng(3), other, overlap_max_shift=0.0)
    np.testing.assert_array_equal(same, np.maximum(x, other))
    out = C.overlap(x, np.random.default_rng(3), other, overlap_max_shift=0.25)
    keeps_type(out, x)
    assert (out >= x).all()  # only brightens
    # every changed pixel value comes from the other image
    changed = out != x
    assert changed.any() and np.isin(out[changed], other).all()


def test_underscore_draws_a_centred_bar_near_the_bottom(batch):
    x, _ = batch
    x = x // 2  # no pixel is 255 yet
    out = C.underscore(x, np.random.default_rng(4), underscore_thickness=2, underscore_length=(0.5, 0.5))
    keeps_type(out, x)
    changed = np.argwhere((out != x).any(axis=3))
    assert set(changed[:, 1]) == {24, 25}  # rows h - 2 - t .. h - 3
    assert (out[(out != x)] == 255).all()
    for i in range(len(x)):
        cols = np.flatnonzero((out[i, 24] == 255).ravel())
        assert len(cols) == 14 and cols[0] == 7 and np.all(np.diff(cols) == 1)  # 50 % of 28, centred


def test_dot_is_a_bright_disc(batch):
    x, _ = batch
    x = x // 2
    out = C.dot(x, np.random.default_rng(5), dot_radius=(3.0, 3.0))
    keeps_type(out, x)
    for i in range(len(x)):
        pts = np.argwhere(out[i, ..., 0] != x[i, ..., 0])
        assert 25 <= len(pts) <= 29  # pi * 3^2 ~ 28 lattice points
        centre = pts.mean(0)
        assert np.sqrt(((pts - centre) ** 2).sum(1)).max() <= 3.0 + 1e-9
        assert (out[i][out[i] != x[i]] == 255).all()


def test_dot_contrasts_with_what_it_covers():
    # a white dot on a white stroke, or a black one on black, would change no pixel: the dot takes the
    # other colour, so every disc pixel changes by more than half the range
    dark = np.full((8, 28, 28, 1), 20, dtype=np.uint8)
    bright = np.full((8, 28, 28, 1), 240, dtype=np.uint8)
    colour = np.zeros((8, 28, 28, 3), dtype=np.uint8)
    colour[..., 0] = 250  # red: the dot is black in red, white in green and blue
    for x, expect in ((dark, [255]), (bright, [0]), (colour, [0, 255, 255])):
        out = C.dot(x, np.random.default_rng(3), dot_radius=(2.0, 2.0))
        changed = (out != x).any(axis=3)
        assert (changed.sum(axis=(1, 2)) >= 12).all()  # the whole disc, in every image
        assert (np.abs(out.astype(int) - x)[changed] > 127).all(axis=-1).all()
        assert (out[changed] == expect).all()


def test_corrupt_draws_types_uniformly_and_is_reproducible(batch):
    x, other = batch
    x = np.repeat(x, 40, axis=0)
    other = np.repeat(other, 40, axis=0)
    a, types = C.corrupt(x, C.CORRUPTIONS, np.random.default_rng(6), other)
    b, types_b = C.corrupt(x, C.CORRUPTIONS, np.random.default_rng(6), other)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(types, types_b)
    counts = {t: (types == t).sum() for t in C.CORRUPTIONS}
    assert all(80 < c < 140 for c in counts.values())  # 640 images over 6 types
    inv = types == "invert"
    np.testing.assert_array_equal(a[inv], 255 - x[inv])
    with pytest.raises(ValueError, match="needs partner images"):
        C.corrupt(x[:5], ["overlap"], np.random.default_rng(0))
    with pytest.raises(ValueError, match="uint8 N x H x W x C"):
        C.invert(x.astype(np.float32))

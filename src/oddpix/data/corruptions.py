"""The six corruptions of the corrupted protocol (letters or digits with local or global damage), as pure
functions on uint8 image batches.

Every function takes ``x`` (uint8, N x H x W x C), returns a new uint8 array of the same shape (the input
is never modified) and draws its randomness from the ``rng`` it is given, so a seed fixes the result:

* ``invert``:      255 - x (the whole image);
* ``noise``:       x + Gaussian noise of std ``noise_std`` (in units of the pixel range), clipped;
* ``interpolate``: (1 - a) * x + a * other, with ``a`` drawn from ``interpolate_alpha``;
* ``overlap``:     the pixel-wise maximum of x and ``other`` shifted by up to ``overlap_max_shift`` of the size;
* ``underscore``:  a bright horizontal bar of ``underscore_thickness`` rows, ``underscore_length`` of the
                   width, centred, near the bottom edge;
* ``dot``:         a filled disc of radius ``dot_radius`` pixels at a random position, white on a dark spot
                   and black on a bright one (per channel, by the mean under the disc), so it always shows.

``other`` is a batch of partner images (e.g. other test images) for the two mixing corruptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from ..schema import items, not_a_choice, num

def _check(x: np.ndarray) -> None:
    if x.dtype != np.uint8 or x.ndim != 4:
        raise ValueError(f"corruptions take uint8 N x H x W x C images, got {x.dtype} {x.shape}")


def invert(x: np.ndarray, rng: np.random.Generator | None = None, **_) -> np.ndarray:
    _check(x)
    return 255 - x


def noise(x: np.ndarray, rng: np.random.Generator, noise_std: float = 0.3, **_) -> np.ndarray:
    _check(x)
    noisy = x.astype(np.float32) + rng.normal(0.0, noise_std * 255.0, x.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def interpolate(x: np.ndarray, rng: np.random.Generator, other: np.ndarray,
                interpolate_alpha: Sequence[float] = (0.3, 0.7), **_) -> np.ndarray:
    _check(x)
    a = rng.uniform(interpolate_alpha[0], interpolate_alpha[1], (len(x), 1, 1, 1)).astype(np.float32)
    mixed = (1 - a) * x.astype(np.float32) + a * other.astype(np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def overlap(x: np.ndarray, rng: np.random.Generator, other: np.ndarray, overlap_max_shift: float = 0.25,
            **_) -> np.ndarray:
    _check(x)
    n, h, w, _c = x.shape
    max_dy, max_dx = int(round(h * overlap_max_shift)), int(round(w * overlap_max_shift))
    dy = rng.integers(-max_dy, max_dy + 1, n)
    dx = rng.integers(-max_dx, max_dx + 1, n)
    # shifted[i, r, c] = other[i, r - dy, c - dx] where inside the image, else 0 (one gather, no loop)
    rows = np.arange(h)[None, :] - dy[:, None]
    cols = np.arange(w)[None, :] - dx[:, None]
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    shifted = other[np.arange(n)[:, None, None], np.clip(rows, 0, h - 1)[:, :, None], np.clip(cols, 0, w - 1)[:, None, :]]
    shifted = np.where(valid[..., None], shifted, 0).astype(np.uint8)
    return np.maximum(x, shifted)


def underscore(x: np.ndarray, rng: np.random.Generator, underscore_thickness: int = 2,
               underscore_length: Sequence[float] = (0.4, 0.8), **_) -> np.ndarray:
    _check(x)
    out = x.copy()
    n, h, w, _c = x.shape
    length = np.rint(rng.uniform(underscore_length[0], underscore_length[1], n) * w).astype(int)
    start = (w - length) // 2
    top = h - 2 - underscore_thickness  # two rows above the bottom edge
    cols = np.arange(w)[None, :]
    in_bar = (cols >= start[:, None]) & (cols < (start + length)[:, None])  # N x W
    out[:, top:top + underscore_thickness][np.broadcast_to(in_bar[:, None, :], (n, underscore_thickness, w))] = 255
    return out


def dot(x: np.ndarray, rng: np.random.Generator, dot_radius: Sequence[float] = (1.5, 3.0), **_) -> np.ndarray:
    _check(x)
    out = x.copy()
    n, h, w, _c = x.shape
    radius = rng.uniform(dot_radius[0], dot_radius[1], n)
    margin = np.ceil(radius).astype(int)
    cy = rng.integers(margin, h - margin)
    cx = rng.integers(margin, w - margin)
    yy, xx = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    disc = (yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2 <= (radius ** 2)[:, None, None]
    # the colour that contrasts with what it covers: a white dot on a white stroke would change nothing
    under = (x * disc[..., None]).sum(axis=(1, 2)) / disc.sum(axis=(1, 2))[:, None]  # N x C mean under the disc
    colour = np.where(under > 127.5, 0, 255).astype(np.uint8)
    out[disc] = np.repeat(colour, disc.sum(axis=(1, 2)), axis=0)
    return out


CORRUPTIONS: dict[str, Callable[..., np.ndarray]] = {
    "invert": invert, "noise": noise, "interpolate": interpolate, "overlap": overlap,
    "underscore": underscore, "dot": dot,
}


@dataclass(frozen=True)
class CorruptionConfig:
    """The corrupted-letters set-up: a share of the test images gets one of ``types``."""

    fraction: float = num(0.1, gt=0.0, lt=1.0)
    types: list[str] = items(list(CORRUPTIONS))
    noise_std: float = num(0.3, gt=0.0, le=2.0)
    interpolate_alpha: list[float] = items([0.3, 0.7], ge=0.0)
    overlap_max_shift: float = num(0.25, ge=0.0, lt=1.0)
    underscore_thickness: int = num(2, ge=1, le=8)
    underscore_length: list[float] = items([0.4, 0.8], gt=0.0)
    dot_radius: list[float] = items([1.5, 3.0], gt=0.0)

    def problems(self) -> list[tuple[str, str]]:
        for t in self.types:
            if t not in CORRUPTIONS:
                return [("types", not_a_choice(t, CORRUPTIONS, "a corruption"))]
        if not self.types:
            return [("types", f"needs at least one of {', '.join(CORRUPTIONS)}")]
        for key in ("interpolate_alpha", "underscore_length", "dot_radius"):
            pair = getattr(self, key)
            if len(pair) != 2 or pair[0] > pair[1]:
                return [(key, f"expected [low, high] with low <= high, got {pair}")]
        if self.interpolate_alpha[1] > 1 or self.underscore_length[1] > 1:
            bad = "interpolate_alpha" if self.interpolate_alpha[1] > 1 else "underscore_length"
            return [(bad, "values are fractions and must be <= 1")]
        return []


def corrupt(x: np.ndarray, types: Sequence[str], rng: np.random.Generator, other: Optional[np.ndarray] = None,
            **knobs) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt every image of ``x`` with a type drawn uniformly from ``types``.

    Returns (corrupted images, the type name of each). ``other`` supplies partner images for
    ``interpolate`` and ``overlap`` (same length as ``x``).
    """
    _check(x)
    chosen = np.asarray(list(types))[rng.integers(0, len(types), len(x))]
    out = x.copy()
    for name in types:
        idx = np.flatnonzero(chosen == name)
        if len(idx) == 0:
            continue
        extra = {}
        if name in ("interpolate", "overlap"):
            if other is None:
                raise ValueError(f"corruption {name!r} needs partner images")
            extra = {"other": other[idx]}
        out[idx] = CORRUPTIONS[name](x[idx], rng, **extra, **knobs)
    return out, chosen.astype("U16")

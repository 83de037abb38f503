"""Synthetic anomalies as DRAEM draws them (Zavrtanik et al. 2021): where (Perlin-noise masks) and what
(augmented normal images, random colours, generated textures), pasted into normal images with a random
opacity, all in the data's own range.

Everything works on whole batches of tensors with a seeded generator (no per-image Python loops): a mask
is 2-D Perlin noise at a random lattice resolution per axis (2^0 .. 2^``max_exp``), thresholded; an
anomaly source is an image in [0, 1] that :func:`to_range` maps into the data's range (the 1 %-99 %
quantiles of the training pixels), so a synthetic anomaly is never brighter or darker than the data can
be, whatever ``preprocess.normalize`` did (the pitfall of ports that normalise the image and not the
anomaly).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F

SOURCES = ("images", "colours", "textures")  # where a pasted anomaly's content comes from
AUGMENTERS = 9                                 # the augmentations of :func:`augment`, three drawn per image


def _fade(t: torch.Tensor) -> torch.Tensor:
    return t * t * t * (t * (t * 6 - 15) + 10)


def perlin(n: int, h: int, w: int, res_y: int, res_x: int, g: torch.Generator, device) -> torch.Tensor:
    """n x h x w gradient noise (Perlin) on a (res_y + 1) x (res_x + 1) lattice of random unit gradients,
    values in about [-1, 1]."""
    angle = torch.rand(n, res_y + 1, res_x + 1, generator=g, device=device) * (2 * math.pi)
    gy, gx = torch.sin(angle), torch.cos(angle)
    ys = (torch.arange(h, device=device) + 0.5) * (res_y / h)
    xs = (torch.arange(w, device=device) + 0.5) * (res_x / w)
    iy, ix = ys.floor().long(), xs.floor().long()
    fy, fx = ys - iy, xs - ix

    def corner(oy: int, ox: int) -> torch.Tensor:
        cy, cx = gy[:, iy + oy][:, :, ix + ox], gx[:, iy + oy][:, :, ix + ox]
        return cy * (fy - oy)[None, :, None] + cx * (fx - ox)[None, None, :]

    u, v = _fade(fy)[None, :, None], _fade(fx)[None, None, :]
    top = torch.lerp(corner(0, 0), corner(0, 1), v)
    bottom = torch.lerp(corner(1, 0), corner(1, 1), v)
    return torch.lerp(top, bottom, u) * math.sqrt(2)


def max_exponent(h: int, w: int) -> int:
    """The finest lattice, 2^max_exp cells per side, keeps a cell at least 4 px wide (DRAEM: 2^5 at 256 px)."""
    return max(0, min(5, int(math.log2(max(1, min(h, w) // 4)))))


def perlin_masks(n: int, h: int, w: int, threshold: float, g: torch.Generator, device) -> torch.Tensor:
    """n x h x w boolean masks: Perlin noise thresholded, its lattice 2^a x 2^b with a, b drawn in
    [0, :func:`max_exponent`] per image (one pass per resolution drawn, not per image)."""
    top = max_exponent(h, w)
    ey = torch.randint(0, top + 1, (n,), generator=g, device=device)
    ex = torch.randint(0, top + 1, (n,), generator=g, device=device)
    noise = torch.zeros(n, h, w, device=device)
    for a in range(top + 1):
        for b in range(top + 1):
            pick = torch.nonzero((ey == a) & (ex == b)).flatten()
            if len(pick):
                noise[pick] = perlin(len(pick), h, w, 2 ** a, 2 ** b, g, device)
    return noise > threshold


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device) -> torch.Tensor:
    return (lo + (hi - lo) * torch.rand(n, generator=g, device=device)).view(n, 1, 1, 1)


def _rotate(u: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    rad = degrees.flatten() * (math.pi / 180)
    cos, sin = torch.cos(rad), torch.sin(rad)
    zero = torch.zeros_like(rad)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(u.shape), align_corners=False)
    return F.grid_sample(u, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _equalize(u: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation per image and channel: each pixel becomes its rank's share."""
    flat = u.flatten(2)
    ranks = flat.argsort(2).argsort(2).float()
    return (ranks / max(1, flat.shape[2] - 1)).view_as(u)


def augment(u: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Three of DRAEM's nine augmentations drawn per image of a batch in [0, 1] (gamma, brightness and
    contrast, sharpening, solarising, posterising, inverting, autocontrast, equalising, rotating by up to
    45 degrees); each one is computed for the batch and kept where drawn."""
    n, dev = len(u), u.device
    for _ in range(3):
        which = torch.randint(0, AUGMENTERS, (n,), generator=g, device=dev).view(n, 1, 1, 1)
        blur = F.avg_pool2d(F.pad(u, (1, 1, 1, 1), mode="replicate"), 3, 1)
        lo, hi = u.amin((1, 2, 3), keepdim=True), u.amax((1, 2, 3), keepdim=True)
        levels = 2 ** torch.randint(1, 5, (n, 1, 1, 1), generator=g, device=dev).float()
        options = [
            u.clamp(0, 1) ** torch.exp(_uniform(n, math.log(0.5), math.log(2.0), g, dev)),
            u * _uniform(n, 0.8, 1.2, g, dev) + _uniform(n, -0.12, 0.12, g, dev),
            u + _uniform(n, 0.5, 2.0, g, dev) * (u - blur),
            torch.where(u > _uniform(n, 0.12, 0.5, g, dev), 1 - u, u),
            torch.floor(u.clamp(0, 1) * levels).clamp(max=levels - 1) / (levels - 1),
            1 - u,
            (u - lo) / (hi - lo).clamp(min=1e-6),
            _equalize(u),
            _rotate(u, _uniform(n, -45, 45, g, dev)),
        ]
        out = options[0]
        for k in range(1, AUGMENTERS):
            out = torch.where(which == k, options[k], out)
        u = out.clamp(0, 1)
    return u


def textures(n: int, c: int, h: int, w: int, g: torch.Generator, device) -> torch.Tensor:
    """n generated textures in [0, 1]: fractal Perlin noise (three octaves), stripes at a random angle and
    frequency, or a checkerboard, one kind per image, tinted per channel and with a random contrast."""
    kind = torch.randint(0, 3, (n, 1, 1, 1), generator=g, device=device)
    res = max(1, 2 ** max_exponent(h, w) // 4)
    fractal = sum(perlin(n, h, w, res * 2 ** o, res * 2 ** o, g, device) / 2 ** o for o in range(3))
    yy = torch.arange(h, device=device).view(1, h, 1).float() / h
    xx = torch.arange(w, device=device).view(1, 1, w).float() / w
    angle = torch.rand(n, 1, 1, generator=g, device=device) * math.pi
    freq = 2 + torch.rand(n, 1, 1, generator=g, device=device) * 14
    phase = torch.rand(n, 1, 1, generator=g, device=device) * 2 * math.pi
    stripes = torch.sin(2 * math.pi * freq * (xx * torch.cos(angle) + yy * torch.sin(angle)) + phase)
    checker = torch.sign(torch.sin(2 * math.pi * freq * xx + phase) * torch.sin(2 * math.pi * freq * yy))
    field = torch.where(kind == 0, fractal[:, None], torch.where(kind == 1, stripes[:, None], checker[:, None]))
    lo, hi = field.amin((2, 3), keepdim=True), field.amax((2, 3), keepdim=True)
    field = (field - lo) / (hi - lo).clamp(min=1e-6)
    contrast = _uniform(n, 0.3, 1.0, g, device)
    base = torch.rand(n, c, 1, 1, generator=g, device=device) * (1 - contrast)
    return (base + contrast * field).clamp(0, 1)


def colours(n: int, c: int, h: int, w: int, g: torch.Generator, device) -> torch.Tensor:
    """n flat random colours in [0, 1] with a little pixel noise."""
    flat = torch.rand(n, c, 1, 1, generator=g, device=device)
    return (flat + 0.03 * torch.randn(n, c, h, w, generator=g, device=device)).clamp(0, 1)


def pixel_range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1 % and 99 % quantiles of the pixels of (at most) the first 1,024 images, from at most 2**24 of
    their values (``torch.quantile``'s limit): the range synthetic anomalies are drawn in."""
    flat = x[:1024].flatten()
    flat = flat[:: math.ceil(len(flat) / 2 ** 24)]
    lo, hi = torch.quantile(flat, torch.tensor([0.01, 0.99], device=x.device))
    return lo, hi


def to_unit(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return ((x - lo) / (hi - lo)).clamp(0, 1)


def to_range(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return lo + u * (hi - lo)


def paste(x: torch.Tensor, pool: torch.Tensor, lo: float, hi: float, sources: tuple[str, ...], share: float,
          threshold: float, min_opacity: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of normal images -> (the batch with a synthetic anomaly in about ``share`` of it, N x H x W
    float masks of the pixels that changed). The anomaly fills a Perlin mask with content from one of
    ``sources`` per image (``images``: another image of ``pool``, augmented; ``colours``; ``textures``,
    augmented), blended in with an opacity drawn in [``min_opacity``, 1]."""
    n, c, h, w = x.shape
    dev = x.device
    mask = perlin_masks(n, h, w, threshold, g, dev)
    mask &= (torch.rand(n, generator=g, device=dev) < share).view(n, 1, 1)
    which = torch.randint(0, len(sources), (n, 1, 1, 1), generator=g, device=dev)
    content = torch.zeros_like(x)
    for k, source in enumerate(sources):
        if source == "images":
            u = augment(to_unit(pool[torch.randint(0, len(pool), (n,), generator=g, device=dev)], lo, hi), g)
        elif source == "textures":
            u = augment(textures(n, c, h, w, g, dev), g)
        else:
            u = colours(n, c, h, w, g, dev)
        content = torch.where(which == k, to_range(u, lo, hi), content)
    opacity = _uniform(n, min_opacity, 1.0, g, dev)
    m = mask[:, None].float()
    out = x + m * opacity * (content - x)
    changed = mask & ((out - x).abs().amax(1) > 1e-6)
    return out, changed.float()


def cut_paste(x: torch.Tensor, kinds: torch.Tensor, lo: float, hi: float, g: torch.Generator,
              area: tuple[float, float] = (0.02, 0.15), aspect: float = 3.3,
              scar_width: tuple[float, float] = (2 / 256, 16 / 256),
              scar_length: tuple[float, float] = (10 / 256, 25 / 256),
              jitter: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """CutPaste (Li et al. 2021) on a batch: ``kinds`` per image, 0 untouched, 1 a rectangle of the image
    (``area`` share of it, aspect ratio log-uniform in [1/``aspect``, ``aspect``]) cut and pasted elsewhere,
    2 a *scar*: a thin rectangle (``scar_width`` x ``scar_length`` of the image side, the paper's 2-16 x
    10-25 px at 256) rotated by up to 45 degrees, cut and pasted alike. The pasted content gets a random
    brightness and contrast change of up to ``jitter`` and stays in [``lo``, ``hi``]. Returns (images,
    N x H x W float masks of the pixels that changed)."""
    n, c, h, w = x.shape
    dev = x.device

    def draw(a: float, b: float) -> torch.Tensor:
        return a + (b - a) * torch.rand(n, generator=g, device=dev)

    scar = kinds == 2
    share, ratio = draw(*area), torch.exp(draw(-math.log(aspect), math.log(aspect)))
    side = min(h, w)
    tall = torch.where(scar, (draw(*scar_length) * side).clamp(min=2.0), torch.sqrt(share * h * w / ratio).clamp(1, h - 1))
    wide = torch.where(scar, (draw(*scar_width) * side).clamp(min=1.0), torch.sqrt(share * h * w * ratio).clamp(1, w - 1))
    angle = torch.where(scar, draw(-45.0, 45.0), torch.zeros(n, device=dev)) * (math.pi / 180)
    reach_y, reach_x = (tall / 2).clamp(max=h / 2), (wide / 2).clamp(max=w / 2)
    dst_y, dst_x = reach_y + draw(0, 1) * (h - 2 * reach_y), reach_x + draw(0, 1) * (w - 2 * reach_x)
    src_y, src_x = reach_y + draw(0, 1) * (h - 2 * reach_y), reach_x + draw(0, 1) * (w - 2 * reach_x)
    yy = torch.arange(h, device=dev).view(1, h, 1) + 0.5
    xx = torch.arange(w, device=dev).view(1, 1, w) + 0.5
    dy, dx = yy - dst_y.view(n, 1, 1), xx - dst_x.view(n, 1, 1)
    cos, sin = torch.cos(angle).view(n, 1, 1), torch.sin(angle).view(n, 1, 1)
    along, across = dy * cos + dx * sin, dx * cos - dy * sin
    mask = (along.abs() < tall.view(n, 1, 1) / 2) & (across.abs() < wide.view(n, 1, 1) / 2) & (kinds > 0).view(n, 1, 1)
    shift_y, shift_x = torch.round(src_y - dst_y).long(), torch.round(src_x - dst_x).long()
    rows = (torch.arange(h, device=dev)[None] + shift_y[:, None]).clamp(0, h - 1)
    cols = (torch.arange(w, device=dev)[None] + shift_x[:, None]).clamp(0, w - 1)
    moved = x[torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
              rows[:, None, :, None], cols[:, None, None, :]]
    mean = moved.mean((1, 2, 3), keepdim=True)
    contrast = draw(1 - jitter, 1 + jitter).view(n, 1, 1, 1)
    brightness = (draw(-jitter, jitter) * (hi - lo)).view(n, 1, 1, 1)
    content = ((moved - mean) * contrast + mean + brightness).clamp(lo, hi)
    out = torch.where(mask[:, None], content, x)
    changed = mask & ((out - x).abs().amax(1) > 1e-6)
    return out, changed.float()


VAL_IMAGES = 256  # synthetic validation images (the validation normals, repeated as needed)


def training_draws(data, ctx) -> tuple[torch.Tensor, int, torch.Generator, Optional[torch.Tensor]]:
    """What a detector trained on synthetic anomalies starts from (``synth_seg``, ``draem``, ``cutpaste``):
    the training images (float, on the device), a seed drawn from the run's generator, the generator of
    the training draws seeded with it (``seed + 1`` and up are for fixed draws), and the validation normals
    repeated to at least :data:`VAL_IMAGES` (None when there are none)."""
    x = data.train_x.float().to(ctx.device)
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=ctx.generator))
    gen = torch.Generator(device=ctx.device).manual_seed(seed)
    val = data.normal_val_x()
    if val is not None and len(val):
        val = val.float().to(ctx.device)
        val = val[torch.arange(max(len(val), VAL_IMAGES), device=ctx.device) % len(val)]
    else:
        val = None
    return x, seed, gen, val


def draw_images(pool: torch.Tensor, n: int, g: torch.Generator, flip: bool,
                then: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = None) -> torch.Tensor:
    """``n`` images drawn at random from ``pool`` (``then`` applied to them, e.g. a random crop), half of
    them mirrored left-right when ``flip``."""
    x = pool[torch.randint(0, len(pool), (n,), generator=g, device=pool.device)]
    if then is not None:
        x = then(x, g)
    if flip:
        mirror = torch.rand(n, generator=g, device=x.device) < 0.5
        x = torch.where(mirror.view(-1, 1, 1, 1), x.flip(-1), x)
    return x

"""Segmenting synthetic anomalies: the ``synth_seg`` detector, for small local defects on real photos.

A small U-Net, trained from scratch on the normal training images only, learns to find where an image was
tampered with: each step, half of a batch of normal images gets a synthetic anomaly pasted into a random
region, and the network predicts the region pixel by pixel (focal loss, as DRAEM, Zavrtanik et al. 2021).
The regions are generic, not the defects of any test set: a blob (a smooth random field thresholded to
cover 0.5-``max_area`` of the image, at one of three scales) or a thin curve (a random walk, 1 or 3 px
wide); their content is blended in (keeping 0-70 % of the original) from either another normal training
image (flipped and moved, as CutPaste, Li et al. 2021) or the image itself with its brightness shifted by
up to the data's range. So what the network learns is "this region does not belong", whatever the defect.
This is DRAEM's discriminative half without its reconstructive sub-network and with its external texture
images replaced by the normal images themselves: no downloaded images or weights.

Anomaly map: the predicted probability per pixel. Score: ``seg_max``, the largest pixel probability (the
pipeline adds ``local_max`` / ``local_topk`` from the smoothed map). An epoch is ``epoch_images`` images
drawn at random from the training images (so a set of 700 photos and one of 54,000 digits train for the
same number of steps); early stopping watches the same loss on the validation normals with a fixed draw
of synthetic anomalies. Measured numbers: docs/results/tiles.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from ..errors import OddpixError
from ..schema import items, num
from ..training import FitContext, TrainConfig
from .base import FitData, MapDetector, Phase
from .blocks import UNet, focal_loss
from .catalog import register
from .synthetic_anomalies import draw_images, pixel_range, training_draws

BLOB_SCALES = (4, 8, 16)  # pixels between the random field's knots: small, medium and large blobs
MIN_AREA = 0.005          # the smallest share of the image a blob covers
KEEP_MAX = 0.7            # the largest share of the original kept under a pasted region


@dataclass(frozen=True)
class SynthSegConfig(TrainConfig):
    channels: list[int] = items([16, 32, 64], ge=1, min_len=1)  # U-Net widths, one per scale
    max_area: float = num(0.05, gt=0.005, le=1.0)  # a synthetic blob covers at most this share of the image
    anomaly_share: float = num(0.5, gt=0.0, lt=1.0)  # images of a batch that get a synthetic anomaly
    epoch_images: int = num(2048, ge=1)            # images per epoch, drawn from the training images
    focal_gamma: float = num(2.0, ge=0.0)          # focal loss exponent (0: plain cross-entropy)
    flip: bool = False                             # also train on mirrored normal images (surfaces, cells; not digits)
    epochs: int = num(20, ge=1)
    batch_size: int = num(32, ge=1)
    patience: int = num(5, ge=1)


def blob_masks(n: int, h: int, w: int, max_area: float, g: torch.Generator, device) -> torch.Tensor:
    """n x h x w boolean masks: a smooth random field (knots every 4, 8 or 16 px, one scale per image)
    thresholded so that a random share in [MIN_AREA, max_area] of the pixels is set."""
    scale = torch.randint(0, len(BLOB_SCALES), (n,), generator=g, device=device)
    field = torch.zeros(n, h, w, device=device)
    for i, s in enumerate(BLOB_SCALES):
        knots = torch.randn(n, 1, math.ceil(h / s) + 1, math.ceil(w / s) + 1, generator=g, device=device)
        smooth = F.interpolate(knots, size=(h, w), mode="bicubic", align_corners=False)[:, 0]
        field = torch.where((scale == i).view(n, 1, 1), smooth, field)
    share = MIN_AREA + torch.rand(n, generator=g, device=device) * (max_area - MIN_AREA)
    k = (share * h * w).long().clamp(min=1)
    kth = field.flatten(1).sort(1, descending=True).values.gather(1, (k - 1)[:, None])
    return field >= kth.view(n, 1, 1)


def curve_masks(n: int, h: int, w: int, g: torch.Generator, device) -> torch.Tensor:
    """n x h x w boolean masks: a random walk of h/8 to h/2 unit steps with a slowly turning heading, 1 px
    wide for half the images and 3 px for the others."""
    steps = max(2, h // 2)
    length = torch.randint(max(1, h // 8), steps + 1, (n,), generator=g, device=device)
    pos = torch.rand(n, 2, generator=g, device=device) * torch.tensor([h, w], device=device)
    heading = torch.rand(n, generator=g, device=device) * 2 * math.pi
    turns = torch.randn(n, steps, generator=g, device=device) * 0.3
    masks = torch.zeros(n, h * w, device=device)
    rows = torch.arange(n, device=device)
    for t in range(steps):  # over the steps of all the walks at once
        heading = heading + turns[:, t]
        pos = pos + torch.stack([torch.sin(heading), torch.cos(heading)], 1)
        iy, ix = pos[:, 0].floor().long(), pos[:, 1].floor().long()
        on = (t < length) & (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
        masks[rows[on], (iy * w + ix)[on]] = 1.0
    masks = masks.view(n, 1, h, w)
    wide = torch.rand(n, generator=g, device=device) < 0.5
    masks = torch.where(wide.view(n, 1, 1, 1), F.max_pool2d(masks, 3, 1, 1), masks)
    return masks[:, 0] > 0


def synthesize(x: torch.Tensor, pool: torch.Tensor, span: float, config: SynthSegConfig,
               g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of normal images -> (the batch with synthetic anomalies in ``anomaly_share`` of it, N x H x W
    float masks of the changed pixels). ``pool``: normal images to take foreign content from; ``span``: the
    data's range (the largest brightness shift)."""
    n, c, h, w = x.shape
    dev = x.device
    curve = torch.rand(n, generator=g, device=dev) < 0.5
    region = torch.where(curve.view(n, 1, 1), curve_masks(n, h, w, g, dev), blob_masks(n, h, w, config.max_area, g, dev))
    region &= (torch.rand(n, generator=g, device=dev) < config.anomaly_share).view(n, 1, 1)
    other = pool[torch.randint(0, len(pool), (n,), generator=g, device=dev)].flip(-1)
    dy, dx = (int(v) for v in torch.randint(0, max(h, w), (2,), generator=g, device=dev))
    other = other.roll((dy % h, dx % w), (-2, -1))
    shifted = x + (torch.rand(n, 1, 1, 1, generator=g, device=dev) * 2 - 1) * span
    foreign = torch.where((torch.rand(n, generator=g, device=dev) < 0.5).view(n, 1, 1, 1), other, shifted)
    keep = torch.rand(n, 1, 1, 1, generator=g, device=dev) * KEEP_MAX
    m = region[:, None].float()
    out = x * (1 - m) + m * (keep * x + (1 - keep) * foreign)
    changed = region & ((out - x).abs().amax(1) > 1e-6)
    return out, changed.float()


@register
class SyntheticSegmentation(MapDetector):
    name = "synth_seg"
    Config = SynthSegConfig
    score_components = ("seg_max",)

    def __init__(self, config: SynthSegConfig, input_shape: tuple[int, int, int]):
        super().__init__(config, input_shape)
        c, h, w = self.input_shape
        if min(h, w) < 8:
            raise OddpixError(f"model synth_seg needs images of at least 8x8 pixels, not {h}x{w}")
        self.net = UNet(c, list(config.channels))
        self._pool: torch.Tensor | None = None
        self._gen: torch.Generator | None = None
        self._val: tuple[torch.Tensor, torch.Tensor] | None = None
        self._span = 1.0

    # ---- training ------------------------------------------------------------------------------------

    def phases(self, data: FitData, ctx: FitContext) -> Iterator[Phase]:
        x, seed, self._gen, val = training_draws(data, ctx)
        lo, hi = pixel_range(x)
        self._pool, self._span = x, max(float(hi - lo), 1e-3)
        if val is not None:
            fixed = torch.Generator(device=ctx.device).manual_seed(seed + 1)
            self._val = synthesize(val, x, self._span, self.config, fixed)
        ctx.log(f"synth_seg: {len(x)} normal training images, {self.config.epoch_images} per epoch with synthetic "
                f"anomalies in {self.config.anomaly_share:.0%} of them")
        yield Phase(self.config.epochs)
        self._pool = self._val = self._gen = None

    def train_data(self, data: FitData) -> int:
        """An epoch is ``epoch_images`` images that :meth:`loss` draws itself (from ``_gen``) from the normal
        training images, whatever their number: the loop hands each step the batch's positions only."""
        return self.config.epoch_images

    def val_data(self, data: FitData):
        return self._val

    def _focal(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return focal_loss(self.net(x)[:, 0], mask, self.config.focal_gamma)

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        x = draw_images(self._pool, len(batch), self._gen, self.config.flip)
        return self._focal(*synthesize(x, self._pool, self._span, self.config, self._gen))

    def validation_loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return self._focal(*batch)

    # ---- scoring -------------------------------------------------------------------------------------

    @torch.no_grad()
    def anomaly_map(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x.float())[:, 0])

    @torch.no_grad()
    def score_and_map(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        maps = self.anomaly_map(x)
        return {"seg_max": maps.flatten(1).amax(1)}, maps

"""Patch nearest neighbours: the ``patch_knn`` detector, for small local defects. Two ways (``gallery``).

``gallery: 0`` (a global patch memory, PatchCore-style): every ``memory_stride``-th ``patch`` x ``patch``
pixel patch (all channels) of the normal training images, a random subset of at most ``memory`` of them
(by the run's seed: a bound on memory and time, the role of PatchCore's coreset). Scoring: every patch of
a test image at ``stride`` pixels gets the distance to its ``k``-th nearest patch in the memory; those
patch scores, placed back at the patch centres and interpolated to the image size, are the anomaly map.
An image is as anomalous as its worst patch (``patch_max``; the pipeline adds ``local_max`` /
``local_topk`` read from the smoothed map), so a small spot that a whole-image distance averages away
decides the score here. No network, no pretrained features: raw pixels (optionally Gaussian-``blur``red
first), from scratch.

``gallery: G > 0`` (the default, G = 10): aligned comparison, for images where the same place should look
alike (centred digits, garments, cells, regular textures) (SPADE, Cohen & Hoshen 2020, here on raw
pixels): the memory is up to ``max_images`` whole training images (a seeded random subset); each test
image is compared only with its ``G`` nearest of them (Euclidean distance after a Gaussian blur of 1
pixel, as the ``knn`` detector), and the map at a pixel is the smallest distance between the ``patch`` x
``patch`` window around it and the same window in one of those ``G`` images, shifted by up to ``shift``
pixels. A dot on a digit's background is in none of its nearest digits; a stroke that is merely a little
thicker or displaced is. docs/results/corruptions.md compares the two ways.

Cost: global memory, queries x memory x patch^2 x channels multiply-adds; gallery, a whole-image distance
to ``max_images`` images plus G x (2 shift + 1)^2 window comparisons per pixel. ``block``: images whose
patches (global memory) or windows (gallery) are handled at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import OddpixError
from ..maps import gaussian_blur
from ..runtime import blocks
from ..schema import num
from ..training import FitContext
from .base import FitData, MapDetector
from .catalog import register
from .memory import kth_distance, register_memory


@dataclass(frozen=True)
class PatchKNNConfig:
    patch: int = num(5, ge=1, le=64)         # patch side, in pixels
    stride: int = num(2, ge=1)               # between scored patches of a test image
    memory_stride: int = num(1, ge=1)        # between remembered patches of a training image
    memory: int = num(10000, ge=1)           # patches kept in the memory (random subset, by seed)
    k: int = num(1, ge=1)
    blur: float = num(0.0, ge=0.0)           # Gaussian std applied to the images first (0: raw pixels)
    block: int = num(64, ge=1)               # images whose patches are cut at once
    gallery: int = num(10, ge=0)             # > 0: aligned, against this many nearest training images; 0: global
    shift: int = num(1, ge=0, le=8)          # gallery: search up to this many pixels around the same place
    max_images: int = num(20000, ge=1)       # gallery: training images remembered (random subset, by seed)


GALLERY_BLUR = 1.0  # sigma of the blur the gallery's nearest images are found with (the knn detector's default)


@register
class PatchKNN(MapDetector):
    name = "patch_knn"
    Config = PatchKNNConfig
    score_components = ("patch_max",)

    def __init__(self, config: PatchKNNConfig, input_shape: tuple[int, int, int]):
        super().__init__(config, input_shape)
        c, h, w = self.input_shape
        if config.patch > min(h, w):
            raise OddpixError(f"params: models.patch_knn.patch: {config.patch} pixels is larger than the "
                              f"{h}x{w} images")
        register_memory(self, "bank", c * config.patch ** 2)

    def patches(self, x: torch.Tensor, stride: int) -> torch.Tensor:
        """N x C x H x W -> N x L x (C * patch^2), L patches per image in row-major order."""
        x = gaussian_blur(x.float(), self.config.blur)
        return F.unfold(x, self.config.patch, stride=stride).transpose(1, 2)

    def fit(self, data: FitData, ctx: FitContext) -> list[dict]:
        """Remember a seeded random subset of the training images' patches or, with a ``gallery``, of the
        training images themselves. Nothing is optimised: no epochs, an empty history."""
        self.to(ctx.device)
        cfg = self.config
        if cfg.gallery:
            self.bank = self._training_images(data.train_x, ctx)
            ctx.log(f"patch_knn: remembering {len(self.bank)} training images; each test image is compared with "
                    f"its {cfg.gallery} nearest, {cfg.patch}x{cfg.patch} windows shifted by up to {cfg.shift} px")
        else:
            self.bank = self._training_patches(data.train_x, ctx)
            ctx.log(f"patch_knn: remembering {len(self.bank)} patches of {cfg.patch}x{cfg.patch} from "
                    f"{len(data.train_x)} training images")
        self.fit_report = {"n_memory": len(self.bank)}
        return []

    def _training_patches(self, x: torch.Tensor, ctx: FitContext) -> torch.Tensor:
        """At most ``memory`` patches of the training images, a seeded random subset drawn without extracting
        them all."""
        stride = self.config.memory_stride
        c, h, w = self.input_shape
        per_image = ((h - self.config.patch) // stride + 1) * ((w - self.config.patch) // stride + 1)
        total = len(x) * per_image
        if total < self.config.k:
            raise OddpixError(f"models.patch_knn.k: {self.config.k} neighbours but only {total} patches")
        if total <= self.config.memory:
            pick = torch.arange(total)
        else:  # sorted random (image, position) pairs; extract only the images they fall in, a block at a time
            pick = torch.randperm(total, generator=ctx.generator)[: self.config.memory].sort().values
        pool = []
        for start in range(0, len(pick), 1024):
            part = pick[start:start + 1024]
            images, inverse = torch.unique(part // per_image, return_inverse=True)
            patches = self.patches(x[images].to(ctx.device), stride)
            pool.append(patches[inverse.to(patches.device), (part % per_image).to(patches.device)])
        return torch.cat(pool).contiguous()

    def _training_images(self, x: torch.Tensor, ctx: FitContext) -> torch.Tensor:
        """At most ``max_images`` training images (a seeded random subset), flattened: the gallery."""
        if len(x) < self.config.gallery:
            raise OddpixError(f"models.patch_knn.gallery: {self.config.gallery} nearest images but only {len(x)} "
                              "training images")
        if len(x) > self.config.max_images:
            x = x[torch.randperm(len(x), generator=ctx.generator)[: self.config.max_images].sort().values]
        return x.float().flatten(1).to(ctx.device).contiguous()

    def _blurred_bank(self) -> torch.Tensor:
        """The remembered images blurred for the nearest-image search, computed once per memory and device
        (not once per scored batch)."""
        c, h, w = self.input_shape
        if torch.compiler.is_exporting():  # a traced graph holds the blurred bank as a constant
            return gaussian_blur(self.bank.view(-1, c, h, w), GALLERY_BLUR).flatten(1)
        key = (self.bank.data_ptr(), self.bank.device, tuple(self.bank.shape))
        if getattr(self, "_blurred_key", None) != key:
            self._blurred = gaussian_blur(self.bank.view(-1, c, h, w), GALLERY_BLUR).flatten(1)
            self._blurred_key = key
        return self._blurred

    def gallery_maps(self, x: torch.Tensor) -> torch.Tensor:
        """N x H x W: at each pixel the smallest distance between the window around it and the same window,
        shifted by up to ``shift`` pixels, in one of the image's ``gallery`` nearest training images."""
        c, h, w = self.input_shape
        p, r = self.config.patch, self.config.shift
        memory = self.bank.view(-1, c, h, w)
        blurred = self._blurred_bank()
        out = []
        for q in blocks(x.float(), self.config.block):
            near = torch.cdist(gaussian_blur(q, GALLERY_BLUR).flatten(1), blurred)
            near = near.topk(self.config.gallery, dim=1, largest=False).indices  # B x G
            padded = F.pad(memory[near.flatten()], (r, r, r, r))  # (B G) x C x H+2r x W+2r
            best = None
            for dy in range(2 * r + 1):
                for dx in range(2 * r + 1):
                    diff = padded[:, :, dy:dy + h, dx:dx + w].unflatten(0, near.shape) - q[:, None]
                    window = F.avg_pool2d(diff.pow(2).sum(2), p, 1, p // 2, count_include_pad=False)[..., :h, :w]
                    nearest = window.min(1).values
                    best = nearest if best is None else torch.minimum(best, nearest)
            out.append((best * p * p).sqrt())  # the window's Euclidean distance, as a patch distance
        return torch.cat(out)

    def patch_scores(self, x: torch.Tensor) -> torch.Tensor:
        """N x Hq x Wq grid of each scored patch's distance to its k-th nearest remembered patch."""
        c, h, w = self.input_shape
        p, s = self.config.patch, self.config.stride
        hq, wq = (h - p) // s + 1, (w - p) // s + 1
        out = []
        for block in blocks(x, self.config.block):
            q = self.patches(block, s)
            d = kth_distance(q.flatten(0, 1), self.bank, self.config.k, rows=4096)  # <= 4096 x memory distances
            out.append(d.view(len(q), hq, wq))
        return torch.cat(out)

    def _to_map(self, grid: torch.Tensor) -> torch.Tensor:
        """Patch scores at their centres -> an N x H x W map (interpolated, edges repeated)."""
        c, h, w = self.input_shape
        p = self.config.patch
        inner = F.interpolate(grid[:, None], size=(h - p + 1, w - p + 1), mode="bilinear", align_corners=True)
        lo = (p - 1) // 2
        return F.pad(inner, (lo, p - 1 - lo, lo, p - 1 - lo), mode="replicate")[:, 0]

    @torch.no_grad()
    def score_and_map(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        if self.config.gallery:
            maps = self.gallery_maps(x)
            return {"patch_max": maps.flatten(1).max(1).values}, maps
        grid = self.patch_scores(x)
        return {"patch_max": grid.flatten(1).max(1).values}, self._to_map(grid)

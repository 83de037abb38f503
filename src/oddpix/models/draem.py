"""DRAEM (Zavrtanik et al. 2021), trained from scratch on the normal images: the ``draem`` detector.

Two networks learn together on normal images that get synthetic anomalies (:mod:`.synthetic_anomalies`:
Perlin-noise masks filled with augmented normal images, random colours or generated textures, opacity in
[``min_opacity``, 1], in the data's own range): a **reconstructive** encoder-decoder without skip
connections learns to give back the normal image from the tampered one (L2 + SSIM loss), and a
**discriminative** U-Net, on the tampered image and its reconstruction side by side, learns the mask of
the tampered pixels (focal loss). Where the reconstruction disagrees with the image, the discriminative
network has its cue; what it learns is "this region does not belong", not any test set's defects.

Anomaly map: the predicted probability per pixel (averaged with the map of the mirrored image when
``test_flip``). Scores: ``mean_max``, the largest value of the map after a ``smooth`` x ``smooth`` mean
filter (DRAEM's image score; ``smooth: 0`` picks about a twelfth of the image side, as DRAEM's 21 px at
256), ``seg_max``, the largest raw value, and ``memory_max`` (PatchCore on the network's own features,
Roth et al. 2022): after training, ``memory`` patch features of the training images (the discriminative
encoder's ``memory_level`` scale, each averaged over its 3x3 neighbourhood; a seeded random subset of
them) are kept with the weights, and a test patch scores its distance to the nearest one; ``map: memory``
makes that distance map (upsampled to the image) the anomaly map. ``reconstruct: false`` drops the reconstructive network
(the discriminative one then sees the image alone), which measures what it adds. An epoch is
``epoch_images`` images drawn from the training images; early stopping watches the same loss on the
validation normals with one fixed draw of synthetic anomalies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Literal, Optional

import torch
import torch.nn.functional as F

from ..errors import OddpixError
from ..schema import items, num
from ..training import FitContext, TrainConfig, optimize
from .base import FitData, MapDetector, Phase
from .blocks import UNet, focal_loss
from .catalog import register
from .memory import kth_distance, random_patch_rows, register_memory
from .synthetic_anomalies import SOURCES, draw_images, paste, pixel_range, training_draws

@dataclass(frozen=True)
class DraemConfig(TrainConfig):
    recon_channels: list[int] = items([16, 32, 64], ge=1, min_len=1)  # reconstructive network widths per scale
    seg_channels: list[int] = items([16, 32, 64], ge=1, min_len=1)    # discriminative U-Net widths per scale
    reconstruct: bool = True                  # false: no reconstructive network (the U-Net sees the image only)
    sources: list[str] = items(list(SOURCES), min_len=1, choices=SOURCES)  # what synthetic anomalies are made of
    threshold: float = num(0.5, gt=-1.0, lt=1.0)   # Perlin noise above this is a synthetic anomaly's mask
    min_opacity: float = num(0.1, gt=0.0, le=1.0)  # a pasted anomaly's opacity is drawn in [min_opacity, 1]
    anomaly_share: float = num(0.5, gt=0.0, lt=1.0)  # images of a batch that get a synthetic anomaly
    focal_gamma: float = num(2.0, ge=0.0)
    smooth: int = num(0, ge=0)                 # mean filter side for mean_max (0: about a twelfth of the image)
    flip: bool = False                         # also train on mirrored normal images (surfaces, cells; not digits)
    crop: int = num(0, ge=0)                   # train on random crops of this side (0: whole images); scores see whole images
    test_flip: bool = False                    # average the map with that of the mirrored image
    memory: int = num(10000, ge=1)             # training patch features kept for memory_max (a seeded random subset)
    memory_level: int = num(-1, ge=-8)         # the encoder scale they come from (-1: the deepest)
    map: Literal["segmentation", "memory"] = "segmentation"  # the anomaly map: predicted mask or memory distances
    epoch_images: int = num(2048, ge=1)
    epochs: int = num(20, ge=1)
    batch_size: int = num(16, ge=1)
    lr: float = num(0.001, gt=0.0)
    patience: int = num(5, ge=1)


def ssim(a: torch.Tensor, b: torch.Tensor, span: float, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """Mean structural similarity of two batches (Gaussian window, per channel), for data of range ``span``."""
    c = a.shape[1]
    r = torch.arange(window, dtype=a.dtype, device=a.device) - (window - 1) / 2
    k1 = torch.exp(-r * r / (2 * sigma * sigma))
    k1 = k1 / k1.sum()
    kernel = (k1[:, None] * k1[None, :]).expand(c, 1, window, window).contiguous()

    def blur(t):
        return F.conv2d(t, kernel, padding=window // 2, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * span) ** 2, (0.03 * span) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.mean()


@register
class Draem(MapDetector):
    name = "draem"
    Config = DraemConfig
    score_components = ("mean_max", "seg_max", "memory_max")

    def __init__(self, config: DraemConfig, input_shape: tuple[int, int, int]):
        super().__init__(config, input_shape)
        c, h, w = self.input_shape
        if min(h, w) < 8:
            raise OddpixError(f"model draem needs images of at least 8x8 pixels, not {h}x{w}")
        if config.crop and not 8 <= config.crop <= min(h, w):
            raise OddpixError(f"models.draem.crop: {config.crop} must be 0 (whole images) or between 8 and the "
                              f"image side {min(h, w)}")
        self.recon = UNet(c, list(config.recon_channels), c, skips=False) if config.reconstruct else None
        self.seg = UNet(2 * c if config.reconstruct else c, list(config.seg_channels))
        levels = len(config.seg_channels)
        if not -levels <= config.memory_level < levels:
            raise OddpixError(f"models.draem.memory_level: {config.memory_level} is not a scale of seg_channels "
                              f"{list(config.seg_channels)}; valid: {-levels} .. {levels - 1}")
        self.level = config.memory_level % levels
        register_memory(self, "patch_memory", int(config.seg_channels[self.level]))
        self.register_buffer("data_range", torch.tensor([0.0, 1.0]))  # the training pixels' 1 %-99 % quantiles
        self._pool: Optional[torch.Tensor] = None
        self._gen: Optional[torch.Generator] = None
        self._val: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    @property
    def smooth(self) -> int:
        side = self.config.smooth or max(1, round(min(self.input_shape[1:]) / 12))
        return side if side % 2 else side + 1

    # ---- training ------------------------------------------------------------------------------------

    def _crop(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """A random ``crop`` x ``crop`` window of each image (the whole images when ``crop`` is 0)."""
        side = self.config.crop
        n, c, h, w = x.shape
        if not side or (side == h and side == w):
            return x
        top = torch.randint(0, h - side + 1, (n,), generator=g, device=x.device)
        left = torch.randint(0, w - side + 1, (n,), generator=g, device=x.device)
        step = torch.arange(side, device=x.device)
        rows, cols = (top[:, None] + step)[:, None, :, None], (left[:, None] + step)[:, None, None, :]
        return x[torch.arange(n, device=x.device)[:, None, None, None], torch.arange(c, device=x.device)[None, :, None, None],
                 rows, cols]

    def _synthesize(self, x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(tampered images, masks) for a batch of (cropped) normal images; the foreign image content comes
        from as many other training images, cropped alike."""
        lo, hi = (float(v) for v in self.data_range)
        cfg = self.config
        pool = self._pool
        if cfg.crop:
            pool = self._crop(pool[torch.randint(0, len(pool), (len(x),), generator=g, device=x.device)], g)
        return paste(x, pool, lo, hi, tuple(cfg.sources), cfg.anomaly_share, cfg.threshold, cfg.min_opacity, g)

    def phases(self, data: FitData, ctx: FitContext) -> Iterator[Phase]:
        x, seed, self._gen, val = training_draws(data, ctx)
        lo, hi = pixel_range(x)
        self.data_range.copy_(torch.stack([lo, torch.maximum(hi, lo + 1e-3)]))
        self._pool = x
        if val is not None:
            fixed = torch.Generator(device=ctx.device).manual_seed(seed + 1)
            val = self._crop(val, fixed)
            self._val = (val, *self._synthesize(val, fixed))
        parts = "reconstructive + discriminative" if self.recon is not None else "discriminative only"
        ctx.log(f"draem ({parts}): {len(x)} normal training images, {self.config.epoch_images} per epoch, "
                f"synthetic anomalies from {', '.join(self.config.sources)} in {self.config.anomaly_share:.0%}")
        yield Phase(self.config.epochs)
        self._pool = self._val = self._gen = None
        self.eval()
        memory_draw = torch.Generator(device=ctx.device).manual_seed(seed + 2)
        self.patch_memory = random_patch_rows(x, self.config.memory, memory_draw, self._features)
        ctx.log(f"draem: {len(self.patch_memory)} training patch features remembered (scale {self.level}, "
                f"{self.patch_memory.shape[1]} channels)")

    def train_data(self, data: FitData) -> int:
        return self.config.epoch_images

    def val_data(self, data: FitData):
        return self._val

    def _losses(self, clean: torch.Tensor, tampered: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if self.recon is not None:
            recon = self.recon(tampered)
            span = float(self.data_range[1] - self.data_range[0])
            out["l2"] = F.mse_loss(recon, clean) / (span * span)
            out["ssim"] = 1 - ssim(recon, clean, span)
            logits = self.seg(torch.cat([tampered, recon], 1))
        else:
            logits = self.seg(tampered)
        out["focal"] = focal_loss(logits[:, 0], mask, self.config.focal_gamma)
        out["loss"] = sum(out.values())
        return out

    def training_step(self, batch, phase: Phase) -> dict[str, float]:
        x = draw_images(self._pool, len(batch), self._gen, self.config.flip, self._crop)
        parts = self._losses(x, *self._synthesize(x, self._gen))
        loss = parts.pop("loss")
        return {"loss": optimize(phase.optimizers[0], loss), **{k: float(v.detach()) for k, v in parts.items()}}

    def validation_loss(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return self._losses(*batch)["loss"]

    # ---- scoring -------------------------------------------------------------------------------------

    @torch.no_grad()
    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """N x C x h x w: the discriminative encoder's features at ``level``, each averaged with its 3x3
        neighbours (PatchCore's local aggregation)."""
        h = torch.cat([x, self.recon(x)], 1) if self.recon is not None else x
        return F.avg_pool2d(self.seg.encode(h, self.level + 1)[-1], 3, 1, 1, count_include_pad=False)

    @torch.no_grad()
    def _memory_map(self, x: torch.Tensor) -> torch.Tensor:
        """N x h x w: each patch feature's distance to the nearest remembered one (zeros before training
        has filled the memory)."""
        f = self._features(x)
        n, _, h, w = f.shape
        if not len(self.patch_memory):
            return f.new_zeros(n, h, w)
        return kth_distance(f.permute(0, 2, 3, 1).flatten(0, 2), self.patch_memory, 1, rows=4096).view(n, h, w)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        return None if self.recon is None else self.recon(x.float())

    @torch.no_grad()
    def _map(self, x: torch.Tensor) -> torch.Tensor:
        if self.recon is not None:
            x = torch.cat([x, self.recon(x)], 1)
        return torch.sigmoid(self.seg(x)[:, 0])

    @torch.no_grad()
    def score_and_map(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        x = x.float()
        maps = self._map(x)
        if self.config.test_flip:
            maps = (maps + self._map(x.flip(-1)).flip(-1)) / 2
        k = self.smooth
        smoothed = F.avg_pool2d(maps[:, None], k, 1, k // 2, count_include_pad=False)[:, 0]
        distances = self._memory_map(x)
        scores = {"mean_max": smoothed.flatten(1).amax(1), "seg_max": maps.flatten(1).amax(1),
                  "memory_max": distances.flatten(1).amax(1)}
        if self.config.map == "memory":
            maps = F.interpolate(distances[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        return scores, maps

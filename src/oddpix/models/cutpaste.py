"""CutPaste (Li et al. 2021), trained from scratch on the normal images: the ``cutpaste`` detector.

A small pre-activation ResNet learns a three-way self-supervised task on normal images: untouched, a
rectangle of the image cut and pasted elsewhere (brightness and contrast jittered), or a *scar*, a thin
rotated rectangle cut and pasted alike (:func:`.synthetic_anomalies.cut_paste`). To tell them apart it
must learn what a seamless piece of the normal surface looks like, so its features place a real defect
away from the normal ones. After training, the features of the training images are summarised by
Gaussians (mean and Ledoit-Wolf covariance, :mod:`.gaussian`):

* ``patch_max`` (default): the largest Mahalanobis distance of a local feature (the ``map_level`` block's
  features, each averaged over its 3x3 neighbourhood) to the Gaussian of ``memory`` training local
  features (a seeded random subset); these distances, upsampled to the image, are the anomaly map;
* ``gde``: the Mahalanobis distance of an image's pooled features to the training images' (the paper's
  Gaussian density estimator, an image-level score);
* ``classifier``: how much more the classifier believes in a pasted piece than in an untouched image
  (log-odds).

An epoch is ``epoch_images`` images drawn from the training images, each given one of the three kinds at
random; early stopping watches the same loss on the validation normals with one fixed draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import OddpixError
from ..schema import items, num
from ..training import FitContext, TrainConfig, optimize
from .base import FitData, MapDetector, Phase
from .blocks import PreActBlock
from .catalog import register
from .gaussian import fit_gaussian, mahalanobis, register_gaussian
from .memory import random_patch_rows
from .synthetic_anomalies import cut_paste, draw_images, pixel_range, training_draws

KINDS = 3         # untouched, cut-paste, scar


@dataclass(frozen=True)
class CutPasteConfig(TrainConfig):
    channels: list[int] = items([16, 32, 64, 128], ge=1, min_len=2)  # ResNet widths per block (each after the first halves the size)
    head: int = num(128, ge=1)                  # width of the projection layer before the 3-way classifier
    area: list[float] = items([0.02, 0.15], gt=0.0, min_len=2)   # a pasted rectangle's share of the image (min, max)
    aspect: float = num(3.3, ge=1.0)            # its aspect ratio is log-uniform in [1/aspect, aspect]
    scar_width: list[float] = items([0.008, 0.0625], gt=0.0, min_len=2)  # a scar's width, share of the image side
    scar_length: list[float] = items([0.04, 0.1], gt=0.0, min_len=2)     # and its length
    jitter: float = num(0.1, ge=0.0, le=1.0)    # brightness / contrast change of the pasted piece
    flip: bool = False                          # also train on mirrored normal images (surfaces, cells; not digits)
    map_level: int = num(-2, ge=-8)             # the block whose local features make the anomaly map (-1: the last)
    memory: int = num(20000, ge=2)              # training local features the map's Gaussian is fitted on
    epoch_images: int = num(1024, ge=1)
    epochs: int = num(20, ge=1)
    batch_size: int = num(32, ge=1)
    lr: float = num(0.001, gt=0.0)
    weight_decay: float = num(0.0001, ge=0.0)
    patience: int = num(5, ge=1)


def _span(values: list[float], key: str, upper: float) -> tuple[float, float]:
    lo, hi = (float(v) for v in values[:2])
    if len(values) != 2 or not 0 < lo <= hi <= upper:
        raise OddpixError(f"models.cutpaste.{key}: {list(values)} must be [min, max] with 0 < min <= max <= {upper}")
    return lo, hi


@register
class CutPaste(MapDetector):
    name = "cutpaste"
    Config = CutPasteConfig
    score_components = ("patch_max", "gde", "classifier")

    def __init__(self, config: CutPasteConfig, input_shape: tuple[int, int, int]):
        super().__init__(config, input_shape)
        c, h, w = self.input_shape
        if min(h, w) < 8:
            raise OddpixError(f"model cutpaste needs images of at least 8x8 pixels, not {h}x{w}")
        self.area = _span(config.area, "area", 0.5)
        self.scar_width = _span(config.scar_width, "scar_width", 1.0)
        self.scar_length = _span(config.scar_length, "scar_length", 1.0)
        channels = list(config.channels)
        levels = len(channels)
        if not -levels <= config.map_level < levels:
            raise OddpixError(f"models.cutpaste.map_level: {config.map_level} is not a block of channels {channels}; "
                              f"valid: {-levels} .. {levels - 1}")
        self.level = config.map_level % levels
        self.stem = nn.Conv2d(c, channels[0], 3, 1, 1, bias=False)
        self.blocks = nn.ModuleList(PreActBlock(channels[max(i - 1, 0)], ch, 1 if i == 0 else 2)
                                    for i, ch in enumerate(channels))
        self.bn = nn.BatchNorm2d(channels[-1])
        self.head = nn.Sequential(nn.Linear(channels[-1], config.head), nn.ReLU(), nn.Linear(config.head, KINDS))
        register_gaussian(self, "image", channels[-1])
        register_gaussian(self, "local", channels[self.level])
        self.register_buffer("data_range", torch.tensor([0.0, 1.0]))  # the training pixels' 1 %-99 % quantiles
        self._pool: Optional[torch.Tensor] = None
        self._gen: Optional[torch.Generator] = None
        self._val: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    # ---- the network ---------------------------------------------------------------------------------

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pooled features N x C, local features at ``map_level`` N x C' x h x w, logits N x 3)."""
        h = self.stem(x)
        local = None
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.level:
                local = h
        h = torch.relu(self.bn(h))
        if self.level == len(self.blocks) - 1:
            local = h
        pooled = h.mean((2, 3))
        return pooled, local, self.head(pooled)

    # ---- training ------------------------------------------------------------------------------------

    def _synthesize(self, x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, their kinds): each image untouched, cut-pasted or scarred, one third each on average."""
        kinds = torch.randint(0, KINDS, (len(x),), generator=g, device=x.device)
        lo, hi = (float(v) for v in self.data_range)
        out, _ = cut_paste(x, kinds, lo, hi, g, self.area, self.config.aspect, self.scar_width, self.scar_length,
                           self.config.jitter)
        return out, kinds

    def phases(self, data: FitData, ctx: FitContext) -> Iterator[Phase]:
        x, seed, self._gen, val = training_draws(data, ctx)
        lo, hi = pixel_range(x)
        self.data_range.copy_(torch.stack([lo, torch.maximum(hi, lo + 1e-3)]))
        self._pool = x
        if val is not None:
            self._val = self._synthesize(val, torch.Generator(device=ctx.device).manual_seed(seed + 1))
        ctx.log(f"cutpaste: {len(x)} normal training images, {self.config.epoch_images} per epoch, each untouched, "
                "cut-pasted or scarred")
        yield Phase(self.config.epochs)
        self._pool = self._val = self._gen = None
        self.eval()
        self._fit_gaussians(x, torch.Generator(device=ctx.device).manual_seed(seed + 2))
        ctx.log(f"cutpaste: Gaussians of {len(x)} training images' features and {self._local_rows} local features "
                f"(block {self.level}, {self.local_mean.shape[0]} channels)")

    def train_data(self, data: FitData) -> int:
        return self.config.epoch_images

    def val_data(self, data: FitData):
        return self._val

    def _loss(self, x: torch.Tensor, kinds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self._forward(x)[2]
        return F.cross_entropy(logits, kinds), (logits.argmax(1) == kinds).float().mean()

    def training_step(self, batch, phase: Phase) -> dict[str, float]:
        x = draw_images(self._pool, len(batch), self._gen, self.config.flip)
        loss, accuracy = self._loss(*self._synthesize(x, self._gen))
        return {"loss": optimize(phase.optimizers[0], loss), "accuracy": float(accuracy)}

    def validation_loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return self._loss(*batch)[0]

    @torch.no_grad()
    def _local_features(self, local: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(local, 3, 1, 1, count_include_pad=False)

    @torch.no_grad()
    def _fit_gaussians(self, x: torch.Tensor, g: torch.Generator) -> None:
        """The image Gaussian from every training image's pooled features; the local one from ``memory``
        local features drawn at random (without replacement) from all of them, in the same passes."""
        pooled = []

        def local(batch: torch.Tensor) -> torch.Tensor:
            p, features, _ = self._forward(batch)
            pooled.append(p)
            return self._local_features(features)

        local_rows = random_patch_rows(x, self.config.memory, g, local)
        fit_gaussian(self, "image", torch.cat(pooled))
        self._local_rows = len(local_rows)
        fit_gaussian(self, "local", local_rows)

    # ---- scoring -------------------------------------------------------------------------------------

    @torch.no_grad()
    def score_and_map(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        x = x.float()
        pooled, local, logits = self._forward(x)
        f = self._local_features(local)
        n, c, h, w = f.shape
        distances = mahalanobis(self, "local", f.permute(0, 2, 3, 1).reshape(-1, c)).view(n, 1, h, w)
        maps = F.interpolate(distances, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        scores = {"gde": mahalanobis(self, "image", pooled), "patch_max": distances.flatten(1).amax(1),
                  "classifier": torch.logsumexp(logits[:, 1:], 1) - logits[:, 0]}
        return scores, maps

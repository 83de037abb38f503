"""Geometric-transformation classifier (Golan & El-Yaniv 2018, "Deep Anomaly Detection Using Geometric
Transformations", NeurIPS).

Self-supervised: every normal training image is shown under each of T geometric transformations
(horizontal flip x translations x rotations by 90 degrees; the paper's set is 2 x 9 x 4 = 72), and a CNN
learns to tell which transformation was applied. To do that on normal images it must learn what they look
like (which way up a shoe is, where a digit's stroke starts); on an anomaly it cannot tell the
transformations apart. Score ``transform``: minus the mean log-probability the network gives to the
right transformation, over all T (the paper's simplified normality score; its Dirichlet refinement is
not implemented).

Knobs: ``flips`` (x2), ``shift`` (pixels; > 0 adds shifts by -shift/0/+shift in each axis, x9, with
reflection at the border), ``rotations`` (1, 2 or 4 quarter turns). The default is 2 x 4 = 8
transformations, a CPU-sized set; ``shift: 8`` gives the paper's 72 (its wide ResNet is not built here).
Each training step shows ``batch_size`` images under all T transformations, so a step costs T forward
passes per image. The classifier is the shared conv encoder (3x3 conv + BatchNorm + ReLU + max-pool per
entry of ``channels``) with a linear head over the flattened map (it keeps position, which translations
need). Non-square images are zero-padded to a square for the rotations.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Iterator

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..schema import items, num
from ..training import FitContext, TrainConfig, optimize
from .base import Detector, FitData, Phase
from .blocks import ConvStyle, conv_encoder
from .catalog import register


@dataclass(frozen=True)
class GeomConfig(TrainConfig):
    channels: list[int] = items([16, 32, 64], ge=1, min_len=1)
    flips: bool = True
    shift: int = num(0, ge=0)
    rotations: int = num(4, ge=1, le=4)
    epochs: int = num(10, ge=1)
    batch_size: int = num(32, ge=1)  # images per step; each is shown under all T transformations

    def problems(self) -> list[tuple[str, str]]:
        if self.rotations == 3:
            return [("rotations", "3 is not a group of quarter turns; valid choices: 1, 2, 4")]
        return []


@register
class GeometricTransformations(Detector):
    name = "geom"
    Config = GeomConfig
    score_components = ("transform",)

    def __init__(self, config: GeomConfig, input_shape: tuple[int, int, int]):
        super().__init__(config, input_shape)
        c, h, w = self.input_shape
        self.side = max(h, w)
        self.pad = (0, self.side - w, 0, self.side - h)
        if config.shift * 2 >= self.side:
            raise ConfigError(f"params: models.geom.shift: {config.shift} pixels is too large for {h}x{w} images "
                              f"(at most {(self.side - 1) // 2})")
        shifts = [(0, 0)]
        if config.shift:
            s = config.shift
            shifts = [(dy, dx) for dy in (0, -s, s) for dx in (0, -s, s)]
        quarter = 4 // config.rotations  # rotations 2: 0 and 180 degrees
        self.transforms = list(product((False, True) if config.flips else (False,), shifts,
                                       [k * quarter for k in range(config.rotations)]))
        self.net, _ = conv_encoder((c, self.side, self.side), config.channels, len(self.transforms),
                                   ConvStyle(batchnorm=True))

    @property
    def n_transforms(self) -> int:
        return len(self.transforms)

    def apply_transform(self, x: torch.Tensor, flip: bool, shift: tuple[int, int], quarters: int) -> torch.Tensor:
        if flip:
            x = x.flip(-1)
        dy, dx = shift
        if dy or dx:
            s = self.config.shift
            x = F.pad(x, (s, s, s, s), mode="reflect")[..., s - dy:s - dy + self.side, s - dx:s - dx + self.side]
        return torch.rot90(x, quarters, dims=(-2, -1)) if quarters else x

    def square(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pads non-square images to ``side`` x ``side`` for the rotations."""
        return F.pad(x, self.pad) if any(self.pad) else x

    def transformed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All T transformations of a batch, stacked transformation-major, and their labels."""
        x = self.square(x)
        out = torch.cat([self.apply_transform(x, *t) for t in self.transforms])
        labels = torch.arange(self.n_transforms, device=x.device).repeat_interleave(len(x))
        return out, labels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _logits(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xt, y = self.transformed(batch)
        return self(xt), y

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(*self._logits(batch))

    def training_step(self, batch: torch.Tensor, phase: Phase) -> dict[str, float]:
        logits, y = self._logits(batch)
        loss = F.cross_entropy(logits, y)
        return {"loss": optimize(phase.optimizers[0], loss), "accuracy": float((logits.argmax(1) == y).float().mean())}

    def phases(self, data: FitData, ctx: FitContext) -> Iterator[Phase]:
        ctx.log(f"geom: {self.n_transforms} transformations (flips {self.config.flips}, shift {self.config.shift}, "
                f"rotations {self.config.rotations})")
        yield from super().phases(data, ctx)

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.square(x)
        total = x.new_zeros(x.shape[0])  # x.shape, not len(x): an exported graph keeps its batch size free
        for label, t in enumerate(self.transforms):  # one batched pass per transformation bounds the memory
            total -= F.log_softmax(self(self.apply_transform(x, *t)), dim=1)[:, label]
        return {"transform": total / self.n_transforms}

"""Self-supervised transformation network + nearest neighbours, fused: the ``ssl`` detector.

Three views of "how normal is this image", each measured against the normal training images, then put on
one scale and added:

* ``transform`` (Hendrycks et al. 2019, "Using self-supervised learning can improve model robustness and
  uncertainty"; Golan & El-Yaniv 2018): a small wide residual network (:class:`~.blocks.ResNetFeatures`,
  images zero-padded to a multiple of 4, e.g. 28 -> 32) learns, on normal images only, which quarter
  turn was applied (a head of ``rotations`` classes) and, with ``shift`` > 0, by how many pixels the image
  was moved in x and in y (two heads of 3 classes: 0, -shift, +shift; reflection at the border). Each
  training image is shown under every rotation with a random shift per copy, so a step costs
  ``rotations`` forward passes per image instead of GEOM's 72. Score: minus the log-probability the heads
  give to the right answers, averaged over the rotations of the unshifted image. A network that has
  learnt which way up a shoe is cannot tell the turns of a bag apart.
* ``rotation``: the ``transform`` score of the rotation head alone (the shift heads help the network learn
  and may add noise to the score).
* ``features`` (Sohn et al. 2021): the distance of the image's pooled features (L2-normalised) to the
  ``k``-th nearest training image's.
* ``rotated_features`` (CSI's ensemble over shifting transformations, Tack et al. 2020): the same distance
  under each rotation of the task, each against the training images under that rotation, summed. The
  network tells the turns apart, so its features of a turned image differ from the upright one's, and each
  turn is one more look at the image.
* ``pixels``: the blurred-pixel nearest-neighbour distance (the ``knn`` detector's score).
* ``fused`` (default): the sum of the ``fuse`` components, each standardised by the mean and standard
  deviation of its scores on the validation normals (held out from training and from the memory banks),
  so no component dominates by its units. Needs ``data.val_fraction`` > 0.

Training: ``train_flip`` mirrors a random half of each batch (photos; not digits), ``schedule: cosine``
lowers the learning rate to 0 over the steps. After training, the memory banks (at most ``max_train``
training images, a seeded subset) and the standardisation statistics are stored with the weights, so
``oddpix predict`` scores exactly as the evaluation did. Measured numbers: docs/results/one_class.md and,
for photos, docs/results/cifar10.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import OddpixError
from ..maps import gaussian_blur
from ..schema import choice, items, num
from ..training import FitContext, TrainConfig
from .base import Detector, FitData, Phase
from .blocks import ResNetFeatures
from .catalog import register
from .memory import kth_distance, register_memory
from .standardise import location_scale, register_scale, standardised

VIEWS = ("transform", "rotation", "features", "rotated_features", "pixels")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class SSLConfig(TrainConfig):
    channels: list[int] = items([16, 32, 64], ge=1, min_len=1)  # residual stages; GPU: e.g. [64, 128, 256]
    rotations: int = num(4, ge=2, le=4)  # quarter turns told apart (2: 0 and 180 degrees)
    shift: int = num(4, ge=0)            # pixels; > 0 adds the x- and y-shift heads
    k: int = num(1, ge=1)                # neighbours of the features / pixels distances
    blur: float = num(1.0, ge=0.0)       # pixels: Gaussian std before the distance
    max_train: int = num(20000, ge=1)    # images in the memory banks
    fuse: list[str] = items(["transform", "pixels"], min_len=1, choices=VIEWS)
    test_flip: bool = False              # also view each image mirrored left-right and average (photos)
    train_flip: bool = False             # mirror a random half of each training batch left-right (photos)
    schedule: str = choice("constant", SCHEDULES)  # learning rate over the steps; cosine: lr -> 0 at the end
    epochs: int = num(4, ge=1)
    batch_size: int = num(64, ge=1)      # images per step, each under every rotation
    patience: int = num(5, ge=1)

    def problems(self) -> list[tuple[str, str]]:
        if self.rotations == 3:
            return [("rotations", "3 is not a group of quarter turns; valid choices: 2, 4")]
        if len(set(self.fuse)) < len(self.fuse):
            return [("fuse", f"{self.fuse} names a component twice")]
        return []


@register
class SelfSupervisedKNN(Detector):
    name = "ssl"
    Config = SSLConfig
    score_components = ("fused", *VIEWS)

    def __init__(self, config: SSLConfig, input_shape: tuple[int, int, int]):
        super().__init__(config, input_shape)
        c, h, w = self.input_shape
        self.side = 4 * math.ceil(max(h, w) / 4)
        if config.shift * 2 >= self.side:
            raise OddpixError(f"params: models.ssl.shift: {config.shift} pixels is too large for {h}x{w} images "
                              f"(at most {(self.side - 1) // 2})")
        self.shifts = (0, -config.shift, config.shift)
        self.net = ResNetFeatures(c, config.channels)
        n_heads = [config.rotations] + ([3, 3] if config.shift else [])
        self.heads = nn.ModuleList(nn.Linear(self.net.out_dim, n) for n in n_heads)
        register_memory(self, "pixel_memory", c * h * w)
        register_memory(self, "rotated_memory", config.rotations * self.net.out_dim)  # first block: features
        register_scale(self, "fuse", len(config.fuse))
        self._schedule = None  # the cosine learning-rate schedule while training

    # ---- the self-supervised task -------------------------------------------------------------------

    def square(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pads to ``side`` x ``side``, the image in the middle."""
        h, w = x.shape[-2:]
        top, left = (self.side - h) // 2, (self.side - w) // 2
        return F.pad(x, (left, self.side - w - left, top, self.side - h - top))

    def shifted(self, x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
        if not (dy or dx):
            return x
        s = self.config.shift
        return F.pad(x, (s, s, s, s), mode="reflect")[..., s - dy:s - dy + self.side, s - dx:s - dx + self.side]

    def task(self, x: torch.Tensor, random_shift: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The transformed images of a batch and their labels (rotation, y-shift, x-shift), N*rotations rows,
        rotation-major; ``random_shift``: each copy moved by its own random shift (else none)."""
        x = self.square(x)
        n, n_rot = x.shape[0], self.config.rotations  # x.shape, not len(x): exported graphs keep n free
        labels = torch.zeros(n * n_rot, 3, dtype=torch.long, device=x.device)
        labels[:, 0] = torch.arange(n_rot, device=x.device)[:, None].expand(n_rot, n).reshape(-1)
        copies = x.repeat(n_rot, 1, 1, 1)
        if self.config.shift and random_shift:
            labels[:, 1:] = torch.randint(0, 3, (n * n_rot, 2), device=x.device)
            moved = copies.clone()
            for iy, dy in enumerate(self.shifts):  # 9 whole-batch shifts, each image takes its own
                for ix, dx in enumerate(self.shifts):
                    pick = (labels[:, 1] == iy) & (labels[:, 2] == ix)
                    if (iy or ix) and bool(pick.any()):
                        moved[pick] = self.shifted(copies[pick], dy, dx)
            copies = moved
        quarter = 4 // n_rot  # rotations 2: 0 and 180 degrees
        return torch.cat([torch.rot90(copies[r * n:(r + 1) * n], r * quarter, dims=(-2, -1))
                          for r in range(n_rot)]), labels

    def head_logits(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        features = self.net(x)
        return [head(features) for head in self.heads], features

    def _nll(self, logits: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """Per image: minus the summed log-probabilities of the right answers of every head."""
        return -sum(F.log_softmax(lg, dim=1).gather(1, labels[:, j:j + 1]).squeeze(1) for j, lg in enumerate(logits))

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        if self.training and self.config.train_flip:
            mirror = torch.rand(batch.shape[0], device=batch.device) < 0.5
            batch = torch.where(mirror[:, None, None, None], batch.flip(-1), batch)
        x, labels = self.task(batch, random_shift=self.training)
        return self._nll(self.head_logits(x)[0], labels).mean()

    def training_step(self, batch: torch.Tensor, phase: Phase) -> dict[str, float]:
        out = super().training_step(batch, phase)
        if self._schedule is not None:
            self._schedule.step()
        return out

    def phases(self, data: FitData, ctx: FitContext) -> Iterator[Phase]:
        val = data.normal_val_x()
        if val is None or not len(val):
            raise OddpixError("model ssl standardises its fused score on the validation normals and there are "
                              "none; set data.val_fraction > 0 (e.g. 0.1)")
        ctx.log(f"ssl: {self.config.rotations} rotations" + (f", shifts of {self.config.shift} px" if self.config.shift
                                                            else "") + f", {self.side}x{self.side} input")
        optimizers = self.configure_optimizers()
        self._schedule = None
        if self.config.schedule == "cosine":
            steps = self.config.epochs * math.ceil(len(data.train_x) / self.config.batch_size)
            self._schedule = torch.optim.lr_scheduler.LambdaLR(
                optimizers[0], lambda step: 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps)))
        yield Phase(self.config.epochs, optimizers=optimizers)
        self._schedule = None
        self.remember(data.train_x, val.to(ctx.device), ctx)

    # ---- memory banks and fusion --------------------------------------------------------------------

    @torch.no_grad()
    def remember(self, train_x: torch.Tensor, val: torch.Tensor, ctx: FitContext) -> None:
        """Fills the memory banks from the training images, then the fusion statistics from ``val``."""
        self.eval()
        x = train_x
        if len(x) > self.config.max_train:
            x = x[torch.randperm(len(x), generator=ctx.generator)[: self.config.max_train]]
        if len(x) < self.config.k:
            raise OddpixError(f"models.ssl.k: {self.config.k} neighbours but only {len(x)} training images")
        pixels, rotated = [], []
        for start in range(0, len(x), 512):
            batch = x[start:start + 512].to(ctx.device).float()
            pixels.append(self._pixel_features(batch))
            rotated.append(self._rotated_features(batch))
        self.pixel_memory, self.rotated_memory = torch.cat(pixels), torch.cat(rotated)
        views = {name: [] for name in VIEWS}
        for start in range(0, len(val), 512):
            for name, value in self._views(val[start:start + 512].float()).items():
                views[name].append(value)
        stats = torch.stack([torch.cat(views[name]) for name in self.config.fuse])
        self.fuse_mean, self.fuse_std = location_scale(stats)
        ctx.log(f"ssl: memory of {len(x)} training images; fused = " + " + ".join(
            f"({n} - {m:.4g}) / {s:.4g}" for n, m, s in zip(self.config.fuse, self.fuse_mean.tolist(),
                                                          self.fuse_std.tolist())))

    def _pixel_features(self, x: torch.Tensor) -> torch.Tensor:
        return gaussian_blur(x, self.config.blur).flatten(1)

    def _rotated_features(self, x: torch.Tensor) -> torch.Tensor:
        """The L2-normalised pooled features of the image under each rotation of the task, side by side:
        N x (rotations * C), as :meth:`_views` computes them (mirror images averaged with ``test_flip``)."""
        n = x.shape[0]
        seen = torch.cat([x, x.flip(-1)]) if self.config.test_flip else x
        feats = self.net(self.task(seen, random_shift=False)[0])
        return self._per_rotation(feats, n)

    def _per_rotation(self, feats: torch.Tensor, n: int) -> torch.Tensor:
        """Features of the task's rows (rotation-major, each seen copy of the n images) -> n x (rotations * C),
        the copies averaged and each rotation's block L2-normalised."""
        per = feats.view(self.config.rotations, -1, n, feats.shape[1]).mean(1)
        return F.normalize(per, dim=2).permute(1, 0, 2).reshape(n, -1)

    def _rotation_distances(self, rotated: torch.Tensor) -> list[torch.Tensor]:
        """Under each rotation, the distance to the ``k``-th nearest training image under the same rotation:
        the first (no turn) is the ``features`` view, their sum ``rotated_features`` (CSI's ensemble over
        shifting transformations, Tack et al. 2020)."""
        c = self.net.out_dim
        return [kth_distance(rotated[:, r * c:(r + 1) * c], self.rotated_memory[:, r * c:(r + 1) * c], self.config.k)
                for r in range(self.config.rotations)]

    def _views(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every view; with ``test_flip`` the image and its mirror image go through the network together
        (the transform score averaged, the pooled features averaged before normalising)."""
        n = x.shape[0]
        seen = torch.cat([x, x.flip(-1)]) if self.config.test_flip else x
        x_rot, labels = self.task(seen, random_shift=False)
        logits, feats = self.head_logits(x_rot)
        transform = self._nll(logits, labels).view(self.config.rotations, -1, n).mean((0, 1))
        rotation = self._nll(logits[:1], labels).view(self.config.rotations, -1, n).mean((0, 1))
        distances = self._rotation_distances(self._per_rotation(feats, n))
        return {"transform": transform, "rotation": rotation, "features": distances[0],
                "rotated_features": sum(distances),
                "pixels": kth_distance(self._pixel_features(x), self.pixel_memory, self.config.k)}

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        views = self._views(x.float())
        fused = sum(standardised([views[name] for name in self.config.fuse], self.fuse_mean, self.fuse_std))
        return {"fused": fused, **views}

"""Nearest-neighbour detector: the distance from an image to its k-th nearest training image, in pixels.

No training beyond remembering (up to ``max_train``, a seeded random subset of) the normal training
images; the score ``distance`` is the Euclidean distance to the ``k``-th nearest of them (``mean_of_k:
true``: the mean distance to the k nearest). A raw-pixel baseline that is hard to beat on the one-class
benchmarks, so every deep detector should be compared with it (docs/results/one_class.md).

``blur``: both the remembered and the scored images are smoothed by a Gaussian of that many pixels
(standard deviation) first, which makes the distance tolerant to one-pixel misalignments and stroke-width
noise (0: raw pixels).

Scoring is batched (:func:`oddpix.runtime.batched`, ``block`` images at a time): ``torch.cdist`` between
a block of test images and all remembered training images, then ``topk``, with no per-image Python loop
(:mod:`.memory`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import OddpixError
from ..maps import gaussian_blur
from ..runtime import batched
from ..schema import num
from ..training import FitContext
from .base import Detector, FitData
from .catalog import register
from .memory import nearest_distances, register_memory


@dataclass(frozen=True)
class KNNConfig:
    k: int = num(1, ge=1)
    blur: float = num(1.0, ge=0.0)
    mean_of_k: bool = False
    max_train: int = num(20000, ge=1)
    block: int = num(1024, ge=1)  # test images per distance block (memory: block x max_train floats)


@register
class NearestNeighbour(Detector):
    name = "knn"
    Config = KNNConfig
    score_components = ("distance",)

    def __init__(self, config: KNNConfig, input_shape: tuple[int, int, int]):
        super().__init__(config, input_shape)
        register_memory(self, "memory", math.prod(self.input_shape))

    def fit(self, data: FitData, ctx: FitContext) -> list[dict]:
        """Nothing to optimise: remember (a seeded subset of) the training images' features."""
        x = data.train_x
        if len(x) > self.config.max_train:  # a random subset, by the run's seed
            x = x[torch.randperm(len(x), generator=ctx.generator)[: self.config.max_train]]
        self.memory = self.features(x.float().to(ctx.device))
        if len(self.memory) < self.config.k:
            raise OddpixError(f"models.knn.k: {self.config.k} neighbours but only {len(self.memory)} training images")
        self.fit_report = {"n_memory": len(self.memory)}
        ctx.log(f"knn: remembering {len(self.memory)} training images; k = {self.config.k}, blur {self.config.blur}")
        return []  # no epochs

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the distance is measured on: the (blurred) images, flattened."""
        return gaussian_blur(x, self.config.blur).flatten(1)

    def _distance(self, x: torch.Tensor) -> torch.Tensor:
        near = nearest_distances(self.features(x.float()), self.memory, self.config.k)
        return near.mean(1) if self.config.mean_of_k else near[:, -1]

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        distance = batched(self._distance, x, self.config.block, self.memory.device)
        return {"distance": distance.to(x.device)}

"""One-class Deep SVDD (Ruff et al. 2018, "Deep One-Class Classification", ICML).

A network phi maps images into a space where the normal training images are pulled towards a centre c;
the anomaly score is the squared distance ||phi(x) - c||^2. As in the paper:

* LeNet-style network with no bias terms and BatchNorm without affine parameters (a bias or affine BN
  would let phi collapse every input onto c, the trivial solution);
* the weights are pretrained as the encoder of an autoencoder (``pretrain_epochs``), then c is the mean
  of phi over the training images, with every coordinate pushed at least ``eps`` away from 0;
* one-class objective: minimize the mean squared distance to c, Adam with weight decay.

Score components: ``distance`` (||phi(x) - c||^2); the latent codes phi(x) also get the pipeline's KDE.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..config import TrainConfig, items, num
from ..runtime import batched
from ..training import FitContext, optimize, train_loop
from .base import Detector, FitData


@dataclass(frozen=True)
class DeepSVDDConfig(TrainConfig):
    channels: list[int] = items([32, 64], ge=1, min_len=1)
    rep_dim: int = num(32, ge=1)
    pretrain_epochs: int = num(10, ge=0)
    pretrain_lr: float = num(1e-3, gt=0.0)
    eps: float = num(0.1, gt=0.0)
    lr: float = num(1e-4, gt=0.0)
    weight_decay: float = num(1e-6, ge=0.0)


def _encoder(input_shape: tuple[int, int, int], channels: list[int], rep_dim: int
             ) -> tuple[nn.Sequential, list[tuple[int, int]]]:
    c, h, w = input_shape
    sizes = [(h, w)]
    layers: list[nn.Module] = []
    for ch in channels:
        layers += [nn.Conv2d(c, ch, 5, padding=2, bias=False), nn.BatchNorm2d(ch, eps=1e-4, affine=False),
                   nn.LeakyReLU(0.1), nn.MaxPool2d(2, ceil_mode=True)]
        h, w = (h + 1) // 2, (w + 1) // 2
        sizes.append((h, w))
        c = ch
    layers += [nn.Flatten(), nn.Linear(c * h * w, rep_dim, bias=False)]
    return nn.Sequential(*layers), sizes


def _decoder(rep_dim: int, out_channels: int, channels: list[int], sizes: list[tuple[int, int]]) -> nn.Sequential:
    c = channels[-1]
    h, w = sizes[-1]
    layers: list[nn.Module] = [nn.Linear(rep_dim, c * h * w, bias=False), nn.Unflatten(1, (c, h, w)),
                               nn.LeakyReLU(0.1)]
    outs = list(reversed(channels))
    for i, size in enumerate(reversed(sizes[:-1])):
        c_out = outs[i + 1] if i + 1 < len(outs) else outs[-1]
        layers += [nn.Upsample(size=size, mode="nearest"), nn.Conv2d(c, c_out, 5, padding=2, bias=False),
                   nn.BatchNorm2d(c_out, eps=1e-4, affine=False), nn.LeakyReLU(0.1)]
        c = c_out
    layers.append(nn.Conv2d(c, out_channels, 5, padding=2, bias=False))
    return nn.Sequential(*layers)


class DeepSVDD(Detector):
    name = "deep_svdd"
    Config = DeepSVDDConfig
    score_components = ("distance",)
    has_encoder = True

    def __init__(self, config: DeepSVDDConfig, input_shape: tuple[int, int, int]):
        super().__init__(config, input_shape)
        self.encoder, sizes = _encoder(self.input_shape, config.channels, config.rep_dim)
        self.decoder = _decoder(config.rep_dim, self.input_shape[0], config.channels, sizes)  # pretraining only
        self.register_buffer("center", torch.zeros(config.rep_dim))

    def distance(self, x: torch.Tensor) -> torch.Tensor:
        return (self.encoder(x) - self.center).pow(2).sum(dim=1)

    def fit(self, data: FitData, ctx: FitContext) -> list[dict]:
        cfg = self.config
        self.to(ctx.device)
        val_x = data.normal_val_x()
        history: list[dict] = []
        if cfg.pretrain_epochs:
            opt = torch.optim.Adam(self.parameters(), lr=cfg.pretrain_lr, weight_decay=cfg.weight_decay)

            def ae_loss(batch: torch.Tensor) -> torch.Tensor:
                return F.mse_loss(self.decoder(self.encoder(batch)), batch)

            def ae_step(batch: torch.Tensor) -> dict[str, float]:
                loss = ae_loss(batch)
                return {"loss": optimize(opt, loss)}

            pre = train_loop(self, data.train_x, val_x, replace(cfg, epochs=cfg.pretrain_epochs, lr=cfg.pretrain_lr),
                             ctx, ae_step, ae_loss, name=f"{self.name} pretrain")
            history += [{**row, "phase": "pretrain"} for row in pre]
        self.center.copy_(self._initial_center(data.train_x.to(ctx.device)))
        opt = torch.optim.Adam(self.encoder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

        def step(batch: torch.Tensor) -> dict[str, float]:
            loss = self.distance(batch).mean()
            return {"loss": optimize(opt, loss)}

        main = train_loop(self, data.train_x, val_x, cfg, ctx, step, lambda b: self.distance(b).mean(), name=self.name)
        offset = len(history)
        return history + [{**row, "epoch": row["epoch"] + offset, "phase": "svdd"} for row in main]

    @torch.no_grad()
    def _initial_center(self, x: torch.Tensor) -> torch.Tensor:
        self.eval()
        c = batched(self.encoder, x, 1024).mean(0).to(x.device)
        eps = self.config.eps
        c[(c.abs() < eps) & (c < 0)] = -eps
        c[(c.abs() < eps) & (c >= 0)] = eps
        return c

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"distance": self.distance(x)}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

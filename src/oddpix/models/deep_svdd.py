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

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from ..runtime import batched
from ..schema import items, num
from ..training import FitContext, TrainConfig
from .base import Detector, FitData, Phase
from .blocks import ConvStyle, conv_decoder, conv_encoder
from .catalog import register

# LeNet-style: bias-free 5x5 convs, BatchNorm without affine parameters, LeakyReLU (the paper's network)
SVDD_STYLE = ConvStyle(kernel=5, bias=False, batchnorm=True, affine=False, bn_eps=1e-4, slope=0.1)


@dataclass(frozen=True)
class DeepSVDDConfig(TrainConfig):
    channels: list[int] = items([32, 64], ge=1, min_len=1)
    rep_dim: int = num(32, ge=1)
    pretrain_epochs: int = num(10, ge=0)
    pretrain_lr: float = num(1e-3, gt=0.0)
    eps: float = num(0.1, gt=0.0)
    lr: float = num(1e-4, gt=0.0)
    weight_decay: float = num(1e-6, ge=0.0)


@register
class DeepSVDD(Detector):
    name = "deep_svdd"
    Config = DeepSVDDConfig
    score_components = ("distance",)
    has_encoder = True

    def __init__(self, config: DeepSVDDConfig, input_shape: tuple[int, int, int]):
        super().__init__(config, input_shape)
        self.encoder, sizes = conv_encoder(self.input_shape, config.channels, config.rep_dim, SVDD_STYLE)
        self.decoder = conv_decoder(config.rep_dim, self.input_shape[0], config.channels, sizes,  # pretraining only
                                    SVDD_STYLE)
        self.register_buffer("center", torch.zeros(config.rep_dim))

    def distance(self, x: torch.Tensor) -> torch.Tensor:
        return (self.encoder(x) - self.center).pow(2).sum(dim=1)

    def reconstruction_loss(self, batch: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.decoder(self.encoder(batch)), batch)

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        return self.distance(batch).mean()

    def phases(self, data: FitData, ctx: FitContext) -> Iterator[Phase]:
        """Autoencoder pretraining of all weights, then the centre, then the one-class objective (encoder)."""
        cfg = self.config
        if cfg.pretrain_epochs:
            yield Phase(cfg.pretrain_epochs, name="pretrain", loss=self.reconstruction_loss,
                        val_loss=self.reconstruction_loss,
                        optimizers=[torch.optim.Adam(self.parameters(), lr=cfg.pretrain_lr,
                                                     weight_decay=cfg.weight_decay)])
        self.center.copy_(self._initial_center(data.train_x.to(ctx.device)))
        yield Phase(cfg.epochs, name="svdd",
                    optimizers=[torch.optim.Adam(self.encoder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)])

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

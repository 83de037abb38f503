"""Dense (fully connected) autoencoder on flattened pixels; score = reconstruction error.

The plain deep autoencoder baseline of one-class image anomaly detection (the unsupervised counterpart of
the supervised ``cnn`` on MNIST with digit 0 normal).
"""

from __future__ import annotations

from dataclasses import dataclass

import math

from torch import nn

from ..schema import items
from .autoencoder import AutoencoderConfig, AutoencoderDetector
from .catalog import register


@dataclass(frozen=True)
class AEConfig(AutoencoderConfig):
    hidden: list[int] = items([512, 128], ge=1)


@register
class DenseAutoencoder(AutoencoderDetector):
    name = "ae"
    Config = AEConfig

    def __init__(self, config: AEConfig, input_shape: tuple[int, int, int]):
        super().__init__(config, input_shape)
        dims = [math.prod(self.input_shape), *config.hidden, config.latent_dim]
        enc: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(dims[:-1], dims[1:]):
            enc += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        self.encoder = nn.Sequential(*enc[:-1])  # linear bottleneck
        rev = dims[::-1]
        dec: list[nn.Module] = []
        for a, b in zip(rev[:-1], rev[1:]):
            dec += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        dec = dec[:-1] + [nn.Unflatten(1, self.input_shape)]
        self.decoder = nn.Sequential(*dec)

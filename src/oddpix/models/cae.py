"""Convolutional autoencoder: 3x3 conv + ReLU + max-pooling encoder to a small dense bottleneck, an
upsampling decoder with a sigmoid output, trained with binary cross-entropy; score = reconstruction error.

The classic set-up of reconstruction-based anomaly detection (e.g. the Keras autoencoder tutorials the
mission's MNIST-vs-Fashion-MNIST project follows): normal images reconstruct well, anomalies do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import items
from .autoencoder import AutoencoderConfig, AutoencoderDetector


@dataclass(frozen=True)
class CAEConfig(AutoencoderConfig):
    channels: list[int] = items([32, 64], ge=1, min_len=1)
    batchnorm: bool = False


def _block(c_in: int, c_out: int, batchnorm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.ReLU(inplace=True))
    return layers


class ConvAutoencoder(AutoencoderDetector):
    name = "cae"
    Config = CAEConfig

    def __init__(self, config: CAEConfig, input_shape: tuple[int, int, int]):
        super().__init__(config, input_shape)
        c, h, w = self.input_shape
        sizes = [(h, w)]
        enc: list[nn.Module] = []
        c_prev = c
        for ch in config.channels:
            enc += _block(c_prev, ch, config.batchnorm)
            enc.append(nn.MaxPool2d(2, ceil_mode=True))
            h, w = (h + 1) // 2, (w + 1) // 2
            sizes.append((h, w))
            c_prev = ch
        flat = c_prev * h * w
        enc += [nn.Flatten(), nn.Linear(flat, config.latent_dim)]
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [nn.Linear(config.latent_dim, flat), nn.ReLU(inplace=True),
                                nn.Unflatten(1, (c_prev, h, w))]
        outs = list(reversed(config.channels))
        for i, size in enumerate(reversed(sizes[:-1])):
            c_out = outs[i + 1] if i + 1 < len(outs) else outs[-1]
            dec.append(nn.Upsample(size=size, mode="nearest"))
            dec += _block(c_prev, c_out, config.batchnorm)
            c_prev = c_out
        dec.append(nn.Conv2d(c_prev, c, 3, padding=1))
        self.decoder = nn.Sequential(*dec)

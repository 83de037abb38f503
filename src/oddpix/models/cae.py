"""Convolutional autoencoder: 3x3 conv + ReLU + max-pooling encoder to a small dense bottleneck, an
upsampling decoder with a sigmoid output, trained with binary cross-entropy; score = reconstruction error.

The classic set-up of reconstruction-based anomaly detection (e.g. MNIST normal, Fashion-MNIST images as
the anomalies): normal images reconstruct well, anomalies do not.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..schema import items
from .autoencoder import AutoencoderConfig, AutoencoderDetector
from .blocks import ConvStyle, conv_decoder, conv_encoder
from .catalog import register


@dataclass(frozen=True)
class CAEConfig(AutoencoderConfig):
    channels: list[int] = items([32, 64], ge=1, min_len=1)
    batchnorm: bool = False


@register
class ConvAutoencoder(AutoencoderDetector):
    name = "cae"
    Config = CAEConfig

    def __init__(self, config: CAEConfig, input_shape: tuple[int, int, int]):
        super().__init__(config, input_shape)
        style = ConvStyle(batchnorm=config.batchnorm)
        self.encoder, sizes = conv_encoder(self.input_shape, config.channels, config.latent_dim, style)
        self.decoder = conv_decoder(config.latent_dim, self.input_shape[0], config.channels, sizes, style)


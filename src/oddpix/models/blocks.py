"""Network pieces the detectors share: a conv encoder to a flat code and its mirror-image decoder, and the
DCGAN encoder, decoder and discriminator of the adversarial detectors, a small wide residual network
(the self-supervised detector's feature extractor), and the U-Net of the segmenting detectors with its
focal loss (``synth_seg``, ``draem``; without skip connections it is DRAEM's reconstructive network).

The conv encoder and decoder adapt to any input size and channel count: the encoder halves the size (ceil)
at each stage, and the decoder upsamples back to the exact sizes the encoder saw. :class:`ConvStyle`
covers the variants in use (3x3 convs with biases and ReLU; Deep SVDD's bias-free 5x5 convs with
BatchNorm without affine parameters and LeakyReLU).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ConvStyle:
    kernel: int = 3
    bias: bool = True          # biases of the convs and linear layers
    batchnorm: bool = False
    affine: bool = True        # BatchNorm's learned scale and shift
    bn_eps: float = 1e-5
    slope: float = 0.0         # LeakyReLU's negative slope; 0: ReLU

    def act(self) -> nn.Module:
        return nn.LeakyReLU(self.slope) if self.slope else nn.ReLU(inplace=True)

    def conv(self, c_in: int, c_out: int) -> nn.Conv2d:
        return nn.Conv2d(c_in, c_out, self.kernel, padding=self.kernel // 2, bias=self.bias)


def conv_block(c_in: int, c_out: int, style: ConvStyle = ConvStyle()) -> list[nn.Module]:
    """conv, optional BatchNorm, activation."""
    layers: list[nn.Module] = [style.conv(c_in, c_out)]
    if style.batchnorm:
        layers.append(nn.BatchNorm2d(c_out, eps=style.bn_eps, affine=style.affine))
    layers.append(style.act())
    return layers


def conv_encoder(input_shape: tuple[int, int, int], channels: list[int], out_dim: int,
                 style: ConvStyle = ConvStyle()) -> tuple[nn.Sequential, list[tuple[int, int]]]:
    """A conv block + 2x2 max-pool per entry of ``channels``, then a linear layer to ``out_dim``.

    Returns the encoder and the spatial sizes it went through (input first), for :func:`conv_decoder`.
    """
    c, h, w = input_shape
    sizes = [(h, w)]
    layers: list[nn.Module] = []
    for ch in channels:
        layers += conv_block(c, ch, style)
        layers.append(nn.MaxPool2d(2, ceil_mode=True))
        h, w = (h + 1) // 2, (w + 1) // 2
        sizes.append((h, w))
        c = ch
    layers += [nn.Flatten(), nn.Linear(c * h * w, out_dim, bias=style.bias)]
    return nn.Sequential(*layers), sizes


def conv_decoder(latent_dim: int, out_channels: int, channels: list[int], sizes: list[tuple[int, int]],
                 style: ConvStyle = ConvStyle()) -> nn.Sequential:
    """Linear layer to the encoder's last feature map, then upsample + conv block back to the input size,
    and a final conv to ``out_channels`` (no activation: logits or values)."""
    c = channels[-1]
    h, w = sizes[-1]
    layers: list[nn.Module] = [nn.Linear(latent_dim, c * h * w, bias=style.bias), style.act(),
                               nn.Unflatten(1, (c, h, w))]
    outs = list(reversed(channels))
    for i, size in enumerate(reversed(sizes[:-1])):
        c_out = outs[i + 1] if i + 1 < len(outs) else outs[-1]
        layers.append(nn.Upsample(size=size, mode="nearest"))
        layers += conv_block(c, c_out, style)
        c = c_out
    layers.append(style.conv(c, out_channels))
    return nn.Sequential(*layers)


def dcgan_encoder(size: int, nc: int, ndf: int, nz: int) -> tuple[nn.Sequential, nn.Sequential]:
    """(feature stack, final conv to ``nz`` x 1 x 1): conv 4x4 stride 2 + BN + LeakyReLU down to 4x4."""
    layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
    s, c = size // 2, ndf
    while s > 4:
        layers += [nn.Conv2d(c, c * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c * 2), nn.LeakyReLU(0.2, inplace=True)]
        s, c = s // 2, c * 2
    return nn.Sequential(*layers), nn.Sequential(nn.Conv2d(c, nz, s, 1, 0, bias=False))


def dcgan_decoder(size: int, nc: int, ngf: int, nz: int) -> nn.Sequential:
    """Transposed convs from ``nz`` x 1 x 1 up to ``nc`` x size x size, tanh output."""
    c, s = ngf, 4
    while s < size // 2:
        c, s = c * 2, s * 2
    layers: list[nn.Module] = [nn.ConvTranspose2d(nz, c, 4, 1, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)]
    s = 4
    while s < size // 2:
        layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(True)]
        c, s = c // 2, s * 2
    layers += [nn.ConvTranspose2d(c, nc, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def dcgan_init(m: nn.Module) -> None:
    """DCGAN's initialisation: conv weights N(0, 0.02), BatchNorm scales N(1, 0.02), shifts 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class Discriminator(nn.Module):
    """The DCGAN discriminator: a logit per image and its last feature map (for feature matching)."""

    def __init__(self, size: int, nc: int, ndf: int):
        super().__init__()
        self.features, self.head = dcgan_encoder(size, nc, ndf, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.head(f).flatten(), f


class PreActBlock(nn.Module):
    """Pre-activation residual block of a wide ResNet: BN-ReLU-conv3x3 twice, 1x1 conv shortcut on a change."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None if c_in == c_out and stride == 1 else nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        y = self.conv2(torch.relu(self.bn2(self.conv1(out))))
        return y + (x if self.shortcut is None else self.shortcut(out))


class ResNetFeatures(nn.Module):
    """A 3x3 stem, one :class:`PreActBlock` per entry of ``channels`` (each after the first halves the
    size), BN-ReLU and global average pooling: N x C x H x W -> N x ``channels[-1]`` features."""

    def __init__(self, in_channels: int, channels: list[int]):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, channels[0], 3, 1, 1, bias=False)
        blocks, c = [], channels[0]
        for i, ch in enumerate(channels):
            blocks.append(PreActBlock(c, ch, 1 if i == 0 else 2))
            c = ch
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c)
        self.out_dim = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.blocks(self.stem(x)))).mean((2, 3))


UNET_STYLE = ConvStyle(bias=False, batchnorm=True)  # 3x3 convs without biases, BatchNorm, ReLU


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    """Two conv + BatchNorm + ReLU layers (:func:`conv_block` twice)."""
    return nn.Sequential(*conv_block(c_in, c_out, UNET_STYLE), *conv_block(c_out, c_out, UNET_STYLE))


class UNet(nn.Module):
    """Encoder of :func:`double_conv` blocks with 2x2 max-pooling, decoder that upsamples to each scale's exact
    size (any input size) and, with ``skips``, concatenates the encoder's features of that scale; a 1x1 conv
    to ``out_channels`` per pixel. Without ``skips`` nothing passes but through the bottleneck."""

    def __init__(self, in_channels: int, channels: list[int], out_channels: int = 1, skips: bool = True):
        super().__init__()
        self.skips = skips
        self.down = nn.ModuleList()
        c = in_channels
        for ch in channels:
            self.down.append(double_conv(c, ch))
            c = ch
        self.up = nn.ModuleList(double_conv(channels[i + 1] + (channels[i] if skips else 0), channels[i])
                                for i in reversed(range(len(channels) - 1)))
        self.out = nn.Conv2d(channels[0], out_channels, 1)

    def encode(self, x: torch.Tensor, levels: int | None = None) -> list[torch.Tensor]:
        """The encoder's features at each of its first ``levels`` scales (all by default), finest first."""
        features = []
        for i, block in enumerate(self.down[:levels]):
            x = block(F.max_pool2d(x, 2, ceil_mode=True) if i else x)
            features.append(x)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encode(x)
        x = features[-1]
        for block, skip in zip(self.up, reversed(features[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = block(torch.cat([x, skip], 1) if self.skips else x)
        return self.out(x)


def focal_loss(logits: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """Mean per-pixel focal loss (Lin et al. 2017) of logits against a 0/1 mask: the cross-entropy weighted
    by the probability given to the wrong answer to the power ``gamma`` (0: plain cross-entropy)."""
    bce = F.binary_cross_entropy_with_logits(logits, mask, reduction="none")
    p = torch.sigmoid(logits)
    miss = p * (1 - mask) + (1 - p) * mask
    return (bce * miss.pow(gamma)).mean()

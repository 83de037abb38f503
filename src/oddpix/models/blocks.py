"""Network pieces the detectors share: a conv encoder to a flat code and its mirror-image decoder.

Both adapt to any input size and channel count: the encoder halves the size (ceil) at each stage, and the
decoder upsamples back to the exact sizes the encoder saw.
"""

from __future__ import annotations

from torch import nn


def conv_block(c_in: int, c_out: int, batchnorm: bool, act: nn.Module | None = None) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(act if act is not None else nn.ReLU(inplace=True))
    return layers


def conv_encoder(input_shape: tuple[int, int, int], channels: list[int], out_dim: int,
                 batchnorm: bool = False) -> tuple[nn.Sequential, list[tuple[int, int]]]:
    """3x3 conv + ReLU + 2x2 max-pool per entry of ``channels``, then a linear layer to ``out_dim``.

    Returns the encoder and the spatial sizes it went through (input first), for :func:`conv_decoder`.
    """
    c, h, w = input_shape
    sizes = [(h, w)]
    layers: list[nn.Module] = []
    for ch in channels:
        layers += conv_block(c, ch, batchnorm)
        layers.append(nn.MaxPool2d(2, ceil_mode=True))
        h, w = (h + 1) // 2, (w + 1) // 2
        sizes.append((h, w))
        c = ch
    layers += [nn.Flatten(), nn.Linear(c * h * w, out_dim)]
    return nn.Sequential(*layers), sizes


def conv_decoder(latent_dim: int, out_channels: int, channels: list[int], sizes: list[tuple[int, int]],
                 batchnorm: bool = False) -> nn.Sequential:
    """Linear layer to the encoder's last feature map, then upsample + 3x3 conv + ReLU back to the input
    size, and a final 3x3 conv to ``out_channels`` (no activation: logits or values)."""
    c = channels[-1]
    h, w = sizes[-1]
    layers: list[nn.Module] = [nn.Linear(latent_dim, c * h * w), nn.ReLU(inplace=True), nn.Unflatten(1, (c, h, w))]
    outs = list(reversed(channels))
    for i, size in enumerate(reversed(sizes[:-1])):
        c_out = outs[i + 1] if i + 1 < len(outs) else outs[-1]
        layers.append(nn.Upsample(size=size, mode="nearest"))
        layers += conv_block(c, c_out, batchnorm)
        c = c_out
    layers.append(nn.Conv2d(c, out_channels, 3, padding=1))
    return nn.Sequential(*layers)

"""Anomaly maps and the local image scores read from them.

A detector with maps (``has_maps``) gives every image a per-pixel map, higher = more anomalous (the
reconstruction detectors: the per-pixel reconstruction error, colour channels summed). A whole-image mean
drowns a small defect; the local scores do not: the map is smoothed by a Gaussian of ``sigma`` pixels
(so one noisy pixel does not decide) and then read as

* ``local_max``:  the largest smoothed value;
* ``local_topk``: the mean of the ``topk`` largest smoothed values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .schema import num

LOCAL_COMPONENTS = ("local_max", "local_topk")


@dataclass(frozen=True)
class LocalConfig:
    sigma: float = num(1.0, ge=0.0)  # Gaussian smoothing of the map, in pixels (0: none)
    topk: int = num(10, ge=1)        # local_topk: mean of this many largest smoothed pixels


def gaussian_blur(x: torch.Tensor, sigma: float, edges: str = "zeros") -> torch.Tensor:
    """Separable Gaussian smoothing of N x C x H x W images, each channel on its own; beyond the edges the
    image is taken as ``zeros`` or ``replicate``s its edge pixels."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    c = x.shape[1]
    pad = radius
    if edges == "replicate":
        x, pad = F.pad(x, (radius,) * 4, mode="replicate"), 0
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, pad), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(pad, 0), groups=c)


def smooth_maps(maps: torch.Tensor, config: LocalConfig) -> torch.Tensor:
    """N x H x W anomaly maps smoothed by the Gaussian the local scores read them with."""
    return gaussian_blur(maps[:, None].float(), config.sigma)[:, 0]


def read_local(smooth: torch.Tensor, config: LocalConfig) -> dict[str, torch.Tensor]:
    """``local_max`` and ``local_topk`` of already smoothed N x H x W maps."""
    flat = smooth.flatten(1)
    top = flat.topk(min(config.topk, flat.shape[1]), dim=1).values
    return {"local_max": top[:, 0], "local_topk": top.mean(1)}

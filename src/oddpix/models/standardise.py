"""Putting scores on one scale: each of several score components (or anomaly maps) standardised by the
mean and standard deviation of its values on the validation normals (z-scores), so that components in
different units can be combined (``fusion``: its members, ``ssl``: its views).

The statistics are two buffers of one entry per component, ``<name>_mean`` and ``<name>_std``
(:func:`register_scale`), stored with the weights, so a loaded model standardises as its evaluation did.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn


def register_scale(module: nn.Module, name: str, n: int) -> None:
    """Buffers ``<name>_mean`` (zeros) and ``<name>_std`` (ones) of ``n`` components on ``module``."""
    module.register_buffer(f"{name}_mean", torch.zeros(n))
    module.register_buffer(f"{name}_std", torch.ones(n))


def location_scale(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """components x samples -> each component's mean and standard deviation (1 for a single sample; at
    least 1e-12), in the values' dtype."""
    mean = values.mean(1)
    std = values.std(1) if values.shape[1] > 1 else torch.ones_like(mean)
    return mean, std.clamp_min(1e-12)


def standardised(values: Sequence[Optional[torch.Tensor]], mean: torch.Tensor,
                 std: torch.Tensor) -> list[torch.Tensor]:
    """``(value - mean) / std`` of each component in turn; a component without values (None) is left out."""
    return [(v - m) / s for v, m, s in zip(values, mean, std) if v is not None]

"""A Gaussian density of feature vectors, the score of a detector that learns features (``cutpaste``'s
GDE, Li et al. 2021; Rippel et al. 2020): the features' mean and a Ledoit-Wolf shrunk covariance (well
conditioned however few the samples), and a query's Mahalanobis distance to them.

The mean and the precision matrix are two buffers, ``<name>_mean`` and ``<name>_precision``
(:func:`register_gaussian`), stored with the weights.
"""

from __future__ import annotations

import torch
from torch import nn


def register_gaussian(module: nn.Module, name: str, dim: int) -> None:
    """Buffers ``<name>_mean`` (zeros) and ``<name>_precision`` (the identity) of a ``dim``-d Gaussian."""
    module.register_buffer(f"{name}_mean", torch.zeros(dim))
    module.register_buffer(f"{name}_precision", torch.eye(dim))


def ledoit_wolf(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """samples x features -> (mean, covariance shrunk towards a multiple of the identity by the Ledoit-Wolf
    amount, as scikit-learn's ``LedoitWolf``), computed in float64."""
    x = x.double()
    n, p = x.shape
    mean = x.mean(0)
    xc = x - mean
    cov = xc.T @ xc / n
    mu = torch.trace(cov) / p
    x2 = xc * xc
    beta_ = (x2.T @ x2).sum()
    delta_ = (cov * cov).sum()
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2 * mu * torch.trace(cov) + p * mu * mu) / p
    beta = torch.minimum(beta, delta)
    shrink = torch.where(delta > 0, beta / delta.clamp_min(1e-300), torch.zeros_like(delta))
    shrunk = (1 - shrink) * cov + shrink * mu * torch.eye(p, dtype=x.dtype, device=x.device)
    return mean, shrunk


def fit_gaussian(module: nn.Module, name: str, x: torch.Tensor) -> None:
    """Fill ``<name>_mean`` / ``<name>_precision`` from samples x features (a tiny ridge keeps a degenerate
    covariance invertible)."""
    mean, cov = ledoit_wolf(x)
    scale = torch.trace(cov) / len(cov)
    ridge = 1e-6 * (scale if scale > 0 else torch.ones_like(scale))
    precision = torch.linalg.inv(cov + ridge * torch.eye(len(cov), dtype=cov.dtype, device=cov.device))
    getattr(module, f"{name}_mean").copy_(mean.float())
    getattr(module, f"{name}_precision").copy_(((precision + precision.T) / 2).float())


def mahalanobis(module: nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
    """Each row's Mahalanobis distance to the Gaussian ``name`` (``rows x features`` -> ``rows``)."""
    d = x - getattr(module, f"{name}_mean")
    return ((d @ getattr(module, f"{name}_precision")) * d).sum(-1).clamp_min(0).sqrt()

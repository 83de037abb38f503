"""What every reconstruction autoencoder shares: loss, training step, scores, encode/reconstruct."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..schema import num
from ..training import TrainConfig
from .base import Detector


def bce_with_logits(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-pixel binary cross-entropy of ``logits`` against ``x``, written out as PyTorch computes it
    (``max(l, 0) - l x + log(1 + exp(-|l|))``, to ~1e-6): the scores use this form because an exported
    graph (onnxruntime) gets it right, while the exporter's translation of the built-in loses digits on
    strongly negative logits."""
    return F.relu(logits) - logits * x + torch.log1p(torch.exp(-logits.abs()))


@dataclass(frozen=True)
class AutoencoderConfig(TrainConfig):
    latent_dim: int = num(32, ge=1)
    loss: Literal["bce", "mse"] = "bce"
    output: Literal["sigmoid", "linear"] = "sigmoid"

    def problems(self) -> list[tuple[str, str]]:
        if self.loss == "bce" and self.output != "sigmoid":
            return [("loss", "'bce' needs output: sigmoid; valid choices with output: linear: mse")]
        return []


class AutoencoderDetector(Detector):
    """Subclasses build ``self.encoder`` (image -> latent) and ``self.decoder`` (latent -> logits)."""

    score_components = ("reconstruction", "bce", "mse")
    has_encoder = True
    has_maps = True
    encoder: nn.Module
    decoder: nn.Module

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def _output(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.config.output == "sigmoid" else logits

    def pixel_loss(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel training loss (binary cross-entropy on logits, or squared error)."""
        if self.config.loss == "bce":
            return F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        return (self._output(logits) - x).pow(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_logits(self.encoder(x))

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        return self.pixel_loss(self(batch), batch).mean()

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``reconstruction``: the training loss minus its floor, so a perfect reconstruction scores 0.

        For BCE that floor is the image's own pixel entropy: raw per-image BCE (kept as ``bce``) ranks
        images by how much grey they contain rather than by how badly they were reconstructed. The excess
        is the per-pixel KL divergence between Bernoulli(x) and Bernoulli(x_hat). ``mse`` is the squared
        error.
        """
        return self.reconstruction_scores(self(x), x)

    def reconstruction_scores(self, logits: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``reconstruction``, ``bce`` and ``mse`` of decoder output ``logits`` against ``x``."""
        dims = tuple(range(1, x.ndim))
        out = {"mse": (self._output(logits) - x).pow(2).mean(dim=dims)}
        if self.config.loss == "bce":
            bce = bce_with_logits(logits, x)
            out["bce"] = bce.mean(dim=dims)
            out["reconstruction"] = (bce - self._entropy(x)).mean(dim=dims)
        else:
            out["bce"] = F.binary_cross_entropy(self._output(logits).clamp(1e-6, 1 - 1e-6), x.clamp(0.0, 1.0),
                                                reduction="none").mean(dim=dims)
            out["reconstruction"] = out["mse"]
        return out

    @staticmethod
    def _entropy(x: torch.Tensor) -> torch.Tensor:
        """Per-pixel entropy of Bernoulli(x): the floor of the binary cross-entropy."""
        target = x.clamp(0.0, 1.0)
        return -(torch.xlogy(target, target) + torch.xlogy(1 - target, 1 - target))

    @torch.no_grad()
    def anomaly_map(self, x: torch.Tensor) -> torch.Tensor:
        """Per pixel, what ``reconstruction`` averages (excess BCE, or squared error), channels summed."""
        logits = self(x)
        if self.config.loss == "bce":
            excess = bce_with_logits(logits, x) - self._entropy(x)
        else:
            excess = (self._output(logits) - x).pow(2)
        return excess.sum(1)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).flatten(1)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        return self._output(self(x))


"""``ae_kde``: the convolutional autoencoder (:mod:`.cae`) whose latent codes get a kernel density estimate.

The encode stage fits the KDE on the training images' codes; an image is anomalous when its code's
density is too low or its reconstruction error too high: score components ``density`` and
``reconstruction`` with ``threshold.rule: dual`` (e.g. on cell images, Parasitized vs Uninfected). The
network and its knobs are the ``cae`` detector's; only the default ``latent_dim`` differs (16, not 32).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..schema import num
from .cae import CAEConfig, ConvAutoencoder
from .catalog import register


@dataclass(frozen=True)
class AEKDEConfig(CAEConfig):
    latent_dim: int = num(16, ge=1)


@register
class ConvAutoencoderKDE(ConvAutoencoder):
    """The ``cae`` network; ``needs_kde``: the run's decision uses the density of its codes."""

    name = "ae_kde"
    Config = AEKDEConfig
    needs_kde = True

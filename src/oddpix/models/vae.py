"""Convolutional variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").

Encoder: the conv stack of ``cae`` to the mean and log-variance of a Gaussian posterior q(z|x); decoder:
its mirror, Bernoulli (sigmoid, BCE) likelihood. Training maximizes the ELBO with the KL term really
active (weight ``beta``; PyOD's VAE clamps it to zero by default).

Score components (higher = more anomalous), all from the posterior mean z = mu (deterministic):

* ``elbo``: the negative ELBO per pixel above its floor: excess reconstruction BCE + beta * KL(q(z|x) ||
  N(0, I)) / pixels. A Bernoulli likelihood on grey pixels adds each image's own pixel entropy to the
  plain negative ELBO, which then ranks images by how much grey they hold rather than by how badly they
  were reconstructed; this score leaves that constant-per-image term out. Training is unaffected (the
  term has no gradient);
* ``reconstruction``: the excess BCE (KL between the pixels and their reconstruction, 0 when perfect);
* ``pixel_fraction``: the corrupted-letters score, the share of pixels whose absolute
  difference |x - x_hat| exceeds ``pixel_threshold`` (sum of anomalous pixels / pixel count);
* ``mse``: squared error; ``bce``: raw BCE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..schema import items, num
from .autoencoder import AutoencoderConfig, AutoencoderDetector
from .blocks import ConvStyle, conv_decoder, conv_encoder
from .catalog import register


@dataclass(frozen=True)
class VAEConfig(AutoencoderConfig):
    channels: list[int] = items([32, 64], ge=1, min_len=1)
    latent_dim: int = num(16, ge=1)
    beta: float = num(1.0, ge=0.0)
    pixel_threshold: float = num(0.2, gt=0.0, lt=1.0)
    batchnorm: bool = False


@register
class ConvVAE(AutoencoderDetector):
    name = "vae"
    Config = VAEConfig
    score_components = ("elbo", "reconstruction", "pixel_fraction", "bce", "mse")

    def __init__(self, config: VAEConfig, input_shape: tuple[int, int, int]):
        super().__init__(config, input_shape)
        style = ConvStyle(batchnorm=config.batchnorm)
        self.encoder, sizes = conv_encoder(self.input_shape, config.channels, 2 * config.latent_dim, style)
        self.decoder = conv_decoder(config.latent_dim, self.input_shape[0], config.channels, sizes, style)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the reconstruction from the posterior mean."""
        return self.decoder(self.posterior(x)[0])

    @staticmethod
    def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(mu, exp(logvar)) || N(0, I)) per image."""
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)

    def elbo_loss(self, x: torch.Tensor, sample: bool) -> torch.Tensor:
        """Negative ELBO per pixel, per image (z sampled for training, the posterior mean otherwise)."""
        mu, logvar = self.posterior(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        return self._neg_elbo(self.decoder(z), x, mu, logvar)

    def _neg_elbo(self, logits, x, mu, logvar) -> torch.Tensor:
        recon = self.pixel_loss(logits, x).flatten(1).sum(1)
        return (recon + self.config.beta * self.kl(mu, logvar)) / x[0].numel()

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        """The negative ELBO: z sampled while training, the posterior mean for validation."""
        return self.elbo_loss(batch, sample=self.training).mean()

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.posterior(x)
        logits = self.decoder(mu)
        out = self.reconstruction_scores(logits, x)
        recon = self._output(logits)
        out["pixel_fraction"] = ((x - recon).abs() > self.config.pixel_threshold).flatten(1).float().mean(1)
        out["elbo"] = out["reconstruction"] + self.config.beta * self.kl(mu, logvar) / x[0].numel()
        return out

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x)[0]

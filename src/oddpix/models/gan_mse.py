"""``gan_mse``: a plain adversarial-autoencoder baseline for ``ganomaly``, every loss a mean squared error.

The generator is the shared DCGAN encoder-decoder and the discriminator the shared DCGAN one
(:mod:`.gan`); the generator's loss is ``w_rec`` * MSE(x, x_hat) (reconstruction) + ``w_adv`` * a
least-squares adversarial loss (D's sigmoid output on x_hat against 1), the discriminator's the
least-squares loss of real against reconstructed images. Early stopping watches the reconstruction MSE
on the validation normals. Score ``reconstruction``: the per-image mean squared reconstruction error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..schema import num
from ..training import optimize
from .base import Phase
from .catalog import register
from .gan import AdversarialBase, GANConfig


@dataclass(frozen=True)
class GANMSEConfig(GANConfig):
    """The shared GAN knobs (:class:`~.gan.GANConfig`) and ``w_rec``, the reconstruction loss's weight."""

    w_rec: float = num(50.0, ge=0.0)


@register
class GANMSE(AdversarialBase):
    name = "gan_mse"
    Config = GANMSEConfig
    score_components = ("reconstruction",)

    def training_step(self, batch: torch.Tensor, phase: Phase) -> dict[str, float]:
        opt_g, opt_d = phase.optimizers
        cfg = self.config
        g = self.to_gan(batch)
        fake = self.decoder(self.encoder(g))
        fake_logit, _ = self.discriminator(fake)
        rec = F.mse_loss(fake, g)
        adv = F.mse_loss(torch.sigmoid(fake_logit), torch.ones_like(fake_logit))
        loss_g = cfg.w_rec * rec + cfg.w_adv * adv
        optimize(opt_g, loss_g)
        real_logit, _ = self.discriminator(g)
        fake_logit, _ = self.discriminator(fake.detach())
        loss_d = 0.5 * (F.mse_loss(torch.sigmoid(real_logit), torch.ones_like(real_logit))
                        + F.mse_loss(torch.sigmoid(fake_logit), torch.zeros_like(fake_logit)))
        optimize(opt_d, loss_d)
        self._after_step()
        return {"loss": loss_g.item(), "loss_d": loss_d.item(), "rec": rec.item(), "adv": adv.item()}

    def validation_loss(self, batch: torch.Tensor) -> torch.Tensor:
        g = self.to_gan(batch)
        return F.mse_loss(self.decoder(self.encoder(g)), g)

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"reconstruction": (self.reconstruct(x) - x).pow(2).flatten(1).mean(1)}

"""GANomaly (Akcay, Atapour-Abarghouei & Breckon 2018, "GANomaly: Semi-Supervised Anomaly Detection via
Adversarial Training", ACCV): the ``ganomaly`` detector.

The generator is an encoder-decoder-encoder (G_E: x -> z, G_D: z -> x_hat, E: x_hat -> z_hat) with DCGAN
blocks; a DCGAN discriminator D sees x and x_hat. Generator loss = ``w_adv`` * ||f(x) - f(x_hat)||^2
(feature matching on D's last feature map) + ``w_con`` * |x - x_hat|_1 (contextual) + ``w_enc`` *
||z - z_hat||^2 (encoder), defaults 1 / 50 / 1 as in the paper; D is trained with binary cross-entropy
and re-initialized when its loss collapses (< 1e-5), as in the reference code. Anomaly score: the latent
distance ||z - z_hat||^2 (``latent``); ``reconstruction`` (|x - x_hat|) too. The shared GAN machinery
and knobs (padding, optimizers, sample grids): :mod:`.gan`.

Deviations from the reference implementation, on purpose: the model is in ``eval()`` mode when scoring
(the reference scored in train mode, so BatchNorm used test-batch statistics), the epoch is chosen on the
validation normals' generator loss and never on test AUROC (the reference kept the weights with the best
*test* AUC), and images of any size are zero-padded to the next multiple of 16 for the DCGAN blocks.
Defaults: 32 base channels and 30 epochs (the paper: 64 and 15).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..schema import num
from ..training import optimize
from .base import Phase
from .blocks import dcgan_encoder, dcgan_init
from .catalog import register
from .gan import AdversarialBase, GANConfig


@dataclass(frozen=True)
class GANomalyConfig(GANConfig):
    w_con: float = num(50.0, ge=0.0)
    w_enc: float = num(1.0, ge=0.0)


@register
class GANomaly(AdversarialBase):
    name = "ganomaly"
    Config = GANomalyConfig
    score_components = ("latent", "reconstruction")

    def __init__(self, config: GANomalyConfig, input_shape: tuple[int, int, int]):
        super().__init__(config, input_shape)
        self.encoder2 = nn.Sequential(*dcgan_encoder(self.size, self.input_shape[0], config.base_channels,
                                                     config.latent_dim))
        self.encoder2.apply(dcgan_init)

    def generate(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z, x_hat, z_hat) for images ``g`` in GAN space."""
        z = self.encoder(g)
        fake = self.decoder(z)
        return z, fake, self.encoder2(fake)

    def generator_losses(self, g: torch.Tensor) -> tuple[torch.Tensor, dict, torch.Tensor]:
        cfg = self.config
        z, fake, z_hat = self.generate(g)
        _, feat_real = self.discriminator(g)
        _, feat_fake = self.discriminator(fake)
        adv = (feat_real.detach() - feat_fake).pow(2).mean()
        con = (g - fake).abs().mean()
        enc = (z - z_hat).pow(2).mean()
        total = cfg.w_adv * adv + cfg.w_con * con + cfg.w_enc * enc
        return total, {"adv": adv.item(), "con": con.item(), "enc": enc.item()}, fake

    def training_step(self, batch: torch.Tensor, phase: Phase) -> dict[str, float]:
        opt_g, opt_d = phase.optimizers
        g = self.to_gan(batch)
        loss_g, parts, fake = self.generator_losses(g)
        optimize(opt_g, loss_g)
        real_logit, _ = self.discriminator(g)
        fake_logit, _ = self.discriminator(fake.detach())
        loss_d = 0.5 * (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
                        + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))
        optimize(opt_d, loss_d)
        if loss_d.item() < 1e-5:  # the discriminator won outright: start it again (reference behaviour)
            self.discriminator.apply(dcgan_init)
        self._after_step()
        return {"loss": loss_g.item(), "loss_d": loss_d.item(), **parts}

    def validation_loss(self, batch: torch.Tensor) -> torch.Tensor:
        g = self.to_gan(batch)
        z, fake, z_hat = self.generate(g)
        return self.config.w_con * (g - fake).abs().mean() + self.config.w_enc * (z - z_hat).pow(2).mean()

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        g = self.to_gan(x)
        z, fake, z_hat = self.generate(g)
        return {"latent": (z - z_hat).pow(2).flatten(1).mean(1),
                "reconstruction": (self.from_gan(fake) - x).abs().flatten(1).mean(1)}

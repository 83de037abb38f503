"""Adversarial autoencoder with robust training (Beggel, Pfeiffer & Bischl 2019, "Robust Anomaly Detection
in Images using Adversarial Autoencoders", ECML-PKDD; after Makhzani et al. 2016).

A conv autoencoder whose latent codes are pushed towards a prior N(0, I) by a discriminator on the latent
space: each batch has a reconstruction phase (encoder + decoder, BCE) and a regularization phase (the
discriminator learns prior samples vs codes, the encoder learns to fool it). With the prior in place,
normal images have likely codes and anomalies tend to land in low-likelihood regions.

Robust training (the paper's iterative training-set refinement): after ``warmup_epochs``, every
``refine_every`` epochs the ``reject_fraction`` share of training images (ideally the expected
contamination) that look most anomalous are left out of the following epochs as suspected anomalies.
With ``reject_fraction: 0`` it is a plain adversarial autoencoder.

Deviation: the paper rejects by the codes' likelihood under the prior (``reject_by: prior``). The
encoder can map unfamiliar images towards the prior's centre, so that contaminating anomalies get codes
*more* likely under N(0, I) than the normal images', while their excess reconstruction error still gives
them away. The default is therefore ``reject_by: reconstruction``; ``prior`` and ``combined`` (both
standardized and added) are available.

Knobs: ``channels`` and ``latent_dim`` (the conv autoencoder), ``disc_hidden`` (the latent
discriminator's hidden width), ``w_adv`` (the weight of fooling it in the encoder's loss), and the robust
training's ``reject_fraction``, ``reject_by``, ``warmup_epochs`` and ``refine_every``.

Score components: ``reconstruction`` (excess BCE), ``prior`` (-log N(z; 0, I), the code's unlikeliness),
``combined`` (both standardized on the training images and added), ``bce``, ``mse``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import batched
from ..schema import items, num
from ..training import FitContext, optimize
from .autoencoder import AutoencoderConfig, AutoencoderDetector
from .base import FitData, Phase
from .blocks import conv_decoder, conv_encoder
from .catalog import register


@dataclass(frozen=True)
class AAEConfig(AutoencoderConfig):
    channels: list[int] = items([32, 64], ge=1, min_len=1)
    latent_dim: int = num(16, ge=1)
    disc_hidden: int = num(128, ge=1)
    w_adv: float = num(1.0, ge=0.0)
    reject_fraction: float = num(0.1, ge=0.0, lt=0.5)
    reject_by: Literal["reconstruction", "prior", "combined"] = "reconstruction"
    warmup_epochs: int = num(5, ge=0)
    refine_every: int = num(3, ge=1)
    patience: int = num(50, ge=1)


@register
class AdversarialAutoencoder(AutoencoderDetector):
    name = "aae"
    Config = AAEConfig
    score_components = ("reconstruction", "prior", "combined", "bce", "mse")

    def __init__(self, config: AAEConfig, input_shape: tuple[int, int, int]):
        super().__init__(config, input_shape)
        self.encoder, sizes = conv_encoder(self.input_shape, config.channels, config.latent_dim)
        self.decoder = conv_decoder(config.latent_dim, self.input_shape[0], config.channels, sizes)
        self.discriminator = nn.Sequential(
            nn.Linear(config.latent_dim, config.disc_hidden), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(config.disc_hidden, config.disc_hidden), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(config.disc_hidden, 1))
        # standardization of the two scores on the training images, for ``combined``
        self.register_buffer("score_stats", torch.tensor([0.0, 1.0, 0.0, 1.0]))

    def prior_nll(self, z: torch.Tensor) -> torch.Tensor:
        """-log N(z; 0, I) per code."""
        return 0.5 * (z.pow(2).sum(1) + z.shape[1] * math.log(2 * math.pi))

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """Autoencoder (reconstruction phase), discriminator, and the encoder as generator."""
        cfg = self.config
        ae_params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        return [torch.optim.Adam(ae_params, lr=cfg.lr, weight_decay=cfg.weight_decay),
                torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr),
                torch.optim.Adam(self.encoder.parameters(), lr=cfg.lr)]

    def training_step(self, batch: torch.Tensor, phase: Phase) -> dict[str, float]:
        opt_ae, opt_d, opt_g = phase.optimizers
        rec = self.loss(batch)  # reconstruction phase
        optimize(opt_ae, rec)
        z = self.encoder(batch)  # regularization phase: discriminator, then encoder as generator
        prior = torch.randn(z.shape, device=z.device)
        d_real, d_fake = self.discriminator(prior), self.discriminator(z.detach())
        loss_d = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + \
            F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        optimize(opt_d, loss_d)
        d_gen = self.discriminator(z)
        loss_g = self.config.w_adv * F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
        optimize(opt_g, loss_g)
        return {"loss": rec.item(), "loss_d": loss_d.item(), "loss_g": loss_g.item()}

    def _rounds(self) -> list[int]:
        """Epochs per round: warm-up on everything, then a refined training set before each further round."""
        cfg = self.config
        if cfg.reject_fraction == 0:
            return [cfg.epochs]
        schedule = [min(cfg.warmup_epochs or cfg.refine_every, cfg.epochs)]
        while sum(schedule) < cfg.epochs:
            schedule.append(min(cfg.refine_every, cfg.epochs - sum(schedule)))
        return schedule

    def phases(self, data: FitData, ctx: FitContext) -> Iterator[Phase]:
        keep = torch.ones(len(data.train_x), dtype=torch.bool)
        for i, epochs in enumerate(self._rounds()):
            if i > 0:
                keep = self._refine(data.train_x, ctx)
                ctx.log(f"{self.name} robust training: leaving out {int((~keep).sum())} of {len(keep)} training "
                        "images with the least likely codes")
            yield Phase(epochs, train=data.train_x[keep], tags={"kept": int(keep.sum())})
        self._fit_score_stats(data.train_x[keep], ctx)
        self.fit_report = {"rejected_train": int((~keep).sum())}
        if data.train_y is not None and int(data.train_y.sum()) > 0:  # how many rejected were real anomalies
            self.fit_report["rejected_true_anomalies"] = int(data.train_y[~keep].sum())

    def _refine(self, train_x: torch.Tensor, ctx: FitContext) -> torch.Tensor:
        """Keep-mask of the training images: the ``reject_fraction`` most suspicious ones are left out."""
        self._fit_score_stats(train_x, ctx)
        scores = batched(self.score, train_x, 1024, ctx.device)[self.config.reject_by]
        n_reject = int(round(len(scores) * self.config.reject_fraction))
        keep = torch.ones(len(scores), dtype=torch.bool)
        if n_reject:
            keep[torch.topk(scores, n_reject).indices] = False
        return keep

    @torch.no_grad()
    def _fit_score_stats(self, train_x: torch.Tensor, ctx: FitContext) -> None:
        self.eval()
        rec, prior = batched(lambda b: torch.stack(self._raw_scores(b)[:2], 1), train_x, 1024, ctx.device).unbind(1)
        self.score_stats.copy_(torch.tensor([rec.mean(), rec.std().clamp_min(1e-8), prior.mean(),
                                             prior.std().clamp_min(1e-8)], device=self.score_stats.device))

    def _raw_scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        z = self.encoder(x)
        out = self.reconstruction_scores(self.decoder(z), x)
        return out["reconstruction"], self.prior_nll(z), out

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        rec, prior, out = self._raw_scores(x)
        m_r, s_r, m_p, s_p = self.score_stats
        out["prior"] = prior
        out["combined"] = (rec - m_r) / s_r + (prior - m_p) / s_p
        return out

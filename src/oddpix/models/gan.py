"""What the two adversarial detectors (``ganomaly``, ``gan_mse``) share: a DCGAN encoder-decoder generator
and discriminator (:mod:`.blocks`), images zero-padded to the next multiple of 16 and scaled from [0, 1] to
[-1, 1], one Adam optimizer for the generator and one for the discriminator (DCGAN's ``beta1``), and a
grid of sample reconstructions every ``sample_every`` batches (``plots/samples/``; 0: none).

Knobs: ``latent_dim`` (the generator's code size), ``base_channels`` (the DCGAN blocks' width: the first
encoder layer's channels, doubled at each halving of the image), ``w_adv`` (the weight of the adversarial
loss in the generator's objective), ``lr`` and ``beta1`` (Adam), and the training loop's ``epochs``,
``batch_size`` and ``patience``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..schema import num
from ..training import FitContext, TrainConfig
from .base import Detector, FitData, Phase
from .blocks import Discriminator, dcgan_decoder, dcgan_encoder, dcgan_init


@dataclass(frozen=True)
class GANConfig(TrainConfig):
    """What both adversarial models share: DCGAN sizes, Adam with beta1, sample grids."""

    latent_dim: int = num(100, ge=1)
    base_channels: int = num(32, ge=4)
    w_adv: float = num(1.0, ge=0.0)
    lr: float = num(2e-4, gt=0.0)
    beta1: float = num(0.5, ge=0.0, lt=1.0)
    epochs: int = num(30, ge=1)
    batch_size: int = num(64, ge=2)
    patience: int = num(30, ge=1)
    sample_every: int = num(200, ge=0)


def _padded(size: int) -> int:
    return max(16, int(math.ceil(size / 16)) * 16)


class AdversarialBase(Detector):
    """Padding, [0, 1] <-> [-1, 1] scaling, the discriminator, sample grids: what both GAN models share."""

    has_encoder = True
    has_maps = True  # squared reconstruction error (the base class's map)

    def __init__(self, config, input_shape: tuple[int, int, int]):
        super().__init__(config, input_shape)
        c, h, w = self.input_shape
        self.size = _padded(max(h, w))
        self.pad = (0, self.size - w, 0, self.size - h)
        self.encoder = nn.Sequential(*dcgan_encoder(self.size, c, config.base_channels, config.latent_dim))
        self.decoder = dcgan_decoder(self.size, c, config.base_channels, config.latent_dim)
        self.discriminator = Discriminator(self.size, c, config.base_channels)
        self.apply(dcgan_init)

    def to_gan(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x * 2.0 - 1.0, self.pad, value=-1.0)

    def from_gan(self, t: torch.Tensor) -> torch.Tensor:
        h, w = self.input_shape[1:]
        return ((t[..., :h, :w] + 1.0) / 2.0).clamp(0.0, 1.0)

    def generator_parameters(self):
        return [p for n, p in self.named_parameters() if not n.startswith("discriminator.")]

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """Generator (every network but the discriminator), discriminator; Adam with DCGAN's beta1."""
        betas = (self.config.beta1, 0.999)
        return (torch.optim.Adam(self.generator_parameters(), lr=self.config.lr, betas=betas),
                torch.optim.Adam(self.discriminator.parameters(), lr=self.config.lr, betas=betas))

    def phases(self, data: FitData, ctx: FitContext) -> Iterator[Phase]:
        self._steps = 0
        every = self.config.sample_every
        self._fixed = None
        if every and ctx.sample_dir is not None:  # a fixed validation batch, for the sample grids
            self._fixed = (data.normal_val_x() if data.val_x is not None else data.train_x)[:8].to(ctx.device)
            self._sample_dir = ctx.sample_dir
        yield from super().phases(data, ctx)

    def _after_step(self) -> None:
        """Counts steps; every ``sample_every`` of them saves originals vs reconstructions (plots/samples/)."""
        self._steps += 1
        if self._fixed is None or self._steps % self.config.sample_every:
            return
        from ..figures import save_reconstruction_samples

        was_training = self.training
        self.eval()
        recon = self.reconstruct(self._fixed)
        self.train(was_training)
        save_reconstruction_samples(self._sample_dir / f"{self.name}_step{self._steps:06d}.png", self._fixed, recon,
                                    f"step {self._steps}")

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        return self.from_gan(self.decoder(self.encoder(self.to_gan(x))))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.to_gan(x)).flatten(1)

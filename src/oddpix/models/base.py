"""The one interface every detector implements.

A detector is a ``torch.nn.Module`` with:

* ``Config``: a frozen dataclass of its architecture and training knobs (``models.<name>`` in params);
* ``fit(data, ctx)``: train on ``data.train_x`` (and ``data.val_x`` for early stopping); returns history;
* ``score(x)``: a batch of images -> named per-image score components, higher = more anomalous;
* ``encode(x)``: latent codes, for detectors with an encoder (``has_encoder``);
* ``reconstruct(x)``: images in input space, for detectors that reconstruct (``None`` otherwise);
* ``supervised``: it needs labelled anomalies in training (``data.contamination``);
* ``needs_kde``: its decision uses the pipeline's KDE on its latent codes;
* ``fit_report``: extra training results (e.g. cross-validation) for ``metrics/train.json``.

Saving and loading go through :func:`oddpix.models.save_detector` / :func:`load_detector`, which store the
weights together with the settings that built them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
from torch import nn

from ..training import FitContext


@dataclass
class FitData:
    train_x: torch.Tensor
    val_x: Optional[torch.Tensor] = None
    train_y: Optional[torch.Tensor] = None
    val_y: Optional[torch.Tensor] = None

    def normal_val_x(self) -> Optional[torch.Tensor]:
        """The normal validation images: what an unsupervised model may early-stop on."""
        if self.val_x is None or self.val_y is None:
            return self.val_x
        return self.val_x[self.val_y == 0]


class Detector(nn.Module):
    name: ClassVar[str]
    Config: ClassVar[type]
    score_components: ClassVar[tuple[str, ...]]
    has_encoder: ClassVar[bool] = False
    supervised: ClassVar[bool] = False
    needs_kde: ClassVar[bool] = False

    def __init__(self, config, input_shape: tuple[int, int, int]):
        super().__init__()
        self.config = config
        self.input_shape = tuple(int(s) for s in input_shape)
        self.fit_report: dict = {}

    def fit(self, data: FitData, ctx: FitContext) -> list[dict]:
        raise NotImplementedError

    def score(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} has no encoder")

    def reconstruct(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        return None

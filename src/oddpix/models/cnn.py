"""Supervised CNN classifier, normal vs anomaly (e.g. MNIST with digit 0 normal and the rest anomalous).

It needs labelled anomalies in the training split: ``data.contamination`` puts that share of anomalies
(labelled ``y = 1``) into it, and ``data.val_anomaly_fraction`` into validation for early stopping on a
two-class loss. The binary cross-entropy weighs each class inversely to its count
(w_c = N / (2 N_c)), so a rare anomaly class counts as much as the normal class. Early stopping on the
validation loss. With ``folds: k`` (k >= 2) a stratified k-fold cross-validation on the training split
runs first and reports each fold's held-out AUROC (mean and std in ``metrics/train.json``); the model
that is saved is then trained on the whole training split.

Score component: ``probability``, the predicted probability of being an anomaly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import OddpixError
from ..schema import items, num
from ..training import FitContext, TrainConfig
from .base import Detector, FitData, Phase
from .blocks import ConvStyle, conv_block
from .catalog import register


@dataclass(frozen=True)
class CNNConfig(TrainConfig):
    channels: list[int] = items([32, 64], ge=1, min_len=1)
    hidden: int = num(128, ge=1)
    dropout: float = num(0.25, ge=0.0, lt=1.0)
    folds: int = num(0, ge=0, le=20)

    def problems(self) -> list[tuple[str, str]]:
        if self.folds == 1:
            return [("folds", "1 is not valid; use 0 (no cross-validation) or k >= 2")]
        return []


def class_weights(y: torch.Tensor) -> torch.Tensor:
    """Per-sample weights N / (2 N_c): each class contributes half of the loss."""
    y = y.long()
    counts = torch.bincount(y, minlength=2).clamp_min(1).float()
    return (len(y) / (2.0 * counts))[y]


@register
class SupervisedCNN(Detector):
    name = "cnn"
    Config = CNNConfig
    score_components = ("probability",)
    supervised = True

    def __init__(self, config: CNNConfig, input_shape: tuple[int, int, int]):
        super().__init__(config, input_shape)
        c, h, w = self.input_shape
        layers: list[nn.Module] = []
        for ch in config.channels:
            layers += conv_block(c, ch, ConvStyle(batchnorm=True)) + [nn.MaxPool2d(2, ceil_mode=True)]
            h, w, c = (h + 1) // 2, (w + 1) // 2, ch
        layers += [nn.Flatten(), nn.Dropout(config.dropout), nn.Linear(c * h * w, config.hidden),
                   nn.ReLU(inplace=True), nn.Dropout(config.dropout), nn.Linear(config.hidden, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()

    def loss(self, batch: tuple) -> torch.Tensor:
        """Binary cross-entropy, each image weighted so that both classes count equally."""
        images, labels, weights = batch
        return (F.binary_cross_entropy_with_logits(self(images), labels, reduction="none") * weights).mean()

    def train_data(self, data: FitData) -> tuple:
        return data.train_x, data.train_y.float(), class_weights(data.train_y)

    def val_data(self, data: FitData) -> Optional[tuple]:
        """All validation images, anomalies too: early stopping on the two-class loss."""
        if data.val_x is None or data.val_y is None:
            return None
        return data.val_x, data.val_y.float(), class_weights(data.val_y)

    def phases(self, data: FitData, ctx: FitContext) -> Iterator[Phase]:
        if self.config.folds >= 2:
            self.fit_report = self.cross_validate(data, ctx)
        yield from super().phases(data, ctx)

    def cross_validate(self, data: FitData, ctx: FitContext) -> dict:
        """Stratified k-fold on the training split: each fold trains a fresh model on the others."""
        from sklearn.metrics import roc_auc_score

        k = self.config.folds
        y = data.train_y.numpy()
        rng = np.random.default_rng(int(torch.randint(0, 2 ** 31 - 1, (1,), generator=ctx.generator)))
        fold_of = np.empty(len(y), dtype=int)
        for label in (0, 1):  # deal each class's shuffled members round-robin into the folds
            members = rng.permutation(np.flatnonzero(y == label))
            fold_of[members] = np.arange(len(members)) % k
        if np.bincount(y, minlength=2).min() < k:
            raise OddpixError(f"models.cnn.folds: {k} folds need at least {k} images of each class in training; "
                              "raise data.contamination or lower folds")
        aurocs = []
        for fold in range(k):
            held = torch.from_numpy(fold_of == fold)
            model = SupervisedCNN(replace(self.config, folds=0), self.input_shape)
            quiet = replace(ctx, log=lambda _msg: None, progress=False)
            model.fit(FitData(data.train_x[~held], data.train_x[held], data.train_y[~held], data.train_y[held]), quiet)
            scores = model.score(data.train_x[held].to(ctx.device))["probability"].cpu().numpy()
            aurocs.append(float(roc_auc_score(data.train_y[held].numpy(), scores)))
            ctx.log(f"{self.name} cross-validation fold {fold + 1}/{k}: held-out AUROC {aurocs[-1]:.4f}")
        report = {"cv_folds": k, "cv_auroc_mean": float(np.mean(aurocs)), "cv_auroc_std": float(np.std(aurocs)),
                  **{f"cv_auroc_fold{i + 1}": a for i, a in enumerate(aurocs)}}
        ctx.log(f"{self.name} cross-validation: AUROC {report['cv_auroc_mean']:.4f} +- {report['cv_auroc_std']:.4f}")
        return report

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"probability": torch.sigmoid(self(x))}

"""The one path from preprocessed images to score components, shared by the score stage, ``oddpix
predict`` and the benchmarks: the detector's own components in batches, plus ``density`` (minus the log
density of the image's latent code under the KDE the encode stage fitted) when there is a KDE."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .density import LatentKDE
from .runtime import batched
from .schema import num


@dataclass(frozen=True)
class ScoreConfig:
    component: str = "auto"  # auto: the detector's primary score (its first score component)
    batch_size: int = num(512, ge=1)


def score_components(detector: torch.nn.Module, x: torch.Tensor, kde: Optional[LatentKDE] = None,
                     batch_size: int = 512, device: Optional[torch.device] = None,
                     codes: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
    """Every score component of the images ``x`` (N x C x H x W), higher = more anomalous, on the CPU.

    ``codes``: the images' latent codes when already computed (the encode stage stores them); else they
    are encoded here, in the same batches.
    """
    comps = batched(detector.score, x, batch_size, device)
    if kde is not None:
        if codes is None:
            codes = batched(detector.encode, x, batch_size, device)
        comps["density"] = -kde.log_density(codes)
    return comps

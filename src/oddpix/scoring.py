"""The one path from preprocessed images to score components, shared by the score stage, ``oddpix
predict`` and the benchmarks: the detector's own components in batches, the local components read from
its anomaly maps (``local_max``, ``local_topk``; :mod:`oddpix.maps`) when it has maps, plus ``density``
(minus the log density of the image's latent code under the KDE the encode stage fitted) when there is
a KDE."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .density import LatentKDE
from .maps import LocalConfig, gaussian_blur, local_scores
from .runtime import batched
from .schema import num, section


@dataclass(frozen=True)
class ScoreConfig:
    component: str = "auto"  # auto: the detector's primary score (its first score component)
    batch_size: int = num(512, ge=1)
    local: LocalConfig = section(LocalConfig)  # local_max / local_topk from the anomaly maps


def score_components(detector: torch.nn.Module, x: torch.Tensor, kde: Optional[LatentKDE] = None,
                     batch_size: int = 512, device: Optional[torch.device] = None,
                     codes: Optional[torch.Tensor] = None, local: LocalConfig = LocalConfig()
                     ) -> dict[str, torch.Tensor]:
    """Every score component of the images ``x`` (N x C x H x W), higher = more anomalous, on the CPU.

    ``codes``: the images' latent codes when already computed (the encode stage stores them); else they
    are encoded here, in the same batches.
    """
    def score(batch: torch.Tensor) -> dict[str, torch.Tensor]:
        if not getattr(detector, "has_maps", False):
            return detector.score(batch)
        out, maps = detector.score_and_map(batch)
        return {**out, **local_scores(maps, local)}

    comps = batched(score, x, batch_size, device)
    if kde is not None:
        if codes is None:
            codes = batched(detector.encode, x, batch_size, device)
        comps["density"] = -kde.log_density(codes)
    return comps


def anomaly_maps(detector: torch.nn.Module, x: torch.Tensor, batch_size: int = 512,
                 device: Optional[torch.device] = None, local: LocalConfig = LocalConfig()) -> torch.Tensor:
    """The detector's anomaly maps of ``x``, smoothed as the local scores read them: N x H x W on the CPU."""
    def smoothed(batch: torch.Tensor) -> torch.Tensor:
        return gaussian_blur(detector.anomaly_map(batch)[:, None].float(), local.sigma)[:, 0]

    return batched(smoothed, x, batch_size, device)

"""The one path from preprocessed images to score components, shared by the score stage, ``oddpix
predict`` and the benchmarks: the detector's own components in batches, the local components read from
its anomaly maps (``local_max``, ``local_topk``; :mod:`oddpix.maps`) when it has maps, plus ``density``
(minus the log density of the image's latent code under the KDE the encode stage fitted) when there is
a KDE."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .density import LatentKDE
from .maps import LocalConfig, read_local, smooth_maps
from .runtime import batched
from .schema import num, section


_MAPS = "\0maps"  # the maps travel through ``batched`` beside the components, under a name no component has


def full_batches(fn: Callable, batch_size: int) -> Callable:
    """``fn`` always sees ``batch_size`` images: a short last batch is padded (its last image repeated) and
    the padding's outputs dropped. The kernels then run with the same shapes whatever else is scored, so an
    image's score does not depend on the other images of the call (to the last digit)."""

    def run(batch: torch.Tensor):
        n = len(batch)
        if n < batch_size:
            batch = torch.cat([batch, batch[-1:].expand(batch_size - n, *batch.shape[1:])])
        out = fn(batch)
        return {k: v[:n] for k, v in out.items()} if isinstance(out, dict) else out[:n]

    return run


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
    return score_with_maps(detector, x, kde, batch_size, device, codes, local, keep_maps=False)[0]


def score_with_maps(detector: torch.nn.Module, x: torch.Tensor, kde: Optional[LatentKDE] = None,
                    batch_size: int = 512, device: Optional[torch.device] = None,
                    codes: Optional[torch.Tensor] = None, local: LocalConfig = LocalConfig(),
                    keep_maps: bool = True) -> tuple[dict[str, torch.Tensor], Optional[torch.Tensor]]:
    """:func:`score_components` and, for a detector with maps and ``keep_maps``, its smoothed anomaly
    maps (N x H x W) from the same pass: each map is computed and smoothed once."""
    def score(batch: torch.Tensor) -> dict[str, torch.Tensor]:
        out, smooth = batch_components(detector, batch, local)
        return {**out, **({_MAPS: smooth} if keep_maps and smooth is not None else {})}

    comps = batched(full_batches(score, batch_size), x, batch_size, device)
    maps = comps.pop(_MAPS, None)
    if kde is not None:
        if codes is None:
            codes = batched(full_batches(detector.encode, batch_size), x, batch_size, device)
        comps["density"] = -kde.log_density(codes)
    return comps, maps


def batch_components(detector: torch.nn.Module, batch: torch.Tensor, local: LocalConfig = LocalConfig()
                     ) -> tuple[dict[str, torch.Tensor], Optional[torch.Tensor]]:
    """One batch's own score components and, for a detector with maps, the local ones read from its smoothed
    maps, with those maps (None without maps): what :func:`score_with_maps` and an exported graph compute."""
    if not getattr(detector, "has_maps", False):
        return detector.score(batch), None
    out, maps = detector.score_and_map(batch)
    smooth = smooth_maps(maps, local)
    return {**out, **read_local(smooth, local)}, smooth


def anomaly_maps(detector: torch.nn.Module, x: torch.Tensor, batch_size: int = 512,
                 device: Optional[torch.device] = None, local: LocalConfig = LocalConfig()) -> torch.Tensor:
    """The detector's anomaly maps of ``x``, smoothed as the local scores read them: N x H x W on the CPU."""
    return batched(full_batches(lambda batch: smooth_maps(detector.anomaly_map(batch), local), batch_size), x,
                   batch_size, device)

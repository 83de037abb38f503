"""Normalization, resizing and channel conversion, fitted on the training split only.

``local`` (local contrast normalisation) takes the lighting out of photos: every pixel minus the Gaussian
mean of its neighbourhood (std ``local_sigma`` px), divided by the neighbourhood's Gaussian std (plus a
fifth of the image's mean local std, so flat regions are not blown up into noise). A tile photographed
under six lightings then looks alike six times; a dark pit stays a dark pit. It suits the distance
detectors (knn, patch_knn, ssl) and synth_seg; values are unbounded, so not for a BCE loss.

A :class:`Preprocessor` is fitted once (``standardize`` statistics come from the training normals),
saved as a small dict, and stored with the model weights so that scoring a new image later applies
exactly the same transform as evaluation did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .data.folder import CHANNELS_PROBLEM, MAX_IMAGE_SIDE
from .schema import num


@dataclass(frozen=True)
class PreprocessConfig:
    normalize: Literal["unit", "standardize", "local"] = "unit"
    local_sigma: float = num(8.0, gt=0.0, le=64.0)
    image_size: Optional[int] = num(None, ge=4, le=MAX_IMAGE_SIDE)
    channels: Optional[int] = num(None, ge=1, le=3)

    def problems(self) -> list[tuple[str, str]]:
        return [("channels", CHANNELS_PROBLEM)] if self.channels == 2 else []


@dataclass
class Preprocessor:
    normalize: str = "unit"
    image_size: Optional[int] = None
    channels: Optional[int] = None
    local_sigma: float = 8.0
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    source_size: Optional[list[int]] = None  # H, W of the images fit saw (as read from their files)

    @classmethod
    def from_config(cls, cfg: PreprocessConfig) -> "Preprocessor":
        return cls(normalize=cfg.normalize, image_size=cfg.image_size, channels=cfg.channels,
                   local_sigma=cfg.local_sigma)

    def to_dict(self) -> dict:
        return {"normalize": self.normalize, "image_size": self.image_size, "channels": self.channels,
                "mean": list(self.mean), "std": list(self.std), "source_size": self.source_size,
                "local_sigma": self.local_sigma}

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessor":
        return cls(**data)

    def _to_unit(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 N x H x W x C -> float32 N x C x H' x W' in [0, 1], resized and channel-converted."""
        t = torch.as_tensor(np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x)
        if t.ndim == 3:
            t = t.unsqueeze(-1)
        t = t.permute(0, 3, 1, 2).to(torch.float32) / 255.0  # never in place: the input may be float already
        if self.channels is not None and t.shape[1] != self.channels:
            if self.channels == 1:
                t = t.mean(dim=1, keepdim=True)
            elif t.shape[1] == 1:
                t = t.expand(-1, self.channels, -1, -1)
            else:
                raise ValueError(f"cannot convert {t.shape[1]} channels to {self.channels}")
        if self.image_size is not None and tuple(t.shape[-2:]) != (self.image_size, self.image_size):
            t = F.interpolate(t, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                              align_corners=False).clamp_(0.0, 1.0)
        return t.contiguous()

    def fit(self, x_train: np.ndarray) -> "Preprocessor":
        self.source_size = [int(x_train.shape[1]), int(x_train.shape[2])]  # predict reads files at this size
        if self.normalize == "standardize":
            t = self._to_unit(x_train)
            self.mean = t.mean(dim=(0, 2, 3)).tolist()
            self.std = t.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist()
        return self

    def transform(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        t = self._to_unit(x)
        if self.normalize == "standardize":
            if not self.mean:
                raise RuntimeError("Preprocessor.transform called before fit")
            mean = torch.tensor(self.mean).view(1, -1, 1, 1)
            std = torch.tensor(self.std).view(1, -1, 1, 1)
            t = (t - mean) / std
        elif self.normalize == "local":
            t = local_contrast(t, self.local_sigma)
        return t

    def inverse(self, t: torch.Tensor) -> torch.Tensor:
        """Back to [0, 1] pixels for pictures."""
        if self.normalize == "standardize":
            t = t * torch.tensor(self.std).view(1, -1, 1, 1) + torch.tensor(self.mean).view(1, -1, 1, 1)
        elif self.normalize == "local":  # not invertible: shown with +-3 local stds as black and white
            t = (t + 3.0) / 6.0
        return t.clamp(0.0, 1.0)


def local_contrast(t: torch.Tensor, sigma: float, edges: str = "replicate") -> torch.Tensor:
    """N x C x H x W -> (t - local mean) / (local std + 0.2 * the image's mean local std), each channel on its
    own; Gaussian neighbourhoods of std ``sigma``, edges replicated (or ``zeros``, see ``gaussian_blur``)."""
    from .maps import gaussian_blur

    high = t - gaussian_blur(t, sigma, edges=edges)
    spread = gaussian_blur(high * high, sigma, edges=edges).clamp_min(0.0).sqrt()
    return high / (spread + 0.2 * spread.mean(dim=(2, 3), keepdim=True) + 1e-6)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """N x H x W bool masks to ``size`` (nearest neighbour), as the images were resized."""
    if tuple(mask.shape[1:]) == tuple(size):
        return mask
    t = F.interpolate(torch.from_numpy(mask[:, None].astype(np.float32)), size=tuple(size), mode="nearest")
    return t[:, 0].numpy() > 0.5

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

from dataclasses import dataclass, field, fields
from typing import Any, Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .data.folder import CHANNELS_PROBLEM, MAX_IMAGE_SIDE
from .errors import OddpixError
from .schema import num


@dataclass(frozen=True)
class PreprocessConfig:
    normalize: Literal["unit", "standardize", "local"] = "unit"
    local_sigma: float = num(8.0, gt=0.0, le=64.0)
    image_size: Optional[int] = num(None, ge=4, le=MAX_IMAGE_SIDE)
    channels: Optional[int] = num(None, ge=1, le=3)

    def problems(self) -> list[tuple[str, str]]:
        return [("channels", CHANNELS_PROBLEM)] if self.channels == 2 else []


NORMALIZATIONS = ("unit", "standardize", "local")  # PreprocessConfig.normalize's choices


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
    def from_dict(cls, data: Any, where: str = "the model file's preprocessing") -> "Preprocessor":
        """Stored preprocessing, every field checked against what the pipeline can have written, so a
        crafted or damaged model file stops with one line instead of allocating what it asks for."""
        if not isinstance(data, dict):
            raise OddpixError(f"{where}: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown, missing = sorted(set(data) - known), sorted({"normalize"} - set(data))
        if unknown or missing:
            raise OddpixError(f"{where}: " + (f"unknown key {unknown[0]!r}" if unknown else f"{missing[0]!r} is missing")
                              + f" (valid: {', '.join(sorted(known))})")
        if data["normalize"] not in NORMALIZATIONS:
            raise OddpixError(f"{where}: normalize: {data['normalize']!r} is not one of {', '.join(NORMALIZATIONS)}")

        def side(value: Any, key: str) -> Optional[int]:
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_IMAGE_SIDE:
                raise OddpixError(f"{where}: {key}: {value!r:.40} is not an image side (1 to {MAX_IMAGE_SIDE} px)")
            return value

        size = side(data.get("image_size"), "image_size")
        channels = data.get("channels")
        if channels not in (None, 1, 3) or isinstance(channels, bool):
            raise OddpixError(f"{where}: channels: {channels!r:.40} is not 1, 3 or null")
        source = data.get("source_size")
        if source is not None:
            if not isinstance(source, list) or len(source) != 2:
                raise OddpixError(f"{where}: source_size: {source!r:.40} is not [height, width]")
            source = [side(v, "source_size") for v in source]
        sigma = data.get("local_sigma", 8.0)
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 < sigma <= 64:
            raise OddpixError(f"{where}: local_sigma: {sigma!r:.40} is not in (0, 64] px")
        stats = {}
        for key in ("mean", "std"):
            v = data.get(key, [])
            if (not isinstance(v, list) or len(v) not in (0, 1, 3)
                    or not all(isinstance(e, (int, float)) and not isinstance(e, bool) and np.isfinite(e) for e in v)):
                raise OddpixError(f"{where}: {key}: {v!r:.40} is not a list of 0, 1 or 3 finite numbers")
            stats[key] = [float(e) for e in v]
        if any(s <= 0 for s in stats["std"]) or len(stats["mean"]) != len(stats["std"]):
            raise OddpixError(f"{where}: std: {stats['std']} must be positive, one per mean")
        if data["normalize"] == "standardize" and not stats["std"]:
            raise OddpixError(f"{where}: standardize without its mean and std")
        return cls(normalize=data["normalize"], image_size=size, channels=channels, local_sigma=float(sigma),
                   mean=stats["mean"], std=stats["std"], source_size=source)

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

    def output_shape(self, x: np.ndarray) -> tuple[int, int, int]:
        """C x H x W of what :meth:`transform` makes of the uint8 images ``x`` (N x H x W [x C])."""
        c = self.channels or (x.shape[3] if x.ndim == 4 else 1)
        h, w = (self.image_size, self.image_size) if self.image_size else x.shape[1:3]
        return int(c), int(h), int(w)

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


def check_memory(n_images: int, shape: tuple[int, int, int], available: int | None) -> None:
    """Refuse, naming preprocess.image_size, a preprocessing whose float32 tensors of every split would not
    fit in ``available`` bytes (the pipeline holds whole splits in memory)."""
    need = 4 * n_images * shape[0] * shape[1] * shape[2]
    if available is None or need <= 0.75 * available:
        return
    side = int((0.75 * available / (4 * n_images * shape[0])) ** 0.5)
    raise OddpixError(f"params: preprocess.image_size: {shape[1]}x{shape[2]} px makes the {n_images:,} images "
                      f"{need / 1e9:.1f} GB as float32 tensors and this machine has {available / 1e9:.1f} GB; "
                      f"choose an image_size of at most {side} (or fewer images)")


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

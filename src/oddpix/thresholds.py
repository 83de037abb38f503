"""Threshold rules: from validation scores (normal images only) to a decision.

A threshold is an interval of normal scores ``[low, high]``: an image is anomalous when its score is
above ``high`` or (two-sided rules) below ``low``. Rules never look at the test split.

* ``zscore``:     high = mean + k * std of the validation-normal scores; two-sided adds low = mean - k * std;
* ``percentile``: high = the p-th percentile of the validation-normal scores (a false-alarm rate of
                  100 - p percent on normal data); two-sided puts (100 - p) / 2 percent in each tail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from .config import ThresholdConfig
from .errors import OddpixError


@dataclass
class Threshold:
    rule: str
    component: str
    high: float
    low: Optional[float] = None
    details: dict = field(default_factory=dict)

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """1 where the score is anomalous, else 0."""
        scores = np.asarray(scores, dtype=np.float64)
        out = scores > self.high
        if self.low is not None:
            out |= scores < self.low
        return out.astype(np.int64)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Threshold":
        return cls(**data)


def fit_threshold(cfg: ThresholdConfig, normal_scores: np.ndarray, component: str) -> Threshold:
    s = np.asarray(normal_scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if len(s) < 2:
        raise OddpixError(f"threshold: need at least 2 finite validation-normal scores for {component!r}, "
                          f"got {len(s)}")
    mean, std = float(s.mean()), float(s.std(ddof=1))
    details = {"n_val_normal": int(len(s)), "val_mean": mean, "val_std": std}
    if cfg.rule == "zscore":
        high = mean + cfg.k * std
        low = mean - cfg.k * std if cfg.two_sided else None
        details["k"] = cfg.k
    elif cfg.rule == "percentile":
        tail = 100.0 - cfg.percentile
        if cfg.two_sided:
            low, high = (float(np.percentile(s, tail / 2)), float(np.percentile(s, 100 - tail / 2)))
        else:
            low, high = None, float(np.percentile(s, cfg.percentile))
        details["percentile"] = cfg.percentile
    else:  # config validation makes this unreachable; keep the message for direct callers
        raise OddpixError(f"threshold.rule: unknown rule {cfg.rule!r}")
    details["two_sided"] = cfg.two_sided
    return Threshold(rule=cfg.rule, component=component, high=float(high),
                     low=None if low is None else float(low), details=details)

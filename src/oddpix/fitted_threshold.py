"""A fitted threshold: one bound per score component, and what it does with scores - the decision
(anomalous when any component is above its ``high`` or, two-sided, below its ``low``), the ranking score,
the calibration to p-values on the validation normals, and storing it as a dict. The rules that fit one
are in ``thresholds.py``.

The ranking score used for AUROC is the component itself for one one-sided bound, the distance from the
interval's centre in half-widths for a two-sided bound, and the largest standardized exceedance
``(s - mean) / std`` over the components for ``dual``: the same order in which the rule flags images.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Mapping, Optional

import numpy as np

from .errors import OddpixError
from .schema import not_a_choice


def component_values(scores: Mapping[str, np.ndarray], name: str, where: str = "threshold") -> np.ndarray:
    """One score component as float64; a readable error naming the components there are when it is missing."""
    if name not in scores:
        raise OddpixError(f"{where}: score component {not_a_choice(name, scores, 'among the scores')}")
    return np.asarray(scores[name], dtype=np.float64)


@dataclass
class Bound:
    component: str
    high: float
    low: Optional[float] = None
    mean: float = 0.0      # validation-normal statistics, for the ranking score
    std: float = 1.0

    def exceeds(self, s: np.ndarray) -> np.ndarray:
        out = s > self.high
        if self.low is not None:
            out |= s < self.low
        return out


@dataclass
class Threshold:
    rule: str
    bounds: list[Bound]
    details: dict = field(default_factory=dict)
    scoring: dict = field(default_factory=dict)  # score settings predict must reapply (score.local)
    calibration: list[float] = field(default_factory=list)  # sorted ranking scores of the validation normals

    MAX_CALIBRATION = 10000  # more validation normals are thinned to this many evenly spaced quantiles

    def calibrate(self, normal_scores: Mapping[str, np.ndarray]) -> None:
        """Remember the validation normals' ranking scores, for :meth:`p_value`."""
        values = np.sort(finite_values(self.ranking(normal_scores)))
        if len(values) > self.MAX_CALIBRATION:
            values = np.quantile(values, np.linspace(0, 1, self.MAX_CALIBRATION))
        self.calibration = values.tolist()

    def p_value(self, scores: Mapping[str, np.ndarray] | np.ndarray) -> np.ndarray:
        """The calibrated score of each image: the share of validation normals that score at least as high
        (conformal, (1 + count) / (1 + n)): about uniform on normal images, small on anomalies."""
        ref = np.asarray(self.calibration, dtype=np.float64)
        if not len(ref):
            raise ValueError("this threshold was stored without the validation normals' scores")
        s = self.ranking(scores)
        return (1 + len(ref) - np.searchsorted(ref, s, side="left")) / (1 + len(ref))

    @property
    def component(self) -> str:
        return "+".join(b.component for b in self.bounds)

    @property
    def components(self) -> list[str]:
        return [b.component for b in self.bounds]

    @property
    def high(self) -> float:
        return self.bounds[0].high

    @property
    def low(self) -> Optional[float]:
        return self.bounds[0].low

    def _values(self, scores: Mapping[str, np.ndarray] | np.ndarray, bound: Bound) -> np.ndarray:
        if isinstance(scores, Mapping):
            return component_values(scores, bound.component)
        if len(self.bounds) != 1:
            raise ValueError("a multi-component threshold needs a mapping of component -> scores")
        return np.asarray(scores, dtype=np.float64)

    def predict(self, scores: Mapping[str, np.ndarray] | np.ndarray) -> np.ndarray:
        """1 where the image is anomalous, else 0 (scores: one array, or component -> array)."""
        out = None
        for bound in self.bounds:
            hit = bound.exceeds(self._values(scores, bound))
            out = hit if out is None else out | hit
        return out.astype(np.int64)

    def ranking(self, scores: Mapping[str, np.ndarray] | np.ndarray) -> np.ndarray:
        """A single score per image, higher = more anomalous, ordered the way the rule decides."""
        if len(self.bounds) == 1:
            bound = self.bounds[0]
            s = self._values(scores, bound)
            if bound.low is None:
                return s
            centre, half = (bound.high + bound.low) / 2, max((bound.high - bound.low) / 2, 1e-12)
            return np.abs(s - centre) / half
        return np.max([(self._values(scores, b) - b.mean) / max(b.std, 1e-12) for b in self.bounds], axis=0)

    def false_alarm_target(self) -> Optional[float]:
        """The share of normal images the rule means to flag: 1 - percentile / 100 for ``percentile`` (not
        with ``contamination``), for ``zscore`` the normal distribution's tail beyond ``k`` std (what mean +
        k std promises if the normals' scores were Gaussian); None for the other rules."""
        d = self.details
        if self.rule == "percentile" and d.get("contamination") is None and "percentile" in d:
            return (100.0 - d["percentile"]) / 100.0
        if self.rule == "zscore" and "k" in d:
            return 0.5 * math.erfc(d["k"] / math.sqrt(2.0)) * (2 if d.get("two_sided") else 1)
        return None

    def describe(self) -> str:
        """Every bound of the rule: ``reconstruction > 0.1 or density > 12``."""
        return " or ".join(f"{b.component} > {b.high:.5g}" + (f" or < {b.low:.5g}" if b.low is not None else "")
                           for b in self.bounds)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Threshold":
        return cls(rule=data["rule"], bounds=[Bound(**b) for b in data["bounds"]], details=data.get("details", {}),
                   scoring=data.get("scoring", {}), calibration=data.get("calibration", []))


def finite_values(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return v[np.isfinite(v)]

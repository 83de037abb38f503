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
from typing import Any, Mapping, Optional

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
    def from_dict(cls, data: Any, where: str = "threshold file") -> "Threshold":
        """A stored threshold, every field checked: a broken or edited file stops with one line naming the
        field (NaN or infinite bounds, missing or unknown keys, a string where a number goes)."""
        fields = _keys(data, where, required={"rule", "bounds"}, optional={"details", "scoring", "calibration",
                                                                             "model_id"})
        if not isinstance(fields["rule"], str) or not fields["rule"]:
            raise OddpixError(f"{where}: rule: {fields['rule']!r} is not a rule name")
        raw_bounds = fields["bounds"]
        if not isinstance(raw_bounds, list) or not raw_bounds:
            raise OddpixError(f"{where}: bounds: expected a non-empty list, got {raw_bounds!r:.60}")
        bounds = []
        for i, b in enumerate(raw_bounds):
            at = f"{where}: bounds[{i}]"
            b = _keys(b, at, required={"component", "high"}, optional={"low", "mean", "std"})
            if not isinstance(b["component"], str) or not b["component"]:
                raise OddpixError(f"{at}.component: {b['component']!r} is not a component name")
            high = _finite(b["high"], f"{at}.high")
            low = None if b.get("low") is None else _finite(b["low"], f"{at}.low")
            if low is not None and not low < high:
                raise OddpixError(f"{at}: low {low:g} is not below high {high:g}")
            std = _finite(b.get("std", 1.0), f"{at}.std")
            if std <= 0:
                raise OddpixError(f"{at}.std: {std:g} must be > 0")
            bounds.append(Bound(b["component"], high, low, _finite(b.get("mean", 0.0), f"{at}.mean"), std))
        for key in ("details", "scoring"):
            if not isinstance(fields.get(key, {}), dict):
                raise OddpixError(f"{where}: {key}: expected a mapping, got {fields[key]!r:.60}")
        calibration = fields.get("calibration", [])
        if not isinstance(calibration, list):
            raise OddpixError(f"{where}: calibration: expected a list of numbers, got {calibration!r:.60}")
        calibration = [_finite(v, f"{where}: calibration[{i}]") for i, v in enumerate(calibration)]
        if any(b < a for a, b in zip(calibration, calibration[1:])):
            raise OddpixError(f"{where}: calibration: the validation normals' scores are stored sorted; these are not")
        return cls(rule=fields["rule"], bounds=bounds, details=fields.get("details", {}),
                   scoring=fields.get("scoring", {}), calibration=calibration)


def _keys(data: Any, where: str, required: set[str], optional: set[str]) -> dict:
    if not isinstance(data, dict):
        raise OddpixError(f"{where}: expected a mapping, got {type(data).__name__}")
    missing, unknown = sorted(required - set(data)), sorted(set(data) - required - optional)
    if missing:
        raise OddpixError(f"{where}: {missing[0]!r} is missing")
    if unknown:
        raise OddpixError(f"{where}: unknown key {unknown[0]!r} (valid: {', '.join(sorted(required | optional))})")
    return data


def _finite(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OddpixError(f"{where}: {value!r:.40} is not a finite number")
    return float(value)


def finite_values(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return v[np.isfinite(v)]

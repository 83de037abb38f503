"""Threshold rules: from validation scores to a decision. Rules never look at the test split.

A threshold is a list of bounds, one per score component: an image is anomalous when any component is
above its ``high`` or (two-sided) below its ``low``.

* ``zscore``:     high = mean + k * std of the validation-normal scores; two-sided adds low = mean - k * std;
* ``percentile``: high = the p-th percentile of the validation-normal scores (100 - p percent false
                  alarms on normal data; two-sided puts half of that in each tail), or, with
                  ``contamination`` set, the (1 - contamination) quantile of all validation scores;
* ``fixed``:      high = ``value``;
* ``otsu``:       Otsu's split of the histogram of all validation scores (meaningful when the validation
                  split holds anomalies, labelled or not: it ignores the labels);
* ``best_f1``:    the threshold with the best F1 on the validation split; needs labelled anomalies there
                  (``data.val_anomaly_fraction``) and says so when there are none;
* ``dual``:       two components (e.g. ``reconstruction`` and ``density``), each with its own bound from
                  ``dual_rule`` (any rule above but fixed): anomalous when either is exceeded - the rule
                  of the KDE-on-latent-codes detector.

A new rule is one function ``fit(cfg, values, normal, y, details) -> (high, low)`` decorated with
``@rule("name")``; ``threshold.rule: name`` then validates and works everywhere.

What a fitted threshold is and does (decide, rank, calibrate to p-values, store) is in
``fitted_threshold.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional

import numpy as np

from .errors import OddpixError
from .fitted_threshold import Bound, Threshold, component_values, finite_values
from .registry import Registry
from .schema import choice, items, num

RULES = Registry("threshold rule")  # name -> Rule; plus "dual", which applies one of them per component
LABELS_NEEDED = ("needs labelled anomalies in the validation split; set data.val_anomaly_fraction (e.g. 0.1) or "
                 "use a rule that needs none")


def rule_names() -> tuple[str, ...]:
    return (*RULES, "dual")


@dataclass(frozen=True)
class ThresholdConfig:
    rule: str = choice("percentile", rule_names)
    k: float = num(3.0, gt=0.0)
    two_sided: bool = False
    percentile: float = num(95.0, gt=0.0, lt=100.0)
    contamination: Optional[float] = num(None, gt=0.0, lt=0.5)
    value: Optional[float] = None
    dual_components: list[str] = items(["reconstruction", "density"])
    dual_rule: str = choice("percentile", RULES.names)

    def problems(self) -> list[tuple[str, str]]:
        if self.rule == "fixed" and self.value is None:
            return [("value", "rule 'fixed' needs a number here")]
        if self.rule == "dual" and len(set(self.dual_components)) < 2:
            return [("dual_components", "rule 'dual' needs two different score components")]
        if self.dual_rule == "fixed":
            return [("dual_rule", "'fixed' would put one value on two different components; valid choices: "
                     + ", ".join(r for r in RULES if r != "fixed"))]
        return []

    @property
    def base_rule(self) -> str:
        """The single-component rule that is fitted (``dual_rule`` for ``dual``)."""
        return self.dual_rule if self.rule == "dual" else self.rule

    @property
    def needs_labels(self) -> bool:
        return RULES[self.base_rule].needs_labels


@dataclass(frozen=True)
class Rule:
    """``fit(cfg, values, normal, y, details) -> (high, low or None)`` on one component's validation scores
    (``normal``: the finite validation-normal ones); ``needs_labels``: it needs labelled val anomalies."""

    fit: Callable[..., tuple[float, Optional[float]]]
    needs_labels: bool = False


def rule(name: str, needs_labels: bool = False):
    """Register a threshold rule under ``name`` (``threshold.rule: name`` in params)."""
    def add(fn):
        RULES.register(name)(Rule(fn, needs_labels))
        return fn
    return add


def otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the histogram split that maximizes the between-class variance."""
    v = finite_values(values)
    if len(v) < 2 or v.min() == v.max():
        raise OddpixError("threshold.rule otsu: the validation scores are constant; no split exists")
    hist, edges = np.histogram(v, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)[:-1].astype(np.float64)
    w1 = len(v) - w0
    s0 = np.cumsum(hist * centres)[:-1]
    m0 = s0 / np.maximum(w0, 1)
    m1 = (np.sum(hist * centres) - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[1:-1][int(np.argmax(between))])


def best_f1(values: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximizing F1 of ``values > threshold`` against labels ``y``."""
    v, y = np.asarray(values, dtype=np.float64), np.asarray(y).astype(np.int64)
    order = np.argsort(-v, kind="stable")
    v, y = v[order], y[order]
    tp = np.cumsum(y)
    fp = np.cumsum(1 - y)
    f1 = 2 * tp / (tp + fp + y.sum())
    last = np.r_[v[1:] != v[:-1], True]  # only cut between distinct values
    f1 = np.where(last, f1, -1)
    i = int(np.argmax(f1))
    nxt = v[i + 1] if i + 1 < len(v) else v[i] - 1.0
    return float((v[i] + nxt) / 2), float(f1[i])


@rule("zscore")
def zscore(cfg, values, normal, y, details):
    mean, std = float(normal.mean()), float(normal.std(ddof=1))
    return mean + cfg.k * std, (mean - cfg.k * std if cfg.two_sided else None)


@rule("percentile")
def percentile(cfg, values, normal, y, details):
    if cfg.contamination is not None:
        return float(np.quantile(finite_values(values), 1 - cfg.contamination)), None
    if cfg.two_sided:
        tail = 100.0 - cfg.percentile
        return float(np.percentile(normal, 100 - tail / 2)), float(np.percentile(normal, tail / 2))
    return float(np.percentile(normal, cfg.percentile)), None


@rule("fixed")
def fixed(cfg, values, normal, y, details):
    return float(cfg.value), None


@rule("otsu")
def otsu_rule(cfg, values, normal, y, details):
    return otsu(values), None


@rule("best_f1", needs_labels=True)
def best_f1_rule(cfg, values, normal, y, details):
    high, f1 = best_f1(values, y)
    details["val_f1"] = f1
    return high, None


def _bound(name: str, cfg: ThresholdConfig, values: np.ndarray, y: np.ndarray, component: str,
           details: dict) -> Bound:
    normal = finite_values(values[y == 0])
    if len(normal) < 2:
        raise OddpixError(f"threshold: need at least 2 finite validation-normal scores for {component!r}, "
                          f"got {len(normal)}")
    found: dict = {}
    high, low = RULES[name].fit(cfg, values, normal, y, found)
    details.update({f"{k}_{component}": v for k, v in found.items()})
    return Bound(component=component, high=float(high), low=None if low is None else float(low),
                 mean=float(normal.mean()), std=float(normal.std(ddof=1)))


def fit_threshold(cfg: ThresholdConfig, scores: Mapping[str, np.ndarray] | np.ndarray, component: str,
                  y: Optional[np.ndarray] = None) -> Threshold:
    """Fit ``cfg.rule`` on validation ``scores`` (one array, or component -> array) with labels ``y``
    (0 normal, 1 anomaly; all normal when omitted)."""
    if not isinstance(scores, Mapping):
        scores = {component: np.asarray(scores, dtype=np.float64)}
    n = len(next(iter(scores.values())))
    y = np.zeros(n, dtype=np.int64) if y is None else np.asarray(y).astype(np.int64)
    details: dict = {"n_val": int(n), "n_val_anomaly": int(y.sum())}
    if cfg.needs_labels and not (y == 1).any():
        raise OddpixError(f"threshold.rule: {cfg.base_rule} {LABELS_NEEDED}; it has none")
    names = list(cfg.dual_components) if cfg.rule == "dual" else [component]
    bounds = [_bound(cfg.base_rule, cfg, component_values(scores, name), y, name, details) for name in names]
    details.update(two_sided=cfg.two_sided, k=cfg.k, percentile=cfg.percentile, contamination=cfg.contamination)
    return Threshold(rule=cfg.rule, bounds=bounds, details=details)

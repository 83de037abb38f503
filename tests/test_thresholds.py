import numpy as np
import pytest

from oddpix.config import ThresholdConfig
from oddpix.errors import OddpixError
from oddpix.thresholds import Threshold, fit_threshold

VAL = np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # mean 3, sample std sqrt(2.5)


def test_zscore_one_sided():
    thr = fit_threshold(ThresholdConfig(rule="zscore", k=2.0), VAL, "reconstruction")
    assert thr.high == pytest.approx(3 + 2 * np.sqrt(2.5))
    assert thr.low is None
    np.testing.assert_array_equal(thr.predict([-100, 3, 6.1, 6.2]), [0, 0, 0, 1])


def test_zscore_two_sided():
    thr = fit_threshold(ThresholdConfig(rule="zscore", k=1.0, two_sided=True), VAL, "bce")
    s = np.sqrt(2.5)
    assert (thr.low, thr.high) == pytest.approx((3 - s, 3 + s))
    np.testing.assert_array_equal(thr.predict([1.0, 1.5, 3.0, 4.5, 5.0]), [1, 0, 0, 0, 1])


def test_percentile_rule():
    values = np.arange(1, 101, dtype=float)
    thr = fit_threshold(ThresholdConfig(rule="percentile", percentile=90.0), values, "mse")
    assert thr.high == pytest.approx(np.percentile(values, 90))
    assert thr.predict(values).sum() == 10  # a 10 % false-alarm rate on the normal data itself


def test_percentile_two_sided_puts_half_the_tail_on_each_side():
    values = np.arange(1, 101, dtype=float)
    thr = fit_threshold(ThresholdConfig(rule="percentile", percentile=90.0, two_sided=True), values, "mse")
    assert thr.low == pytest.approx(np.percentile(values, 5))
    assert thr.high == pytest.approx(np.percentile(values, 95))


def test_round_trip_and_non_finite_values():
    thr = fit_threshold(ThresholdConfig(), np.array([1.0, np.nan, 2.0, np.inf, 3.0]), "x")
    assert thr.details["n_val_normal"] == 3
    assert Threshold.from_dict(thr.to_dict()) == thr


def test_too_few_scores():
    with pytest.raises(OddpixError, match="at least 2 finite"):
        fit_threshold(ThresholdConfig(), np.array([1.0]), "x")

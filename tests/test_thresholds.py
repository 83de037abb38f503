import numpy as np
import pytest

from oddpix.config import parse_params
from oddpix.thresholds import ThresholdConfig
from oddpix.errors import ConfigError, OddpixError
from oddpix.fitted_threshold import Threshold
from oddpix.thresholds import best_f1, fit_threshold, otsu

VAL = np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # mean 3, sample std sqrt(2.5)


def test_zscore_one_sided():
    thr = fit_threshold(ThresholdConfig(rule="zscore", k=2.0), VAL, "reconstruction")
    assert thr.high == pytest.approx(3 + 2 * np.sqrt(2.5))
    assert thr.low is None and thr.component == "reconstruction"
    np.testing.assert_array_equal(thr.predict(np.array([-100, 3, 6.1, 6.2])), [0, 0, 0, 1])


def test_zscore_two_sided_and_its_ranking():
    thr = fit_threshold(ThresholdConfig(rule="zscore", k=1.0, two_sided=True), VAL, "bce")
    s = np.sqrt(2.5)
    assert (thr.low, thr.high) == pytest.approx((3 - s, 3 + s))
    np.testing.assert_array_equal(thr.predict(np.array([1.0, 1.5, 3.0, 4.5, 5.0])), [1, 0, 0, 0, 1])
    # ranking = distance from the centre in half-widths: both tails rank as anomalous
    np.testing.assert_allclose(thr.ranking(np.array([3.0, 3 - s, 3 + 2 * s])), [0.0, 1.0, 2.0])


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


def test_percentile_of_expected_contamination_uses_all_validation_scores():
    values = np.r_[np.arange(90.0), np.arange(1000.0, 1010.0)]  # 10 % are anomalies (unlabelled)
    thr = fit_threshold(ThresholdConfig(rule="percentile", contamination=0.1), values, "s")
    assert 89 < thr.high < 1000
    assert thr.predict(values).sum() == 10


def test_fixed_rule():
    thr = fit_threshold(ThresholdConfig(rule="fixed", value=2.5), VAL, "s")
    assert thr.high == 2.5 and thr.predict(VAL).tolist() == [0, 0, 1, 1, 1]
    with pytest.raises(ConfigError, match="threshold.value: rule 'fixed' needs a number"):
        parse_params({"threshold": {"rule": "fixed"}})


def test_otsu_splits_a_bimodal_histogram_between_the_modes():
    rng = np.random.default_rng(0)
    values = np.r_[rng.normal(0, 1, 700), rng.normal(10, 1, 300)]
    t = otsu(values)
    assert 3 < t < 7
    thr = fit_threshold(ThresholdConfig(rule="otsu"), values, "s")
    assert thr.high == pytest.approx(t)
    with pytest.raises(OddpixError, match="constant"):
        otsu(np.ones(10))


def test_best_f1_known_answer():
    values = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    y = np.array([0, 0, 1, 0, 1, 1])
    t, f1 = best_f1(values, y)
    # cutting below 0.3 flags 4 with 3 hits: F1 = 6/7; cutting below 0.5 flags 2 hits: F1 = 0.8
    assert f1 == pytest.approx(6 / 7) and t == pytest.approx(0.25)
    thr = fit_threshold(ThresholdConfig(rule="best_f1"), values, "s", y)
    assert thr.high == pytest.approx(0.25) and thr.details["val_f1_s"] == pytest.approx(6 / 7)


def test_best_f1_without_labelled_anomalies_says_so():
    with pytest.raises(OddpixError, match="best_f1 needs labelled anomalies in the validation split"):
        fit_threshold(ThresholdConfig(rule="best_f1"), VAL, "s", np.zeros(5))
    with pytest.raises(ConfigError, match="set data.val_anomaly_fraction"):
        parse_params({"threshold": {"rule": "best_f1"}})
    assert parse_params({"threshold": {"rule": "best_f1"}, "data": {"val_anomaly_fraction": 0.2}})


def test_dual_flags_either_component_and_ranks_by_the_larger_exceedance():
    scores = {"reconstruction": np.arange(100.0), "density": np.arange(100.0)[::-1] * 2}
    cfg = ThresholdConfig(rule="dual", dual_rule="percentile", percentile=95.0)
    thr = fit_threshold(cfg, scores, "reconstruction")
    assert thr.components == ["reconstruction", "density"] and thr.component == "reconstruction+density"
    test = {"reconstruction": np.array([50.0, 200.0, 50.0]), "density": np.array([50.0, 50.0, 500.0])}
    np.testing.assert_array_equal(thr.predict(test), [0, 1, 1])
    rank = thr.ranking(test)
    assert rank[0] < rank[1] and rank[0] < rank[2]
    with pytest.raises(ConfigError, match="threshold.dual_components: 'bce2' is not produced by model 'cae'"):
        parse_params({"threshold": {"rule": "dual", "dual_components": ["reconstruction", "bce2"]}})


def test_round_trip_and_non_finite_values():
    thr = fit_threshold(ThresholdConfig(), np.array([1.0, np.nan, 2.0, np.inf, 3.0]), "x")
    assert thr.bounds[0].mean == pytest.approx(2.0)
    assert Threshold.from_dict(thr.to_dict()) == thr


def test_too_few_scores():
    with pytest.raises(OddpixError, match="at least 2 finite"):
        fit_threshold(ThresholdConfig(), np.array([1.0]), "x")


def test_p_values_are_calibrated_on_the_validation_normals():
    from oddpix.fitted_threshold import Bound, Threshold

    rng = np.random.default_rng(0)
    thr = Threshold("zscore", [Bound("reconstruction", 3.0)])
    thr.calibrate({"reconstruction": rng.normal(size=2000)})
    fresh_normal = thr.p_value({"reconstruction": rng.normal(size=4000)})
    anomalies = thr.p_value({"reconstruction": rng.normal(4.0, 1.0, size=500)})
    assert 0 < fresh_normal.min() and fresh_normal.max() <= 1
    assert abs((fresh_normal <= 0.05).mean() - 0.05) < 0.015  # about uniform on normal images
    assert np.median(anomalies) < 0.01
    assert thr.p_value(np.array([1e9]))[0] == 1 / 2001 and thr.p_value(np.array([-1e9]))[0] == 1.0
    again = Threshold.from_dict(thr.to_dict())
    assert again.calibration == thr.calibration
    big = Threshold("zscore", [Bound("reconstruction", 3.0)])
    big.calibrate({"reconstruction": rng.normal(size=25000)})
    assert len(big.calibration) == Threshold.MAX_CALIBRATION and big.calibration == sorted(big.calibration)


def test_each_rule_states_the_false_alarm_rate_it_aims_at():
    rng = np.random.default_rng(0)
    val = {"reconstruction": rng.normal(size=20000)}
    cases = [(ThresholdConfig(rule="percentile", percentile=95.0), 0.05),
             (ThresholdConfig(rule="percentile", percentile=99.0, two_sided=True), 0.01),
             (ThresholdConfig(rule="zscore", k=3.0), 0.0013499),
             (ThresholdConfig(rule="zscore", k=2.0, two_sided=True), 0.0455003),
             (ThresholdConfig(rule="percentile", contamination=0.1), None),
             (ThresholdConfig(rule="otsu"), None)]
    for cfg, target in cases:
        thr = Threshold.from_dict(fit_threshold(cfg, val, "reconstruction").to_dict())  # survives the JSON
        got = thr.false_alarm_target()
        assert got is None if target is None else got == pytest.approx(target, rel=1e-4), cfg
        if target is not None:  # on Gaussian normals, as many are flagged as the rule says
            assert thr.predict(rng.normal(size=200000)).mean() == pytest.approx(target, rel=0.15, abs=2e-4)

import numpy as np
import pytest

from oddpix.errors import OddpixError
from oddpix.metrics import curves, evaluate, metric_key


def test_known_answers():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8])  # 3 of 4 normal/anomaly pairs ordered right
    p = np.array([0, 1, 0, 1])
    m = evaluate(y, s, p)
    assert m["auroc"] == pytest.approx(0.75)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (1, 1, 1, 1)
    assert m["accuracy"] == 0.5 and m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5
    assert m["n_test"] == 4 and m["n_test_anomaly"] == 2
    # average precision: ranks 0.8 (hit, P=1), 0.4 (miss), 0.35 (hit, P=2/3) -> (1 + 2/3) / 2
    assert m["auprc"] == pytest.approx((1 + 2 / 3) / 2)


def test_perfect_and_reversed_ranking():
    y = np.array([0, 0, 0, 1, 1])
    s = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert evaluate(y, s, y)["auroc"] == 1.0
    assert evaluate(y, -s, y)["auroc"] == 0.0
    assert evaluate(y, s, y)["balanced_accuracy"] == 1.0


def test_per_kind_and_per_component():
    y = np.array([0, 0, 1, 1, 1, 1])
    kinds = np.array(["normal", "normal", "class:1", "class:1", "class:2", "class:2"])
    s = np.array([0.2, 0.3, 0.9, 0.8, 0.1, 0.25])
    m = evaluate(y, s, (s > 0.5).astype(int), kinds, {"other": -s})
    assert m["auroc_class_1"] == 1.0
    assert m["auroc_class_2"] == pytest.approx(0.25)  # 0.25 beats 0.2 only
    assert m["detected_class_1"] == 1.0 and m["detected_class_2"] == 0.0
    assert m["auroc_other"] == pytest.approx(1 - m["auroc"])


def test_single_label_and_nan_scores_are_errors():
    with pytest.raises(OddpixError, match="both normal and anomalous"):
        evaluate(np.zeros(3), np.arange(3.0), np.zeros(3))
    with pytest.raises(OddpixError, match="not finite"):
        evaluate(np.array([0, 1]), np.array([0.0, np.nan]), np.array([0, 1]))


def test_curves_are_thinned_and_span_the_unit_square():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    s = y + rng.normal(0, 1, 5000)
    roc, pr = curves(y, s, max_points=100)
    assert len(roc) <= 100 and len(pr) <= 100
    assert roc.iloc[0].tolist() == [0.0, 0.0] and roc.iloc[-1].tolist() == [1.0, 1.0]
    assert pr["recall"].is_monotonic_increasing


def test_metric_key():
    assert metric_key("class:7") == "class_7"
    assert metric_key("corruption: invert") == "corruption_invert"

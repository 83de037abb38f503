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


def test_pixel_metrics_and_pro_count_every_region_alike():
    from oddpix.metrics import pixel_metrics, pro_score

    rng = np.random.default_rng(0)
    n, h, w = 40, 16, 16
    y = np.r_[np.zeros(20, int), np.ones(20, int)]
    masks = np.zeros((n, h, w), bool)
    masks[20:30, 2:12, 2:12] = True   # ten images with a large region (100 pixels)
    masks[30:40, 5:7, 5:7] = True     # ten with a small one (4 pixels)
    noise = rng.random((n, h, w)) * 0.5
    perfect = noise + masks
    out = pixel_metrics(perfect, masks, y)
    assert out["pixel_auroc"] == 1.0 and out["pro"] > 0.99
    # a map that finds only the large regions: pixel AUROC stays high (most anomalous pixels are in them),
    # PRO halves (half of the regions are missed)
    large_only = noise + masks * (np.arange(n) < 30)[:, None, None]
    out = pixel_metrics(large_only, masks, y, kinds=np.array(["normal"] * 20 + ["big"] * 10 + ["small"] * 10))
    assert out["pixel_auroc"] > 0.9 and 0.4 < out["pro"] < 0.65
    assert out["pixel_auroc_big"] == 1.0 and out["pixel_auroc_small"] < 0.8
    # a random map: PRO about max_fpr / 2 on average over the integrated range
    assert abs(pro_score(rng.random((n, h, w)), masks) - 0.15) < 0.05
    # an image anomalous as a whole (no mask) is left out; no pixel truth at all: no pixel metrics
    y2 = y.copy()
    y2[:2] = 1
    assert pixel_metrics(perfect, masks, y2)["pixel_auroc"] == 1.0
    assert pixel_metrics(perfect, np.zeros_like(masks), y) == {}

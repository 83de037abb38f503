import numpy as np
import pytest

from oddpix.data.protocols import one_vs_rest, summarize
from oddpix.errors import OddpixError


def test_one_vs_rest_splits(patterns):
    splits = one_vs_rest(patterns, [0, 3], val_fraction=0.2, seed=1)
    train, val, test = splits["train"], splits["val"], splits["test"]
    assert set(np.unique(train.label)) == {0, 3} and train.y.sum() == 0
    assert set(np.unique(val.label)) == {0, 3} and val.y.sum() == 0
    assert len(train) + len(val) == 200 and len(val) == 40
    # val images are held-out training images, not copies of train images
    flat = {img.tobytes() for img in train.x}
    assert not any(img.tobytes() in flat for img in val.x)
    # the full test set, labelled
    assert len(test) == len(patterns.y_test)
    np.testing.assert_array_equal(test.y, (~np.isin(patterns.y_test, [0, 3])).astype(int))
    assert set(test.kind[test.y == 0]) == {"normal"}
    assert set(test.kind[test.y == 1]) == {f"class:{c}" for c in (1, 2, 4, 5, 6, 7, 8, 9)}
    assert test.x.dtype == np.uint8 and test.x.shape[1:] == (28, 28, 1)


def test_split_is_deterministic_by_seed(patterns):
    a = one_vs_rest(patterns, [0], 0.1, seed=5)
    b = one_vs_rest(patterns, [0], 0.1, seed=5)
    c = one_vs_rest(patterns, [0], 0.1, seed=6)
    np.testing.assert_array_equal(a["val"].x, b["val"].x)
    assert not np.array_equal(a["val"].x, c["val"].x)


def test_summary_counts(pattern_splits):
    summary = summarize(pattern_splits)
    assert summary["train_n"] == 90 and summary["val_n"] == 10
    assert summary["test_normal"] == 30 and summary["test_anomaly"] == 270
    assert summary["test_kind_class_7"] == 30 and summary["test_kind_normal"] == 30


def test_missing_normal_class_is_explained(patterns):
    patterns_without_2 = type(patterns)(patterns.name, patterns.x_train[patterns.y_train != 2],
                                        patterns.y_train[patterns.y_train != 2], patterns.x_test, patterns.y_test, "")
    with pytest.raises(OddpixError, match="class 2 has no training images"):
        one_vs_rest(patterns_without_2, [2], 0.1, 0)


def test_labelled_validation_anomalies(patterns):
    splits = one_vs_rest(patterns, [0], val_fraction=0.1, seed=0, val_anomaly_fraction=0.2)
    val = splits["val"]
    assert (val.y == 0).sum() == 10 and (val.y == 1).sum() == 2  # 2 of 12 = 20 % (rounded)
    assert set(val.kind[val.y == 1]) <= {f"class:{c}" for c in range(1, 10)}
    assert splits["train"].y.sum() == 0  # training stays normal
    with pytest.raises(OddpixError, match="asks for"):
        one_vs_rest(patterns, [0], val_fraction=0.1, seed=0, val_anomaly_fraction=0.01)


def test_unsupervised_models_early_stop_on_normal_validation_images_only():
    import torch

    from oddpix.models import FitData

    data = FitData(torch.zeros(4, 1, 2, 2), torch.arange(3.0).view(3, 1, 1, 1).expand(3, 1, 2, 2),
                   val_y=torch.tensor([0, 1, 0]))
    assert data.normal_val_x()[:, 0, 0, 0].tolist() == [0.0, 2.0]

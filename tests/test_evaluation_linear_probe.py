"""Linear probe: equals a scikit-learn pipeline fitted by hand; torch/NumPy inputs; errors."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from brainvis_hf.evaluation import linear_probe_accuracy


def _blobs(seed, n=120, f=6, k=3, scale=50.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, f)) * 2
    y = rng.integers(0, k, size=n)
    # features on very different scales: the standardisation matters
    x = (centers[y] + rng.normal(size=(n, f))) * np.geomspace(1, scale, f)
    return x.astype(np.float32), y


def test_equals_standardised_sklearn_logistic_regression():
    x, y = _blobs(0)
    xt, yt, xe, ye = x[:80], y[:80], x[80:], y[80:]
    scaler = StandardScaler().fit(xt.astype(np.float64))
    clf = LogisticRegression(C=0.3, max_iter=500).fit(scaler.transform(xt.astype(np.float64)), yt)
    expected = float(np.mean(clf.predict(scaler.transform(xe.astype(np.float64))) == ye))
    got = linear_probe_accuracy(xt, yt, xe, ye, C=0.3, max_iter=500)
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0.5 < got <= 1.0  # the blobs are separable well above chance (1/3)


def test_torch_and_numpy_inputs_agree():
    x, y = _blobs(1)
    a = linear_probe_accuracy(x[:80], y[:80], x[80:], y[80:])
    b = linear_probe_accuracy(torch.from_numpy(x[:80]), torch.from_numpy(y[:80]), torch.from_numpy(x[80:]), torch.from_numpy(y[80:]))
    assert a == b


def test_random_labels_near_chance():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 5))
    y = rng.integers(0, 4, size=400)
    acc = linear_probe_accuracy(x[:200], y[:200], x[200:], y[200:])
    assert 0.1 < acc < 0.45


def test_single_training_class_predicts_it():
    x = np.ones((4, 3))
    assert linear_probe_accuracy(x, [2, 2, 2, 2], x[:3], [2, 2, 5]) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "args, message",
    [
        ((np.zeros((4, 3)), np.zeros(5), np.zeros((2, 3)), np.zeros(2)), "`train_features` has 4 rows but `train_labels` has 5"),
        ((np.zeros((4, 3)), np.zeros(4), np.zeros((2, 2)), np.zeros(2)), "`eval_features` has 2"),
        ((np.zeros(4), np.zeros(4), np.zeros((2, 3)), np.zeros(2)), "`train_features` must be 2-D"),
        ((np.full((4, 3), np.nan), np.zeros(4), np.zeros((2, 3)), np.zeros(2)), "NaN"),
    ],
)
def test_bad_inputs(args, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        linear_probe_accuracy(*args)

"""Linear probe: standardised logistic regression on frozen (pooled) features.

The probe measures how linearly separable a representation is: a ``StandardScaler`` is fitted
on the training features, a multinomial ``LogisticRegression`` is fitted on the standardised
training features, and the accuracy on the (identically standardised) evaluation features is
returned. Used by the masked-modelling training callback and for ad-hoc feature studies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._utils import require, to_numpy


def _check_features(features: Any, labels: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
    x = to_numpy(features, f"{split}_features", dtype=np.float64)
    y = to_numpy(labels, f"{split}_labels")
    if x.ndim != 2:
        raise ValueError(f"`{split}_features` must be 2-D (num_samples x num_features); got shape {tuple(x.shape)}")
    if y.ndim != 1:
        raise ValueError(f"`{split}_labels` must be 1-D (num_samples,); got shape {tuple(y.shape)}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"`{split}_features` has {x.shape[0]} rows but `{split}_labels` has {y.shape[0]} entries"
        )
    if x.shape[0] == 0:
        raise ValueError(f"`{split}_features` is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{split}_features` contains NaN or infinite values")
    return x, y


def linear_probe_accuracy(
    train_features: Any,
    train_labels: Any,
    eval_features: Any,
    eval_labels: Any,
    *,
    C: float = 1.0,
    max_iter: int = 1000,
) -> float:
    """Accuracy of a standardised logistic-regression probe fitted on train, scored on eval.

    Args:
        train_features: ``(N_train, F)`` features (NumPy array or torch tensor).
        train_labels: ``(N_train,)`` integer class ids.
        eval_features: ``(N_eval, F)`` features, same ``F``.
        eval_labels: ``(N_eval,)`` integer class ids.
        C: inverse L2 regularisation strength of ``sklearn.linear_model.LogisticRegression``.
        max_iter: maximum number of solver (lbfgs) iterations.

    Returns:
        The fraction of evaluation samples whose predicted class equals the label, in ``[0, 1]``.
    """
    x_train, y_train = _check_features(train_features, train_labels, "train")
    x_eval, y_eval = _check_features(eval_features, eval_labels, "eval")
    if x_train.shape[1] != x_eval.shape[1]:
        raise ValueError(
            f"`train_features` has {x_train.shape[1]} features per sample but `eval_features` has {x_eval.shape[1]}"
        )
    predict = _fit_probe(x_train, y_train, C=C, max_iter=max_iter)
    return float(np.mean(predict(x_eval) == y_eval))


def _fit_probe(x_train: np.ndarray, y_train: np.ndarray, *, C: float, max_iter: int):
    """Fit the standardised logistic regression; returns a function features -> predicted labels."""
    require("sklearn", "scikit-learn", extra="train")  # clear message if missing
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if C <= 0:
        raise ValueError(f"`C` must be > 0; got {C}")
    if max_iter < 1:
        raise ValueError(f"`max_iter` must be >= 1; got {max_iter}")
    classes = np.unique(y_train)
    if classes.size < 2:
        # A one-class training set: the only sensible classifier predicts that class.
        return lambda x: np.full(x.shape[0], classes[0])
    scaler = StandardScaler().fit(x_train)
    classifier = LogisticRegression(C=C, max_iter=max_iter).fit(scaler.transform(x_train), y_train)
    return lambda x: classifier.predict(scaler.transform(x))


def binned_eeg_features(eeg: Any, bin_size: int = 4) -> np.ndarray:
    """B x C x T EEG -> B x (C * T // bin_size) means of consecutive `bin_size` samples per channel.

    The features of the linear baseline: the signal itself, smoothed, as a linear decoder of
    evoked responses reads it (trailing samples that do not fill a bin are dropped).
    """
    x = to_numpy(eeg, "eeg", dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"`eeg` must be 3-D (recordings x channels x samples); got shape {tuple(x.shape)}")
    if not 1 <= bin_size <= x.shape[2]:
        raise ValueError(f"`bin_size` must be in 1..{x.shape[2]} (the samples); got {bin_size}")
    usable = x.shape[2] // bin_size * bin_size
    return x[:, :, :usable].reshape(x.shape[0], x.shape[1], -1, bin_size).mean(axis=3).reshape(x.shape[0], -1)


def linear_baseline_accuracy(
    train_eeg: Any,
    train_labels: Any,
    eval_sets: dict[str, tuple[Any, Any]],
    *,
    bin_size: int = 4,
    C: float = 1.0,
    max_iter: int = 300,
) -> dict[str, float]:
    """Test accuracy a linear decoder reaches on the same split: the yardstick of every classifier.

    A standardised logistic regression on :func:`binned_eeg_features` of the raw EEG, fitted on
    the training recordings and scored on each ``name -> (eeg, labels)`` of ``eval_sets``. A deep
    model well below it on the same split is a recipe problem, not hard data.

    Returns:
        ``{name: accuracy}`` for every evaluation set.
    """
    x_train, y_train = _check_features(binned_eeg_features(train_eeg, bin_size), train_labels, "train")
    predict = _fit_probe(x_train, y_train, C=C, max_iter=max_iter)
    scores = {}
    for name, (eeg, labels) in eval_sets.items():
        x_eval, y_eval = _check_features(binned_eeg_features(eeg, bin_size), labels, name)
        scores[name] = float(np.mean(predict(x_eval) == y_eval))
    return scores

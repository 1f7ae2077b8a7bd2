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
    require("sklearn", "scikit-learn", extra="train")  # clear message if missing
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x_train, y_train = _check_features(train_features, train_labels, "train")
    x_eval, y_eval = _check_features(eval_features, eval_labels, "eval")
    if x_train.shape[1] != x_eval.shape[1]:
        raise ValueError(
            f"`train_features` has {x_train.shape[1]} features per sample but `eval_features` has {x_eval.shape[1]}"
        )
    if C <= 0:
        raise ValueError(f"`C` must be > 0; got {C}")
    if max_iter < 1:
        raise ValueError(f"`max_iter` must be >= 1; got {max_iter}")

    classes = np.unique(y_train)
    if classes.size < 2:
        # A one-class training set: the only sensible classifier predicts that class.
        return float(np.mean(y_eval == classes[0]))

    scaler = StandardScaler().fit(x_train)
    classifier = LogisticRegression(C=C, max_iter=max_iter)
    classifier.fit(scaler.transform(x_train), y_train)
    predictions = classifier.predict(scaler.transform(x_eval))
    return float(np.mean(predictions == y_eval))

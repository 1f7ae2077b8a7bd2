"""EEG classification metrics: top-1/3/5 accuracy, macro-F1 and the confusion matrix.

The one implementation of these numbers: the training logs (``training/trainer.py``
``classification_metrics``) and the evaluation report both call :func:`eeg_classification_metrics`.

- Ranking rule: classes are ranked by descending score with ties broken by the lower class id
  (``np.argmax`` semantics), so top-1 accuracy always equals the trace of the confusion matrix
  divided by the number of samples.
- F1 rule: macro-F1 is the unweighted mean of per-class F1 = 2TP / (2TP + FP + FN) over the classes
  that occur in the labels or the predictions (scikit-learn's ``average="macro"`` default); a class
  that is neither true nor predicted anywhere is left out, not counted as 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._utils import to_class_ids, to_numpy


def _check(logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    scores = to_numpy(logits, "logits", dtype=np.float64)
    y = to_numpy(labels, "labels")
    if scores.ndim != 2:
        raise ValueError(f"`logits` must be 2-D (num_samples x num_classes); got shape {tuple(scores.shape)}")
    if y.ndim != 1 or y.shape[0] != scores.shape[0]:
        raise ValueError(f"`labels` must be 1-D with one entry per row of `logits` ({scores.shape[0]}); got shape {tuple(y.shape)}")
    if scores.shape[0] == 0:
        raise ValueError("`logits` is empty")
    if np.isnan(scores).any():
        raise ValueError("`logits` contains NaN values")
    return scores, to_class_ids(y, "labels", scores.shape[1], "logits")


def top_k_accuracy(logits: Any, labels: Any, k: int = 1) -> float:
    """Fraction of samples whose label is among the ``k`` highest scores (ties: lower class id
    ranks first). ``k >= num_classes`` gives 1."""
    scores, y = _check(logits, labels)
    if k < 1:
        raise ValueError(f"`k` must be >= 1; got {k}")
    true_scores = scores[np.arange(len(y)), y]
    ids = np.arange(scores.shape[1])
    # rank of the label = classes scoring higher + classes scoring equal with a lower id
    rank = (scores > true_scores[:, None]).sum(axis=1) + ((scores == true_scores[:, None]) & (ids[None, :] < y[:, None])).sum(axis=1)
    return float(np.mean(rank < k))


def confusion_matrix(predictions: Any, labels: Any, num_classes: int) -> np.ndarray:
    """``num_classes x num_classes`` int64 counts; rows are true classes, columns predictions."""
    pred = to_numpy(predictions, "predictions").astype(np.int64)
    y = to_numpy(labels, "labels").astype(np.int64)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y, pred), 1)
    return matrix


def macro_f1_from_confusion(matrix: np.ndarray) -> float:
    """Unweighted mean of per-class F1 = 2TP / (2TP + FP + FN) over the classes that occur in the
    labels or the predictions (scikit-learn's ``f1_score(average="macro")`` default label set)."""
    tp = np.diag(matrix).astype(np.float64)
    fp = matrix.sum(axis=0) - tp
    fn = matrix.sum(axis=1) - tp
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    f1 = 2 * tp[present] / (2 * tp[present] + fp[present] + fn[present])
    return float(f1.mean()) if f1.size else 0.0


def eeg_classification_metrics(logits: Any, labels: Any) -> dict[str, Any]:
    """Top-1/3/5 accuracy, macro-F1 and confusion matrix of EEG classification scores.

    Args:
        logits: ``(N, K)`` scores (logits or probabilities; only the ranking matters).
        labels: ``(N,)`` true class ids in ``[0, K)``.

    Returns:
        A dict with ``top1_accuracy``, ``top3_accuracy``, ``top5_accuracy`` (``k`` capped at
        K), ``macro_f1``, ``num_samples``, ``num_classes`` and ``confusion_matrix``
        (K x K int64 NumPy array, rows = true class, columns = predicted class = argmax).
    """
    scores, y = _check(logits, labels)
    num_classes = scores.shape[1]
    predictions = scores.argmax(axis=1)
    matrix = confusion_matrix(predictions, y, num_classes)
    return {
        "top1_accuracy": top_k_accuracy(scores, y, 1),
        "top3_accuracy": top_k_accuracy(scores, y, min(3, num_classes)),
        "top5_accuracy": top_k_accuracy(scores, y, min(5, num_classes)),
        "macro_f1": macro_f1_from_confusion(matrix),
        "num_samples": int(len(y)),
        "num_classes": int(num_classes),
        "confusion_matrix": matrix,
    }

"""EEG classification metrics against scikit-learn."""

import re

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import f1_score, top_k_accuracy_score

from brainvis_hf.evaluation import eeg_classification_metrics, top_k_accuracy


@pytest.mark.parametrize("num_classes,num_samples", [(40, 300), (6, 25), (3, 10)])
def test_matches_sklearn(num_classes, num_samples):
    rng = np.random.default_rng(num_classes)
    labels = rng.integers(0, num_classes, size=num_samples)
    logits = rng.normal(size=(num_samples, num_classes))
    logits[np.arange(num_samples), labels] += 1.5  # better than chance
    result = eeg_classification_metrics(torch.from_numpy(logits).float(), torch.from_numpy(labels))
    all_labels = np.arange(num_classes)
    for k in (1, 3, 5):
        # k >= number of classes: every label is in the top k
        expected = top_k_accuracy_score(labels, logits, k=k, labels=all_labels) if k < num_classes else 1.0
        assert result[f"top{k}_accuracy"] == pytest.approx(expected, abs=1e-12)
    predictions = logits.argmax(axis=1)
    assert result["macro_f1"] == pytest.approx(f1_score(labels, predictions, average="macro"), abs=1e-12)
    np.testing.assert_array_equal(result["confusion_matrix"], sk_confusion_matrix(labels, predictions, labels=all_labels))
    assert result["num_samples"] == num_samples and result["num_classes"] == num_classes
    assert result["top1_accuracy"] == pytest.approx(np.trace(result["confusion_matrix"]) / num_samples)


def test_ties_rank_lower_class_first():
    logits = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    labels = np.array([0, 1, 2])
    # label 0 wins its tie (rank 0); label 1 ranks after class 0 (rank 1); label 2 ranks 2nd of 3 ties
    assert top_k_accuracy(logits, labels, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(logits, labels, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(logits, labels, 3) == 1.0
    assert eeg_classification_metrics(logits, labels)["top1_accuracy"] == pytest.approx(1 / 3)


def test_macro_f1_only_over_present_classes():
    logits = np.eye(10)[[0, 0, 1, 2]]  # predictions 0, 0, 1, 2
    labels = np.array([0, 1, 1, 3])
    assert eeg_classification_metrics(logits, labels)["macro_f1"] == pytest.approx(f1_score(labels, logits.argmax(1), average="macro"))


@pytest.mark.parametrize(
    "logits, labels, message",
    [
        (np.zeros((3, 4)), np.zeros(2, int), "`labels` must be 1-D with one entry per row of `logits` (3); got shape (2,)"),
        (np.zeros((2, 4)), np.array([0, 4]), "`labels` class ids must be in [0, 3] (logits has 4 columns); got range [0, 4]"),
        (np.zeros(4), np.zeros(4, int), "`logits` must be 2-D"),
        (np.full((1, 2), np.nan), np.zeros(1, int), "`logits` contains NaN"),
    ],
)
def test_errors(logits, labels, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        eeg_classification_metrics(logits, labels)

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


def test_training_logs_and_evaluation_agree_on_ties_and_absent_classes():
    """The training metrics (``compute_stage_metrics``) are the evaluation's numbers: same tie rule
    (lower class id first) and the same macro-F1 (over classes in the labels or predictions)."""
    from transformers import EvalPrediction

    from brainvis_hf.training import compute_stage_metrics

    # 6 classes; classes 4 and 5 never occur; every row has ties at the top
    logits = np.array(
        [[1.0, 1.0, 0.0, 0.0, 0.0, 0.0],  # tie 0/1 -> predicts 0 (label 1: top-1 miss, top-3 hit)
         [0.0, 2.0, 2.0, 2.0, 2.0, 0.0],  # 4-way tie -> predicts 1 (label 3 ranks 3rd: top-3 hit)
         [0.5, 0.5, 0.5, 0.5, 0.5, 0.5],  # all tied -> predicts 0 (label 0: hit)
         [0.0, 0.0, 3.0, 3.0, 0.0, 0.0]],  # tie 2/3 -> predicts 2 (label 2: hit)
    )
    labels = np.array([1, 3, 0, 2])
    training = compute_stage_metrics("classification")(EvalPrediction(predictions=logits, label_ids=labels))
    evaluation = eeg_classification_metrics(logits, labels)
    assert training == {"accuracy": evaluation["top1_accuracy"], "top3_accuracy": evaluation["top3_accuracy"],
                        "macro_f1": evaluation["macro_f1"]}
    # independent numbers: predictions [0, 1, 0, 2]; label 3 ranks after 1 and 2 -> 3rd, inside top-3
    assert training["accuracy"] == pytest.approx(2 / 4)
    assert training["top3_accuracy"] == pytest.approx(4 / 4)
    # per class F1 over the present classes 0..3: c0 tp1 fp1 -> 2/3; c1 fp1 fn1 -> 0; c2 tp1 -> 1; c3 fn1 -> 0
    assert training["macro_f1"] == pytest.approx((2 / 3 + 0 + 1 + 0) / 4)
    assert training["macro_f1"] == pytest.approx(f1_score(labels, [0, 1, 0, 2], average="macro"))

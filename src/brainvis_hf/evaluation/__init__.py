"""Evaluation: EEG classification and image-generation metrics, the linear probe, zero-shot
retrieval, the confound controls (:func:`temporal_adjacency_probe`), and
:func:`evaluate_generated` (the library function behind ``brainvis evaluate``).

Every metric is a plain function here and also an ``evaluate`` module under
``brainvis_hf/evaluation/modules/<name>/<name>.py`` (see :func:`metric_module_path`). Heavy
optional libraries (scikit-learn, matplotlib, transformers models) are imported inside the
functions that need them.
"""

from __future__ import annotations

from pathlib import Path

from .classification_metrics import confusion_matrix, eeg_classification_metrics, macro_f1_from_confusion, top_k_accuracy
from .controls import (
    RECORDING_ORDER_COLUMN,
    binomial_p_above,
    chance_level,
    temporal_adjacency_predictions,
    temporal_adjacency_probe,
)
from .features import (
    FeatureExtractorUnavailableError,
    TransformersImageFeatureExtractor,
    extract_features,
    fid,
    images_to_tensor,
    load_inception_feature_extractor,
)
from .generation_metrics import (
    feature_statistics,
    frechet_distance,
    frechet_distance_from_statistics,
    inception_score,
    n_way_top_k_accuracy,
    n_way_top_k_hit_rates,
)
from .image_classifier import DEFAULT_IMAGE_CLASSIFIER, classify_images, load_image_classifier
from .linear_probe import binned_eeg_features, linear_baseline_accuracy, linear_probe_accuracy
from .report import evaluate_generated, metrics_markdown, read_generated_folder
from .structural_similarity import ssim, ssim_batch
from .zero_shot import cosine_scores, evaluate_zero_shot, zero_shot_evaluation, zero_shot_markdown, zero_shot_retrieval

#: names of the bundled ``evaluate`` modules
METRIC_MODULES = ("n_way_top_k_accuracy", "inception_score", "fid", "ssim", "eeg_classification", "zero_shot_retrieval")


def metric_module_path(name: str) -> str:
    """Path of a bundled ``evaluate`` module, for ``evaluate.load(metric_module_path(name))``."""
    if name not in METRIC_MODULES:
        raise ValueError(f"unknown metric module {name!r}; available: {', '.join(METRIC_MODULES)}")
    return str(Path(__file__).parent / "modules" / name / f"{name}.py")


__all__ = [
    "DEFAULT_IMAGE_CLASSIFIER",
    "RECORDING_ORDER_COLUMN",
    "METRIC_MODULES",
    "FeatureExtractorUnavailableError",
    "TransformersImageFeatureExtractor",
    "binomial_p_above",
    "chance_level",
    "classify_images",
    "confusion_matrix",
    "cosine_scores",
    "eeg_classification_metrics",
    "evaluate_generated",
    "evaluate_zero_shot",
    "extract_features",
    "feature_statistics",
    "fid",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "images_to_tensor",
    "inception_score",
    "binned_eeg_features",
    "linear_baseline_accuracy",
    "linear_probe_accuracy",
    "load_image_classifier",
    "load_inception_feature_extractor",
    "macro_f1_from_confusion",
    "metric_module_path",
    "metrics_markdown",
    "n_way_top_k_accuracy",
    "n_way_top_k_hit_rates",
    "read_generated_folder",
    "ssim",
    "ssim_batch",
    "temporal_adjacency_predictions",
    "temporal_adjacency_probe",
    "top_k_accuracy",
    "zero_shot_evaluation",
    "zero_shot_markdown",
    "zero_shot_retrieval",
]

"""The pipeline's model card and the push helpers, kept under this name for existing imports.

The code lives in :mod:`brainvis_hf.hub` (``hub/cards.py``, ``hub/upload.py``,
``hub/citations.py``); import from there.
"""

# ruff: noqa: F401  (re-exports)

from __future__ import annotations

from .hub import (
    CODE_LICENSE,
    EEG_IMAGENET_CITATION,
    IMAGE_LIMITATIONS,
    METRIC_NAMES,
    PIPELINE_INTENDED_USE,
    PIPELINE_TAG,
    SD_LICENSE,
    pipeline_model_card,
    push_model_to_hub,
    push_pipeline_to_hub,
    read_training_run,
    render_card_html,
)

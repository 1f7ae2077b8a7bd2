"""Hub readiness of BrainVis artefacts: model cards (:mod:`.cards`), uploads (:mod:`.upload`) and
citations (:mod:`.citations`), one implementation each.

- :func:`build_model_card`: the generic card (any BrainVis model, pipeline or data set card);
  :func:`training_run_card` for a ``brainvis train`` run folder; :func:`pipeline_model_card` for a
  ``BrainVisPipeline``.
- :func:`push_folder_to_hub` (model or dataset repositories), :func:`push_model_to_hub`,
  :func:`push_pipeline_to_hub`: ``HfApi.create_repo`` + ``HfApi.upload_folder``, one commit.
- :mod:`brainvis_hf.hub.citations`: every BibTeX entry the package writes.
"""

from __future__ import annotations

from .cards import (
    BRAINVIS_TAGS,
    CODE_LICENSE,
    DEFAULT_INTENDED_USE,
    DEFAULT_LIMITATIONS,
    IMAGE_LIMITATIONS,
    METRIC_NAMES,
    PIPELINE_INTENDED_USE,
    PIPELINE_TAG,
    SD_LICENSE,
    build_model_card,
    format_value,
    markdown_table,
    pipeline_model_card,
    read_training_run,
    render_card_html,
    reportable_metrics,
    training_run_card,
)
from .citations import BRAINVIS_CITATION, EEG_IMAGENET_CITATION, join_citations
from .upload import push_folder_to_hub, push_model_to_hub, push_pipeline_to_hub

__all__ = [
    "BRAINVIS_CITATION",
    "BRAINVIS_TAGS",
    "CODE_LICENSE",
    "DEFAULT_INTENDED_USE",
    "DEFAULT_LIMITATIONS",
    "EEG_IMAGENET_CITATION",
    "IMAGE_LIMITATIONS",
    "METRIC_NAMES",
    "PIPELINE_INTENDED_USE",
    "PIPELINE_TAG",
    "SD_LICENSE",
    "build_model_card",
    "format_value",
    "join_citations",
    "markdown_table",
    "pipeline_model_card",
    "push_folder_to_hub",
    "push_model_to_hub",
    "push_pipeline_to_hub",
    "read_training_run",
    "render_card_html",
    "reportable_metrics",
    "training_run_card",
]

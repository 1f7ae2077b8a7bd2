"""brainvis-hf: BrainVis (EEG -> image reconstruction) as Hugging Face models, data and pipelines.

Importing the package registers the BrainVis configs and models with the ``transformers`` Auto
classes (so ``AutoModel.from_pretrained`` finds them). Everything else (data, pipeline,
training, evaluation) is imported lazily on first use, so ``import brainvis_hf`` does not pull
in ``diffusers`` or ``datasets``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module (relative to this package) that defines it
_LAZY_IMPORTS: dict[str, str] = {
    # models
    "BrainVisTimeEncoderConfig": ".models",
    "BrainVisFreqEncoderConfig": ".models",
    "BrainVisConfig": ".models",
    "BrainVisTimeEncoderModel": ".models",
    "BrainVisTimeEncoderForMaskedModeling": ".models",
    "BrainVisTimeEncoderForEEGClassification": ".models",
    "BrainVisFreqEncoderModel": ".models",
    "BrainVisFreqEncoderForEEGClassification": ".models",
    "BrainVisModel": ".models",
    "BrainVisForEEGClassification": ".models",
    "BrainVisForCLIPAlignment": ".models",
    "convert_original_checkpoints": ".models.convert_original",
    # pipeline
    "BrainVisPipeline": ".pipelines",
    "BrainVisPipelineOutput": ".pipelines",
    "assemble_brainvis_pipeline": ".pipelines",
    # data
    "load_eeg_imagenet": ".data",
    "EEGImageNet": ".data",
    "BrainVisDataCollator": ".data",
    "write_synthetic_eeg_imagenet": ".data",
    "prepare_dataset": ".data",
    "load_prepared_dataset": ".data",
    # training
    "train_stage": ".training",
    "train_diffusion": ".training.diffusion",
    "load_diffusion_components": ".training.diffusion",
    "train_image_classifier": ".training.image_classifier",
    "compute_clip_targets": ".data.clip_targets",
    "load_clip_targets": ".data.clip_targets",
    # demo
    "run_demo": ".demo",
    # labels
    "EEG_IMAGENET_WNIDS": ".data.labels",
    "WNID_TO_WORDS": ".data.labels",
    # evaluation
    "evaluate_generated": ".evaluation",
    "linear_probe_accuracy": ".evaluation",
    "n_way_top_k_accuracy": ".evaluation",
    "eeg_classification_metrics": ".evaluation",
}

__all__ = ["__version__", *_LAZY_IMPORTS]

from . import models as _models  # noqa: E402,F401  (registers the Auto classes)


def __getattr__(name: str) -> Any:
    module = _LAZY_IMPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'brainvis_hf' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for static type checkers and IDEs only
    from .data import (
        BrainVisDataCollator,
        EEGImageNet,
        load_eeg_imagenet,
        load_prepared_dataset,
        prepare_dataset,
        write_synthetic_eeg_imagenet,
    )
    from .data.clip_targets import compute_clip_targets, load_clip_targets
    from .data.labels import EEG_IMAGENET_WNIDS, WNID_TO_WORDS
    from .demo import run_demo
    from .evaluation import (
        eeg_classification_metrics,
        evaluate_generated,
        linear_probe_accuracy,
        n_way_top_k_accuracy,
    )
    from .models import (
        BrainVisConfig,
        BrainVisForCLIPAlignment,
        BrainVisForEEGClassification,
        BrainVisFreqEncoderConfig,
        BrainVisFreqEncoderForEEGClassification,
        BrainVisFreqEncoderModel,
        BrainVisModel,
        BrainVisTimeEncoderConfig,
        BrainVisTimeEncoderForEEGClassification,
        BrainVisTimeEncoderForMaskedModeling,
        BrainVisTimeEncoderModel,
    )
    from .models.convert_original import convert_original_checkpoints
    from .pipelines import BrainVisPipeline, BrainVisPipelineOutput, assemble_brainvis_pipeline
    from .training import train_stage
    from .training.diffusion import load_diffusion_components, train_diffusion
    from .training.image_classifier import train_image_classifier

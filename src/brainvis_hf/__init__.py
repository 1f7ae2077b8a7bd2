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
    "load_things_eeg2": ".data",
    "ThingsEEG2": ".data",
    "write_synthetic_things_eeg2": ".data",
    "prepare_dataset": ".data",
    "load_prepared_dataset": ".data",
    # EEG users' formats (MNE input, braindecode export, signal metadata)
    "epochs_to_eeg_values": ".data.mne_io",
    "raw_to_eeg_values": ".data.mne_io",
    "epochs_to_dataset_dict": ".data.mne_io",
    "to_braindecode_arrays": ".data.braindecode_io",
    "save_braindecode_arrays": ".data.braindecode_io",
    "load_braindecode_arrays": ".data.braindecode_io",
    "to_braindecode_dataset": ".data.braindecode_io",
    "set_signal_info": ".models.configuration_brainvis",
    # training
    "train_stage": ".training",
    "train_diffusion": ".training.diffusion",
    "load_diffusion_components": ".training.diffusion",
    "train_image_classifier": ".training.image_classifier",
    "compute_clip_targets": ".data.clip_targets",
    "load_clip_targets": ".data.clip_targets",
    # demo
    "run_demo": ".apps.demo",
    # labels
    "EEG_IMAGENET_WNIDS": ".data.labels",
    "WNID_TO_WORDS": ".data.labels",
    # evaluation
    "evaluate_generated": ".evaluation",
    "linear_baseline_accuracy": ".evaluation",
    "linear_probe_accuracy": ".evaluation",
    "n_way_top_k_accuracy": ".evaluation",
    "eeg_classification_metrics": ".evaluation",
    "evaluate_zero_shot": ".evaluation",
    "zero_shot_retrieval": ".evaluation",
    "temporal_adjacency_probe": ".evaluation",
}

__all__ = ["__version__", *_LAZY_IMPORTS]



def _started_as_cli() -> bool:
    """Whether this process is the ``brainvis`` command (console script or ``python -m brainvis_hf``).

    The command registers the Auto classes itself once a sub-command runs (``cli.main``), so that
    ``brainvis --help`` does not import torch and transformers (seconds on a loaded machine).
    """
    import os
    import sys

    if os.path.basename(sys.argv[0] if sys.argv else "") in ("brainvis", "brainvis.exe", "brainvis-script.py"):
        return True
    orig = list(getattr(sys, "orig_argv", []))
    return "-m" in orig and orig[orig.index("-m") + 1 : orig.index("-m") + 2] in (["brainvis_hf"], ["brainvis_hf.cli"])


if not _started_as_cli():
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
        ThingsEEG2,
        load_prepared_dataset,
        load_things_eeg2,
        prepare_dataset,
        write_synthetic_eeg_imagenet,
        write_synthetic_things_eeg2,
    )
    from .data.braindecode_io import (
        load_braindecode_arrays,
        save_braindecode_arrays,
        to_braindecode_arrays,
        to_braindecode_dataset,
    )
    from .data.clip_targets import compute_clip_targets, load_clip_targets
    from .data.mne_io import epochs_to_dataset_dict, epochs_to_eeg_values, raw_to_eeg_values
    from .data.labels import EEG_IMAGENET_WNIDS, WNID_TO_WORDS
    from .apps.demo import run_demo
    from .evaluation import (
        eeg_classification_metrics,
        evaluate_generated,
        linear_baseline_accuracy,
        evaluate_zero_shot,
        linear_probe_accuracy,
        n_way_top_k_accuracy,
        temporal_adjacency_probe,
        zero_shot_retrieval,
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
    from .models.configuration_brainvis import set_signal_info
    from .models.convert_original import convert_original_checkpoints
    from .pipelines import BrainVisPipeline, BrainVisPipelineOutput, assemble_brainvis_pipeline
    from .training import train_stage
    from .training.diffusion import load_diffusion_components, train_diffusion
    from .training.image_classifier import train_image_classifier

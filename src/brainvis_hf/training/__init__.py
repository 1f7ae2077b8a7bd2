"""Training of every BrainVis stage with ``transformers.Trainer`` (``accelerate``-compatible).

``train_stage(stage, data_dir, output_dir, ...)`` trains any stage; the ``brainvis train STAGE``
command and the ``training/train.py`` script wrap it. See ``docs/training.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "train_stage": ".stages",
    "build_stage_model": ".stages",
    "describe_data": ".stages",
    "TrainingResult": ".stages",
    "STAGES": ".arguments",
    "STAGE_SPECS": ".arguments",
    "PROTOCOLS": ".arguments",
    "load_training_config": ".arguments",
    "build_training_arguments": ".arguments",
    "BrainVisTrainer": ".trainer",
    "compute_stage_metrics": ".trainer",
    "MomentumUpdateCallback": ".callbacks",
    "LinearProbeCallback": ".callbacks",
    "linear_probe": ".callbacks",
    "pooled_features": ".callbacks",
    "plot_training_curves": "..plots",
    "apply_lora": ".lora",
    "merge_lora": ".lora",
    "merge_lora_adapter": ".lora_merge",
    "split_hashes": "..data.splits",
    "split_record": "..data.splits",
    "subject_folds": ".protocols",
    "run_subject_protocol": ".protocols",
    "shuffled_label_dataset": ".protocols",
    "run_controls": ".protocols",
    "temporal_adjacency_probe": ".protocols",
    "train_diffusion": ".diffusion",
    "load_diffusion_components": ".diffusion",
    "DiffusionTrainingResult": ".diffusion",
    "train_image_classifier": ".image_classifier",
    "train_demo_diffusion": ".demo_weights",
    "train_demo_image_classifier": ".demo_weights",
    "load_demo_diffusion_components": ".demo_weights",
    "demo_diffusion_dir": ".demo_weights",
    "demo_image_classifier_dir": ".demo_weights",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'brainvis_hf.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

"""Training of every BrainVis stage (``accelerate``-compatible).

``train_stage(stage, data_dir, output_dir, ...)`` (:mod:`.run`) trains any stage of the registry
in :mod:`.stages`; the ``brainvis train STAGE`` command and the ``training/train.py`` script wrap
it. See ``docs/training.md`` and ``docs/architecture.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "train_stage": ".run",
    "build_stage_model": ".stage_models",
    "describe_data": ".stage_data",
    "TrainingResult": ".stages",
    "RunOptions": ".stages",
    "Stage": ".stages",
    "LoraTargets": ".stages",
    "STAGE_REGISTRY": ".stages",
    "STAGES": ".stages",
    "STAGE_SPECS": ".stages",
    "get_stage": ".stages",
    "get_stage_spec": ".stages",
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

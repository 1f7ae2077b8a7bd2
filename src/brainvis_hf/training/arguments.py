"""The Trainer stages' hyper-parameter files and the ``TrainingArguments`` built from them.

Each stage has one JSON file per preset in ``hub_configs/training/<stage>.json`` (paper) and
``hub_configs/tiny/training/<stage>.json`` (tiny)::

    {"stage": "freq", "description": "...", "model": "freq_encoder",
     "linear_probe_every_n_epochs": 10,            # time-pretrain only
     "training_arguments": {"optim": "adamw_torch", "learning_rate": 0.001, ...}}

``training_arguments`` holds ``transformers.TrainingArguments`` fields; unknown names are an
error at start. Explicit overrides (CLI options, keyword arguments) win over the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from transformers import TrainingArguments

from ..presets import PRESETS, preset_dir
from .stages import STAGE_REGISTRY, TRAINER_STAGES, Stage, get_stage


# The stages themselves live in .stages (one Stage object each); these are their old names here.
StageSpec = Stage
STAGE_SPECS = STAGE_REGISTRY
get_stage_spec = get_stage
#: the stages with a hyper-parameter file (the Trainer stages)
STAGES: tuple[str, ...] = TRAINER_STAGES
PROTOCOLS: tuple[str, ...] = ("validation", "paper")

_EXTRA_KEYS = {"stage", "description", "model", "linear_probe_every_n_epochs", "training_arguments", "notes"}


def check_preset(preset: str) -> str:
    """Return ``preset`` or raise a ``ValueError`` naming the known presets."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; expected one of {', '.join(PRESETS)}.")
    return preset


def check_protocol(protocol: str) -> str:
    """Return ``protocol`` or raise a ``ValueError`` naming the known protocols."""
    if protocol not in PROTOCOLS:
        raise ValueError(
            f"Unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)} "
            "('validation': train on train, select on validation; 'paper': the original's "
            "train on train+validation, select on test)."
        )
    return protocol


def training_config_path(stage: str, preset: str = "paper") -> Path:
    """The shipped hyper-parameter file of ``stage`` in ``preset``."""
    get_stage(stage)
    return preset_dir("training", check_preset(preset)) / f"{stage}.json"


def load_training_config(
    stage: str, preset: str = "paper", path: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Read and validate a stage's hyper-parameter file (``path`` or the preset's)."""
    spec = get_stage(stage)
    file = Path(path) if path is not None else training_config_path(stage, preset)
    if not file.is_file():
        raise FileNotFoundError(f"Training configuration file {file} does not exist")
    try:
        config = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"Training configuration file {file} is not valid JSON: {err}") from None
    if not isinstance(config, dict):
        raise ValueError(f"Training configuration file {file} must hold a JSON object; got {type(config).__name__}")
    unknown = sorted(set(config) - _EXTRA_KEYS)
    if unknown:
        raise ValueError(
            f"Training configuration file {file} has unknown key(s) {unknown}; expected some of {sorted(_EXTRA_KEYS)} "
            "(TrainingArguments fields go under 'training_arguments')."
        )
    if config.get("stage", stage) != stage:
        raise ValueError(f"Training configuration file {file} is for stage {config['stage']!r}, not {stage!r}")
    config.setdefault("training_arguments", {})
    check_training_argument_names(config["training_arguments"], str(file))
    config.setdefault("model", spec.model_preset)
    config["source"] = str(file)
    return config


def check_training_argument_names(values: Mapping[str, Any], where: str) -> None:
    """Raise a ``ValueError`` naming any key of ``values`` that is not a ``TrainingArguments`` field."""
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"{where}: unknown TrainingArguments field(s) {unknown}")


def build_training_arguments(
    stage: str,
    output_dir: str | os.PathLike,
    config: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    *,
    seed: int = 42,
):
    """``TrainingArguments`` of a run: stage defaults < hyper-parameter file < ``overrides``.

    The stage defaults evaluate and save every epoch, keep the best model on the stage's
    validation metric (``load_best_model_at_end``), log to TensorBoard under ``output_dir/runs``
    and keep the dataset columns the collator needs.
    """
    spec = get_stage(stage)
    values: dict[str, Any] = {
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "logging_strategy": "steps",
        "load_best_model_at_end": True,
        "metric_for_best_model": spec.metric_for_best_model,
        "greater_is_better": spec.greater_is_better,
        "report_to": ["tensorboard"],
        "remove_unused_columns": False,
        "dataloader_num_workers": 0,
        "save_only_model": False,
        "dataloader_pin_memory": torch.cuda.is_available(),
    }
    values.update(config.get("training_arguments", {}))
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    check_training_argument_names(overrides, "training overrides")
    values.update(overrides)
    values["seed"] = seed
    values["output_dir"] = str(output_dir)
    if values.get("eval_strategy") in ("no", None):
        values["load_best_model_at_end"] = False
    return TrainingArguments(**values)

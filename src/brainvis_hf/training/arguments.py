"""Stages, their training hyper-parameter files and the ``TrainingArguments`` built from them.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from ..presets import PRESETS, preset_dir


@dataclass(frozen=True)
class StageSpec:
    """What a stage needs and how its best model is selected.

    Attributes:
        name: the stage name (``brainvis train NAME``).
        model_preset: the ``hub_configs`` folder of its model configuration.
        init_help: what ``--init`` must name, in words (for error messages).
        min_init: the least number of ``--init`` folders.
        max_init: the most.
        metric_for_best_model: validation metric of model selection.
        greater_is_better: direction of that metric.
        supports_lora: whether ``--lora`` applies (stages that fine-tune a pretrained encoder).
    """

    name: str
    model_preset: str
    init_help: str
    min_init: int
    max_init: int
    metric_for_best_model: str
    greater_is_better: bool
    supports_lora: bool


STAGE_SPECS: dict[str, StageSpec] = {
    "time-pretrain": StageSpec(
        "time-pretrain", "time_encoder", "optionally a time-encoder folder to continue pretraining from",
        0, 1, "linear_probe_accuracy", True, False,
    ),
    "time-finetune": StageSpec(
        "time-finetune", "time_encoder", "the pretrained time-encoder folder (output of time-pretrain)",
        1, 1, "accuracy", True, True,
    ),
    "freq": StageSpec(
        "freq", "freq_encoder", "optionally a frequency-encoder folder to continue from", 0, 1, "accuracy", True, False,
    ),
    "timefreq": StageSpec(
        "timefreq", "timefreq",
        "the time-encoder folder (time-pretrain or time-finetune output) and then the frequency-encoder folder "
        "(freq output)",
        2, 2, "accuracy", True, True,
    ),
    "align": StageSpec(
        "align", "align", "the unified time-frequency classifier folder (timefreq output)", 1, 1, "cosine", True, True,
    ),
}
STAGES: tuple[str, ...] = tuple(STAGE_SPECS)
PROTOCOLS: tuple[str, ...] = ("validation", "paper")

_EXTRA_KEYS = {"stage", "description", "model", "linear_probe_every_n_epochs", "training_arguments", "notes"}


def get_stage_spec(stage: str) -> StageSpec:
    """The :class:`StageSpec` of ``stage``; ``ValueError`` naming the known stages otherwise."""
    if stage not in STAGE_SPECS:
        raise ValueError(f"Unknown stage {stage!r}; expected one of {', '.join(STAGES)}.")
    return STAGE_SPECS[stage]


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
    get_stage_spec(stage)
    return preset_dir("training", check_preset(preset)) / f"{stage}.json"


def load_training_config(
    stage: str, preset: str = "paper", path: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Read and validate a stage's hyper-parameter file (``path`` or the preset's)."""
    spec = get_stage_spec(stage)
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
    from transformers import TrainingArguments

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
    from transformers import TrainingArguments

    spec = get_stage_spec(stage)
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

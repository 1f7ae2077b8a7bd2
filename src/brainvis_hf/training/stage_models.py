"""The model each Trainer stage trains, built from the data and its ``--init`` folders and checked
against both before any training.

One builder per stage, named by its :class:`~.stages.Stage` (``model_builder``); they share the
checks below. Fresh models (``time-pretrain`` and ``freq`` without ``--init``) take the preset's
configuration (or ``--config``, a full ``config.json``); with a preset, the class count and
class words come from the data, with ``--config`` they must match it. Models from ``--init``
folders keep their architecture; a new head is sized to the data, an existing one must match it.
Every builder returns ``(model, source)``: the model and where its configuration came from.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from transformers import AutoConfig

from ..models import (
    BrainVisForCLIPAlignment,
    BrainVisForEEGClassification,
    BrainVisFreqEncoderForEEGClassification,
    BrainVisTimeEncoderForEEGClassification,
    BrainVisTimeEncoderForMaskedModeling,
)
from ..presets import preset_dir
from .stage_data import DataInfo
from .stages import Stage, get_stage

_logger = logging.getLogger(__name__)

# The pipeline prompts its refinement stage with the class this model's head predicts. The paper
# trains `align` on the CLIP loss alone and takes the class from the separate unified classifier;
# with one model serving both, the CLIP loss alone lets the head drift (measured on the synthetic
# test split: 52% -> 11% top-1 in 3 epochs). So the align stage keeps the class cross-entropy by
# default; `--config` with {"alignment_classification_loss_weight": 0} trains the paper's loss.
ALIGN_CLASSIFICATION_LOSS_WEIGHT = 1.0

_UNIFIED_OVERRIDES = ("prompt_sequence_length", "prompt_embed_dim", "alignment_classification_loss_weight",
                      "alignment_centred_loss_weight",
                      "eeg_time_window")


def build_stage_model(
    stage: str,
    data: DataInfo,
    *,
    preset: str = "paper",
    config_path: str | os.PathLike | None = None,
    init: Sequence[str | os.PathLike] = (),
    prompt_shape: tuple[int, int] | None = None,
):
    """The model ``stage`` trains, checked against the data (see the module docstring).

    Returns:
        ``(model, source)``: the model and a description of where its configuration came from.
    """
    spec = get_stage(stage)
    builder = globals().get(spec.model_builder) if spec.model_builder else None
    if builder is None:
        raise ValueError(f"Stage {stage!r} has no model builder in {__name__} (it runs a loop of its own)")
    return builder(spec, data, preset=preset, config_path=config_path, init=[Path(p) for p in init],
                   prompt_shape=prompt_shape)


# ----------------------------------------------------------------------------------------------
# One builder per stage
# ----------------------------------------------------------------------------------------------


def build_time_pretrain_model(stage: Stage, data: DataInfo, *, preset, config_path, init, prompt_shape=None):
    """A fresh LMM model, or one to continue pretraining from (``--init``: a masked-modeling folder)."""
    if not init:
        return _fresh_model(stage, BrainVisTimeEncoderForMaskedModeling, data, preset, config_path)
    folder = init[0]
    config_dict = _init_config(folder, "brainvis_time_encoder", "a time encoder")
    if "BrainVisTimeEncoderForMaskedModeling" not in (config_dict.get("architectures") or []):
        raise ValueError(
            f"--init {folder}: continuing time-pretrain needs a masked-modeling checkpoint "
            f"(architectures {config_dict.get('architectures')})"
        )
    with _expected_key_changes(f"time-pretrain: continuing from {folder}"):
        model = BrainVisTimeEncoderForMaskedModeling.from_pretrained(str(folder), **_label_kwargs(data))
    _check_shape(data, model.config, f"--init {folder}")
    return model, f"--init {folder}"


def build_time_finetune_model(stage: Stage, data: DataInfo, *, preset, config_path, init, prompt_shape=None):
    """The pretrained time encoder (``--init``) with a classifier head sized to the data."""
    return _classifier_from_init(stage, BrainVisTimeEncoderForEEGClassification, data, init[0],
                                 "brainvis_time_encoder", "a time encoder")


def build_freq_model(stage: Stage, data: DataInfo, *, preset, config_path, init, prompt_shape=None):
    """A fresh frequency-encoder classifier, or one to continue from (``--init``)."""
    if not init:
        return _fresh_model(stage, BrainVisFreqEncoderForEEGClassification, data, preset, config_path)
    return _classifier_from_init(stage, BrainVisFreqEncoderForEEGClassification, data, init[0],
                                 "brainvis_freq_encoder", "a frequency encoder")


def build_timefreq_model(stage: Stage, data: DataInfo, *, preset, config_path, init, prompt_shape=None):
    """The unified classifier from a time-encoder and a frequency-encoder folder (new head)."""
    time_dir, freq_dir = init
    time_dict = _init_config(time_dir, "brainvis_time_encoder", "a time encoder first", "--init (time encoder)")
    freq_dict = _init_config(freq_dir, "brainvis_freq_encoder", "a frequency encoder second",
                             "--init (frequency encoder)")
    for folder, config_dict in ((time_dir, time_dict), (freq_dir, freq_dict)):
        _check_shape(data, _Dims(config_dict), f"--init {folder}")
    overrides = {**_unified_overrides(config_path), **_label_kwargs(data)}
    with _expected_key_changes(
        f"timefreq: encoders from {time_dir} and {freq_dir}; their classifier heads are dropped, the unified "
        "model's head is new"
    ):
        model = BrainVisForEEGClassification.from_encoders(str(time_dir), str(freq_dir), **overrides)
    return model, f"--init {time_dir} --init {freq_dir}"


def build_align_model(stage: Stage, data: DataInfo, *, preset, config_path, init, prompt_shape=None):
    """The alignment model from the unified classifier (``--init``), its prompt projection sized to
    the CLIP targets (``prompt_shape``)."""
    folder = init[0]
    config_dict = _init_config(folder, "brainvis", "the unified time-frequency model (timefreq output)")
    source = f"--init {folder}"
    _check_num_labels(data, config_dict.get("num_labels", len(config_dict.get("id2label") or {})), source)
    _check_shape(data, _Dims(config_dict.get("time_config") or {}), source)
    kwargs: dict[str, Any] = {
        "alignment_classification_loss_weight": ALIGN_CLASSIFICATION_LOSS_WEIGHT,
        **_unified_overrides(config_path),
    }
    if prompt_shape is not None:
        if "BrainVisForCLIPAlignment" in (config_dict.get("architectures") or []):
            have = (config_dict.get("prompt_sequence_length"), config_dict.get("prompt_embed_dim"))
            if tuple(have) != tuple(prompt_shape):
                raise ValueError(
                    f"--init {folder} predicts prompts of {have[0]} x {have[1]} but the CLIP targets in "
                    f"{data.path} are {prompt_shape[0]} x {prompt_shape[1]}"
                )
        kwargs.update(prompt_sequence_length=prompt_shape[0], prompt_embed_dim=prompt_shape[1])
    with _expected_key_changes(f"align: unified model from {folder}; the prompt projection is new"):
        model = BrainVisForCLIPAlignment.from_pretrained(str(folder), **kwargs)
    return model, source


def rebuild_base_model(meta: Mapping[str, Any]):
    """Rebuild the (pre-LoRA) model of a run from its ``brainvis_lora.json`` record."""
    missing = [p for p in meta["init"] if not Path(p).is_dir()]
    if missing:
        raise FileNotFoundError(f"The base model's --init folder(s) {missing} no longer exist; cannot rebuild it")
    data = DataInfo(
        path=meta.get("data", ""),
        num_channels=meta["num_channels"],
        num_samples=meta["num_samples"],
        num_labels=meta["num_labels"],
        id2label={int(k): v for k, v in meta["id2label"].items()},
        split_sizes={},
    )
    shape = tuple(meta["prompt_shape"]) if meta.get("prompt_shape") else None
    model, _ = build_stage_model(meta["stage"], data, init=meta["init"], prompt_shape=shape)
    return model


# ----------------------------------------------------------------------------------------------
# Shared steps and checks
# ----------------------------------------------------------------------------------------------


def _fresh_model(stage: Stage, model_class, data: DataInfo, preset: str, config_path):
    """A randomly initialised ``model_class`` of the preset's configuration (or ``--config``)."""
    if config_path is not None:
        source = str(config_path)
        config = AutoConfig.from_pretrained(str(config_path))
        _check_num_labels(data, config.num_labels, source)
    else:
        folder = preset_dir(stage.model_preset, preset)
        source = f"preset {preset!r}: {folder / 'config.json'}"
        config = AutoConfig.from_pretrained(str(folder), **_label_kwargs(data))
    if not isinstance(config, model_class.config_class):
        raise ValueError(
            f"Configuration {source} is a {type(config).__name__}; stage {stage.name!r} needs a "
            f"{model_class.config_class.__name__}"
        )
    _check_shape(data, config, source)
    return model_class(config), source


def _classifier_from_init(stage: Stage, model_class, data: DataInfo, folder: Path, model_type: str, what: str):
    """An encoder classifier from a previous stage's folder; an existing head must match the data."""
    config_dict = _init_config(folder, model_type, what)
    source = f"--init {folder}"
    if _has_head(config_dict):
        _check_num_labels(data, config_dict.get("num_labels", len(config_dict.get("id2label") or {})), source)
    with _expected_key_changes(
        f"{stage.name}: encoder weights from {folder}; its pre-training heads are dropped, a classifier head "
        "is created where it has none"
    ):
        model = model_class.from_pretrained(str(folder), **_label_kwargs(data))
    _check_shape(data, model.config, source)
    return model, source


def _init_config(folder: Path, model_type: str, what: str, flag: str = "--init") -> dict[str, Any]:
    """The ``config.json`` of an ``--init`` folder, checked to be of ``model_type``."""
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{flag} {folder} has no config.json (expected a save_pretrained folder)")
    config_dict = json.loads(path.read_text())
    got = config_dict.get("model_type")
    if got != model_type:
        raise ValueError(f"--init {folder}: expected {what} (model_type {model_type!r}), got model_type {got!r}")
    return config_dict


def _check_shape(data: DataInfo, config, source: str) -> None:
    expected = (int(config.num_channels), int(config.num_samples))
    got = (data.num_channels, data.num_samples)
    if expected != got:
        raise ValueError(
            f"The data in {data.path} has EEG of {got[0]} channels x {got[1]} samples, but the model "
            f"configuration ({source}) expects {expected[0]} channels x {expected[1]} samples; prepare the "
            "data with a matching time window or pass a matching --config."
        )


def _check_num_labels(data: DataInfo, num_labels: int, source: str) -> None:
    if int(num_labels) != data.num_labels:
        raise ValueError(
            f"Class count mismatch: the data in {data.path} has {data.num_labels} classes but the model "
            f"({source}) has {num_labels} labels."
        )


def _label_kwargs(data: DataInfo) -> dict[str, Any]:
    return {
        "num_labels": data.num_labels,
        "id2label": dict(data.id2label),
        "label2id": {w: i for i, w in data.id2label.items()},
    }


def _has_head(config_dict: Mapping[str, Any]) -> bool:
    return any("Classification" in a or "CLIPAlignment" in a for a in config_dict.get("architectures") or [])


def _unified_overrides(config_path) -> dict[str, Any]:
    """``BrainVisConfig`` head fields a ``--config`` file may set for ``timefreq`` / ``align``."""
    if config_path is None:
        return {}
    path = Path(config_path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    values = json.loads(path.read_text())
    return {k: values[k] for k in _UNIFIED_OVERRIDES if k in values}


class _Dims:
    """``num_channels`` / ``num_samples`` of a config dict (for :func:`_check_shape`)."""

    def __init__(self, config_dict: Mapping[str, Any]):
        self.num_channels = config_dict.get("num_channels")
        self.num_samples = config_dict.get("num_samples")


class _DropLoadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()


@contextlib.contextmanager
def _expected_key_changes(explanation: str):
    """Load a previous stage's folder without transformers' LOAD REPORT table.

    A stage-to-stage init drops heads the next stage does not use (momentum encoder, tokenizer,
    regressor, classifier) and creates new ones; the report would list each as UNEXPECTED or
    MISSING although that is the intent. One line (``explanation``, INFO level) replaces it; other
    loading warnings and errors (e.g. size mismatches) are kept.
    """
    report_logger = logging.getLogger("transformers.modeling_utils")
    drop = _DropLoadReport()
    report_logger.addFilter(drop)
    try:
        yield
    finally:
        report_logger.removeFilter(drop)
    _logger.info(explanation)

"""The BrainVis training stages as functions: data folder in, trained model folder out.

``train_stage(stage, data_dir, output_dir, ...)`` runs one of

- ``time-pretrain``: latent masked modeling of the time encoder (momentum update after every
  optimizer step, loss parts logged, linear probe every few epochs);
- ``time-finetune``: the pretrained time encoder with a linear head (``--init`` it);
- ``freq``: the frequency encoder with its classifier;
- ``timefreq``: both branches jointly (``--init`` a time and a frequency encoder folder);
- ``align``: CLIP alignment with semantic interpolation (``--init`` the unified classifier; the
  data folder needs ``clip_targets/``),

with ``transformers.Trainer`` (so ``accelerate launch`` runs it on several devices). Everything
that can be checked before training is checked at start (stage, preset, ``--init`` folders,
CLIP targets, class count, channels and samples). The run folder receives the best model
(``save_pretrained``), ``trainer_state.json``, TensorBoard logs (``runs/``), ``metrics.json``,
``training_curves.png`` and a model card (``README.md``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from .arguments import (
    build_training_arguments,
    check_preset,
    check_protocol,
    get_stage_spec,
    load_training_config,
)
from .lora import apply_lora, trainable_parameter_counts, write_lora_meta
from .lora import merge_lora as merge_peft

STAGE_KINDS = {
    "time-pretrain": "masked_modeling",
    "time-finetune": "classification",
    "freq": "classification",
    "timefreq": "classification",
    "align": "alignment",
}
DATA_COLUMNS = ("eeg", "label", "image_name")


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


@dataclass
class DataInfo:
    """What a stage needs to know about a prepared data set."""

    path: str
    num_channels: int
    num_samples: int
    num_labels: int
    id2label: dict[int, str]
    split_sizes: dict[str, int]
    name: str = ""
    signal: dict[str, Any] | None = None  # {"sfreq", "ch_names"} recorded with the data, if any


def describe_data(dataset_dict, data_dir: str | os.PathLike) -> DataInfo:
    """Channels, samples, classes (with their words) and split sizes of a prepared data set."""
    from ..data.labels import WNID_TO_WORDS

    first = next(iter(dataset_dict.values()))
    channels, samples = first.features["eeg"].shape
    class_label = first.features["label"]
    words: dict[int, str] = {}
    for split in dataset_dict.values():
        if "label_text" not in split.column_names:
            continue
        for label, text in zip(split["label"], split["label_text"]):
            words.setdefault(int(label), text)
    id2label = {
        i: words.get(i) or WNID_TO_WORDS.get(name, name) for i, name in enumerate(class_label.names)
    }
    return DataInfo(
        path=str(data_dir),
        num_channels=int(channels),
        num_samples=int(samples),
        num_labels=int(class_label.num_classes),
        id2label=id2label,
        split_sizes={name: len(split) for name, split in dataset_dict.items()},
        name=Path(data_dir).name,
        signal=_data_signal_info(dataset_dict, data_dir),
    )


def _data_signal_info(dataset_dict, data_dir) -> dict[str, Any] | None:
    """Sampling rate / channel names recorded with the data (card YAML ``eeg_signal``)."""
    from ..data.mne_io import dataset_signal_info

    return dataset_signal_info(data_dir) or dataset_signal_info(dataset_dict)


def record_data_signal_info(config, data: DataInfo) -> None:
    """Write the data's sampling rate and channel names into the model's configuration (a
    mismatch with what the configuration already records is an error naming both)."""
    from ..models.configuration_brainvis import set_signal_info

    if data.signal:
        try:
            set_signal_info(config, sfreq=data.signal.get("sfreq"), ch_names=data.signal.get("ch_names"))
        except ValueError as err:
            raise ValueError(f"The data in {data.path} does not match the model: {err}") from None


def _training_splits(dataset_dict, protocol: str, data_dir) -> tuple[Any, Any, str, dict[str, Any]]:
    """(train set, model-selection set, its split name, final evaluation sets) of a protocol."""
    import datasets

    needed = ("train", "validation", "test") if protocol == "paper" else ("train", "validation")
    missing = [s for s in needed if s not in dataset_dict]
    if missing:
        raise ValueError(
            f"The data in {data_dir} lacks split(s) {missing} needed by protocol {protocol!r}; "
            f"it has {sorted(dataset_dict)}"
        )
    if protocol == "paper":
        train = datasets.concatenate_datasets([dataset_dict["train"], dataset_dict["validation"]])
        return train, dataset_dict["test"], "test", {"test": dataset_dict["test"]}
    finals = {s: dataset_dict[s] for s in ("validation", "test") if s in dataset_dict}
    return dataset_dict["train"], dataset_dict["validation"], "validation", finals


def _for_training(ds):
    """Only the columns the collator reads, EEG as NumPy arrays (fast, no image decoding)."""
    columns = [c for c in DATA_COLUMNS if c in ds.column_names]
    ds = ds.select_columns(columns)
    return ds.with_format("numpy", columns=["eeg", "label"], output_all_columns=True)


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------


def _read_config_dict(folder: Path, what: str) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{what} {folder} has no config.json (expected a save_pretrained folder)")
    return json.loads(path.read_text())


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


def _check_init_type(folder: Path, config_dict: Mapping[str, Any], expected: str, what: str) -> None:
    got = config_dict.get("model_type")
    if got != expected:
        raise ValueError(f"--init {folder}: expected {what} (model_type {expected!r}), got model_type {got!r}")


_logger = logging.getLogger(__name__)


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


def build_stage_model(
    stage: str,
    data: DataInfo,
    *,
    preset: str = "paper",
    config_path: str | os.PathLike | None = None,
    init: Sequence[str | os.PathLike] = (),
    prompt_shape: tuple[int, int] | None = None,
):
    """The model a stage trains, checked against the data.

    Fresh models (``time-pretrain`` and ``freq`` without ``--init``) take the preset's
    configuration (or ``config_path``, a full ``config.json``); with a preset, the class count and
    class words come from the data; with ``config_path`` they must match it. Models from
    ``--init`` folders keep their architecture; a new head is sized to the data, an existing one
    must match it.

    Returns:
        ``(model, source)``: the model and a description of where its configuration came from.
    """
    from transformers import AutoConfig

    from ..models import (
        BrainVisFreqEncoderForEEGClassification,
        BrainVisForCLIPAlignment,
        BrainVisForEEGClassification,
        BrainVisTimeEncoderForEEGClassification,
        BrainVisTimeEncoderForMaskedModeling,
    )
    from ..presets import preset_dir

    spec = get_stage_spec(stage)
    init = [Path(p) for p in init]

    if stage in ("time-pretrain", "freq") and not init:
        model_class = BrainVisTimeEncoderForMaskedModeling if stage == "time-pretrain" else (
            BrainVisFreqEncoderForEEGClassification
        )
        if config_path is not None:
            source = str(config_path)
            config = AutoConfig.from_pretrained(str(config_path))
            _check_num_labels(data, config.num_labels, source)
        else:
            folder = preset_dir(spec.model_preset, preset)
            source = f"preset {preset!r}: {folder / 'config.json'}"
            config = AutoConfig.from_pretrained(str(folder), **_label_kwargs(data))
        if not isinstance(config, model_class.config_class):
            raise ValueError(
                f"Configuration {source} is a {type(config).__name__}; stage {stage!r} needs a "
                f"{model_class.config_class.__name__}"
            )
        _check_shape(data, config, source)
        return model_class(config), source

    if stage in ("time-pretrain", "time-finetune", "freq"):
        folder = init[0]
        config_dict = _read_config_dict(folder, "--init")
        expected = "brainvis_freq_encoder" if stage == "freq" else "brainvis_time_encoder"
        _check_init_type(folder, config_dict, expected, "a frequency encoder" if stage == "freq" else "a time encoder")
        source = f"--init {folder}"
        if stage == "time-pretrain":
            if "BrainVisTimeEncoderForMaskedModeling" not in (config_dict.get("architectures") or []):
                raise ValueError(
                    f"--init {folder}: continuing time-pretrain needs a masked-modeling checkpoint "
                    f"(architectures {config_dict.get('architectures')})"
                )
            with _expected_key_changes(f"time-pretrain: continuing from {folder}"):
                model = BrainVisTimeEncoderForMaskedModeling.from_pretrained(str(folder), **_label_kwargs(data))
        else:
            model_class = (
                BrainVisFreqEncoderForEEGClassification if stage == "freq" else BrainVisTimeEncoderForEEGClassification
            )
            if _has_head(config_dict):
                _check_num_labels(data, config_dict.get("num_labels", len(config_dict.get("id2label") or {})), source)
            with _expected_key_changes(
                f"{stage}: encoder weights from {folder}; its pre-training heads are dropped, a classifier head "
                "is created where it has none"
            ):
                model = model_class.from_pretrained(str(folder), **_label_kwargs(data))
        _check_shape(data, model.config, source)
        return model, source

    if stage == "timefreq":
        time_dir, freq_dir = init
        time_dict = _read_config_dict(time_dir, "--init (time encoder)")
        freq_dict = _read_config_dict(freq_dir, "--init (frequency encoder)")
        _check_init_type(time_dir, time_dict, "brainvis_time_encoder", "a time encoder first")
        _check_init_type(freq_dir, freq_dict, "brainvis_freq_encoder", "a frequency encoder second")
        source = f"--init {time_dir} --init {freq_dir}"
        for folder, cfg in ((time_dir, time_dict), (freq_dir, freq_dict)):
            _check_shape(data, _Dims(cfg), f"--init {folder}")
        overrides = {**_unified_overrides(config_path), **_label_kwargs(data)}
        with _expected_key_changes(
            f"timefreq: encoders from {time_dir} and {freq_dir}; their classifier heads are dropped, the unified "
            "model's head is new"
        ):
            model = BrainVisForEEGClassification.from_encoders(str(time_dir), str(freq_dir), **overrides)
        return model, source

    # align
    folder = init[0]
    config_dict = _read_config_dict(folder, "--init")
    _check_init_type(folder, config_dict, "brainvis", "the unified time-frequency model (timefreq output)")
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


# The pipeline prompts its refinement stage with the class this model's head predicts. The paper
# trains `align` on the CLIP loss alone and takes the class from the separate unified classifier;
# with one model serving both, the CLIP loss alone lets the head drift (measured on the synthetic
# test split: 52% -> 11% top-1 in 3 epochs). So the align stage keeps the class cross-entropy by
# default; `--config` with {"alignment_classification_loss_weight": 0} trains the paper's loss.
ALIGN_CLASSIFICATION_LOSS_WEIGHT = 1.0

_UNIFIED_OVERRIDES = ("prompt_sequence_length", "prompt_embed_dim", "alignment_classification_loss_weight",
                      "eeg_time_window")


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
# Running a stage
# ----------------------------------------------------------------------------------------------


@dataclass
class TrainingResult:
    """What :func:`train_stage` returns."""

    output_dir: Path
    stage: str
    metrics: dict[str, Any]
    model: Any = field(repr=False)
    trainer: Any = field(repr=False)


def _check_init(stage: str, init: Sequence[str | os.PathLike]) -> list[Path]:
    spec = get_stage_spec(stage)
    folders = [Path(p) for p in init]
    if not spec.min_init <= len(folders) <= spec.max_init:
        count = str(spec.min_init) if spec.min_init == spec.max_init else f"{spec.min_init} to {spec.max_init}"
        raise ValueError(
            f"Stage {stage!r} needs {count} --init folder(s) ({spec.init_help}); got {len(folders)}"
            + (f": {[str(f) for f in folders]}" if folders else "")
        )
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"--init {folder}: no such folder")
    return folders


def _prepare_output_dir(output_dir: Path, resume: bool, overwrite_output: bool) -> None:
    checkpoints = sorted(output_dir.glob("checkpoint-*")) if output_dir.is_dir() else []
    if checkpoints and not resume:
        if not overwrite_output:
            raise ValueError(
                f"Output folder {output_dir} already holds checkpoints ({checkpoints[0].name}, ...); pass "
                "--resume-from-checkpoint last to continue that run, --overwrite-output to start afresh, "
                "or choose another folder."
            )
        for path in checkpoints:
            shutil.rmtree(path)
        shutil.rmtree(output_dir / "runs", ignore_errors=True)
    output_dir.mkdir(parents=True, exist_ok=True)


def checkpoint_problem(path: Path) -> str | None:
    """Why the ``checkpoint-*`` folder ``path`` cannot be resumed from (half-written by a crash or a
    full disk, or damaged), or ``None`` when it is complete. Reads headers only, no pickle."""
    import zipfile

    from .._io import check_safetensors_file, read_json_file

    state = path / "trainer_state.json"
    if not state.is_file():
        return f"{path} is incomplete: no trainer_state.json (its save was interrupted)"
    weights = [*path.glob("*.safetensors"), *path.glob("*/*.safetensors")]
    if not weights:
        return f"{path} is incomplete: no model weights (*.safetensors)"
    try:
        read_json_file(state, "trainer state")
        for file in weights:
            check_safetensors_file(file)
    except ValueError as err:
        return str(err)
    for name in ("optimizer.pt", "scheduler.pt", "scaler.pt", *(p.name for p in path.glob("rng_state*.pth"))):
        file = path / name
        if file.is_file():
            try:
                zipfile.ZipFile(file).close()  # torch.save's zip format: the directory is at the end
            except (zipfile.BadZipFile, OSError):
                return f"{file} is truncated or corrupted (not a complete PyTorch file)"
    return None


def _resolve_resume(resume_from_checkpoint, output_dir: Path):
    if resume_from_checkpoint in (None, False, ""):
        return None
    if resume_from_checkpoint in (True, "last", "latest", "True", "true"):
        import logging
        import re

        found = sorted(
            (p for p in output_dir.glob("checkpoint-*") if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)),
            key=lambda p: int(p.name.split("-")[1]), reverse=True,
        ) if output_dir.is_dir() else []  # fmt: skip
        if not found:
            raise FileNotFoundError(f"--resume-from-checkpoint last: no checkpoint-* folder in {output_dir}")
        for path in found:
            problem = checkpoint_problem(path)
            if problem is None:
                return str(path)
            logging.getLogger(__name__).warning("skipping %s; resuming from an earlier checkpoint", problem)
        raise FileNotFoundError(
            f"--resume-from-checkpoint last: no complete checkpoint in {output_dir} ({len(found)} damaged or incomplete); "
            "start afresh with --overwrite-output."
        )
    path = Path(resume_from_checkpoint)
    if not path.is_dir():
        raise FileNotFoundError(f"--resume-from-checkpoint {path}: no such checkpoint folder")
    problem = checkpoint_problem(path)
    if problem is not None:
        raise ValueError(f"--resume-from-checkpoint {path}: {problem}; use --resume-from-checkpoint last to take the last complete one.")
    return str(path)


def _strip_prefix(metrics: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) + 1 :] if k.startswith(prefix + "_") else k: v for k, v in metrics.items()}


_HYPERPARAMETER_FIELDS = (
    "learning_rate", "optim", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "lr_scheduler_type",
    "warmup_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs", "max_steps",
    "max_grad_norm", "seed", "bf16", "fp16", "activation_checkpointing", "metric_for_best_model",
)


def train_stage(
    stage: str,
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    preset: str = "paper",
    config: str | os.PathLike | None = None,
    training_config: str | os.PathLike | None = None,
    init: Sequence[str | os.PathLike] = (),
    seed: int = 42,
    protocol: str = "validation",
    lora: bool = False,
    lora_r: int = 8,
    lora_alpha: int = 16,
    lora_dropout: float = 0.05,
    merge_lora: bool = False,
    linear_probe_every_n_epochs: int | None = None,
    resume_from_checkpoint: str | os.PathLike | bool | None = None,
    overwrite_output: bool = False,
    linear_baseline: bool = True,
    push_to_hub: str | None = None,
    hub_private: bool = False,
    hub_token: str | None = None,
    training_overrides: Mapping[str, Any] | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainingResult:
    """Train one BrainVis stage on a prepared data folder.

    Args:
        stage: ``time-pretrain``, ``time-finetune``, ``freq``, ``timefreq`` or ``align``.
        data_dir: a folder written by ``brainvis data prepare`` (``align``: with ``clip_targets/``).
        output_dir: the run folder; the best model is saved in it with ``save_pretrained``.
        preset: ``paper`` or ``tiny``: the model configuration and the hyper-parameters.
        config: a full model ``config.json`` replacing the preset's (fresh models only; for
            ``timefreq`` it may set the prompt sizes).
        training_config: a hyper-parameter JSON replacing the preset's (same layout as
            ``hub_configs/training/<stage>.json``).
        init: the folders the stage starts from (see :data:`~.arguments.STAGE_SPECS`).
        seed: seeds weights, masking, dropout and data order.
        protocol: ``validation`` (default: train on train, select on validation, report
            validation and test) or ``paper`` (the original's: train on train + validation,
            select on test; test figures are then optimistic).
        lora, lora_r, lora_alpha, lora_dropout: LoRA adapters on the time encoder (fine-tuning
            stages only); ``merge_lora`` also exports the merged model.
        linear_probe_every_n_epochs: ``time-pretrain`` probing interval (default: the preset's).
        resume_from_checkpoint: a ``checkpoint-*`` folder, or ``"last"`` / ``True`` for the
            latest one in ``output_dir``.
        overwrite_output: delete earlier checkpoints in ``output_dir`` instead of refusing.
        linear_baseline: also fit a standardised logistic regression on the same training split
            (binned raw EEG) and report its accuracy beside the model's (``metrics.json`` ->
            ``linear_baseline``; the card shows both).
        push_to_hub: a Hub repo id to upload the run folder to (checkpoints excluded).
        hub_private, hub_token: Hub repo visibility and token.
        training_overrides: ``TrainingArguments`` fields that win over the preset (e.g.
            ``num_train_epochs``, ``max_steps``, ``learning_rate``, ``bf16``).
        callbacks: extra ``TrainerCallback`` s.

    Returns:
        :class:`TrainingResult` with the output folder, the metrics (as in ``metrics.json``),
        the trained model and the trainer.
    """
    from ..data import BrainVisDataCollator
    from ..data.prepare import load_prepared_dataset
    from ..data.splits import split_record
    from ..hub import training_run_card
    from ..plots import plot_training_curves
    from .callbacks import LinearProbeCallback, MomentumUpdateCallback
    from .trainer import BrainVisTrainer, compute_stage_metrics

    # -- everything that can go wrong is checked before training ---------------------------
    spec = get_stage_spec(stage)
    check_preset(preset)
    check_protocol(protocol)
    init_dirs = _check_init(stage, init)
    if lora and not spec.supports_lora:
        raise ValueError(
            f"--lora applies to the stages that fine-tune a pretrained time encoder "
            f"(time-finetune, timefreq, align), not {stage!r}"
        )
    if merge_lora and not lora:
        raise ValueError("--merge-lora needs --lora")
    hyper = load_training_config(stage, preset, training_config)
    output_dir = Path(output_dir)
    resume = _resolve_resume(resume_from_checkpoint, output_dir)
    data_dir = Path(data_dir)
    dataset_dict = load_prepared_dataset(data_dir)
    data = describe_data(dataset_dict, data_dir)
    splits_record = split_record(data_dir, dataset_dict)  # hashes of the splits used (docs/protocols.md)

    clip_targets = None
    prompt_shape = None
    if stage == "align":
        from ..data.clip_targets import check_clip_targets_cover, has_clip_targets, load_clip_targets

        if not has_clip_targets(data_dir):
            raise ValueError(
                f"Stage 'align' needs CLIP targets, but {data_dir / 'clip_targets'} has none; compute them first "
                f"with `brainvis data clip-targets --data {data_dir}`."
            )
        clip_targets = load_clip_targets(data_dir)
        for split_name, split in dataset_dict.items():
            check_clip_targets_cover(clip_targets, split["image_name"], f"split {split_name!r} of {data_dir}")
        coarse, _ = next(iter(clip_targets.values()))
        prompt_shape = (int(coarse.shape[0]), int(coarse.shape[1]))

    from transformers import set_seed

    set_seed(seed)  # the fresh weights (and heads) depend on the seed too, not only the data order
    model, model_source = build_stage_model(
        stage, data, preset=preset, config_path=config, init=init_dirs, prompt_shape=prompt_shape
    )
    record_data_signal_info(model.config, data)
    if not resume:
        _prepare_output_dir(output_dir, resume=False, overwrite_output=overwrite_output)
    train_set, select_set, select_split, final_sets = _training_splits(dataset_dict, protocol, data_dir)
    train_set, select_set = _for_training(train_set), _for_training(select_set)
    final_sets = {name: _for_training(ds) for name, ds in final_sets.items()}
    collator = BrainVisDataCollator(clip_targets=clip_targets)

    overrides = dict(training_overrides or {})
    probe_every = 0
    if stage == "time-pretrain":
        probe_every = linear_probe_every_n_epochs
        if probe_every is None:
            probe_every = int(hyper.get("linear_probe_every_n_epochs", 10))
        if probe_every <= 0:
            # the LMM loss has moving targets (momentum encoder): not a selection criterion; keep the last weights
            overrides.setdefault("load_best_model_at_end", False)
            overrides.setdefault("metric_for_best_model", "loss")
            overrides.setdefault("greater_is_better", False)
    args = build_training_arguments(stage, output_dir, hyper, overrides, seed=seed)

    lora_info = None
    lora_meta = None
    if lora:
        lora_meta = {
            "stage": stage, "init": [str(p.resolve()) for p in init_dirs], "data": str(data_dir),
            "num_channels": data.num_channels, "num_samples": data.num_samples, "num_labels": data.num_labels,
            "id2label": {str(k): v for k, v in data.id2label.items()},
            "prompt_shape": list(prompt_shape) if prompt_shape else None,
        }
        model = apply_lora(model, r=lora_r, alpha=lora_alpha, dropout=lora_dropout)
        trainable, total = trainable_parameter_counts(model)
        lora_info = {"r": lora_r, "alpha": lora_alpha, "dropout": lora_dropout,
                     "trainable_parameters": trainable, "total_parameters": total}

    stage_kind = STAGE_KINDS[stage]
    all_callbacks = list(callbacks)
    probe = None
    if stage == "time-pretrain":
        all_callbacks.append(MomentumUpdateCallback(init_at_start=not init_dirs))
        if probe_every > 0:
            probe = LinearProbeCallback(train_set, select_set, collator, every_n_epochs=probe_every,
                                        batch_size=args.per_device_eval_batch_size)
            all_callbacks.append(probe)

    trainer = BrainVisTrainer(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=train_set,
        eval_dataset=select_set,
        compute_metrics=compute_stage_metrics(stage_kind),
        callbacks=all_callbacks,
        stage_kind=stage_kind,
        linear_probe=probe,
    )

    train_output = trainer.train(resume_from_checkpoint=resume)

    # -- final evaluation of the selected model ---------------------------------------------
    evaluation = {}
    for name, ds in final_sets.items():
        evaluation[name] = _strip_prefix(trainer.evaluate(eval_dataset=ds, metric_key_prefix=name), name)

    baseline = _linear_baseline(train_set, final_sets) if linear_baseline else None

    # -- the run folder -------------------------------------------------------------------
    if lora and merge_lora:
        adapter_dir = output_dir / "lora_adapter"
        trainer.save_model(str(adapter_dir))
    else:
        adapter_dir = output_dir
        trainer.save_model(str(output_dir))
    trainer.save_state()

    state = trainer.state
    hyperparameters = {k: getattr(args, k) for k in _HYPERPARAMETER_FIELDS}
    hyperparameters["optim"] = str(getattr(args.optim, "value", args.optim))
    hyperparameters["lr_scheduler_type"] = str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type))
    num_processes = trainer.accelerator.num_processes
    hyperparameters["num_processes"] = num_processes
    hyperparameters["effective_batch_size"] = (
        args.per_device_train_batch_size * args.gradient_accumulation_steps * num_processes
    )
    metrics: dict[str, Any] = {
        "stage": stage,
        "preset": preset,
        "protocol": protocol,
        "selection_split": select_split,
        "seed": seed,
        "model_class": type(trainer.accelerator.unwrap_model(trainer.model)).__name__,
        "model_config_source": model_source,
        "training_config_source": hyper["source"],
        "init": [str(p) for p in init_dirs],
        "data": {
            "path": str(data_dir), "name": data.name, "num_channels": data.num_channels,
            "num_samples": data.num_samples, "num_labels": data.num_labels,
            "num_train": len(train_set), "num_validation": data.split_sizes.get("validation"),
            "num_test": data.split_sizes.get("test"), "splits": splits_record,
        },
        "hyperparameters": hyperparameters,
        "train": dict(train_output.metrics),
        "global_step": state.global_step,
        "metric_for_best_model": args.metric_for_best_model if args.load_best_model_at_end else None,
        "best_metric": state.best_metric,
        "best_model_checkpoint": state.best_model_checkpoint,
        "evaluation": evaluation,
        "linear_baseline": baseline,
        "recipe": recipe_options(getattr(trainer.accelerator.unwrap_model(trainer.model), "config", None), hyperparameters),
        "linear_probe": list(probe.history) if probe is not None else [],
        "lora": lora_info,
    }
    if trainer.is_world_process_zero():
        training_args_bin = output_dir / "training_args.bin"
        if training_args_bin.exists():  # a pickle written by Trainer._save: keep JSON only
            training_args_bin.unlink()
        (output_dir / "training_args.json").write_text(args.to_json_string())
        if lora_meta is not None:
            write_lora_meta(adapter_dir, lora_meta)
            for stale in adapter_dir.glob("training_args.bin"):
                stale.unlink()
            if merge_lora:
                merged = merge_peft(trainer.accelerator.unwrap_model(trainer.model))
                merged.save_pretrained(str(output_dir))
                metrics["merged_lora"] = True
        from .._io import dumps_strict, finite_or_none

        (output_dir / "metrics.json").write_text(dumps_strict(finite_or_none(_jsonable(metrics)), indent=2))
        plot_training_curves(state.log_history, output_dir / "training_curves.png", title=f"brainvis train {stage}")
        training_run_card(output_dir, _jsonable(metrics)).save(str(output_dir / "README.md"))
        if push_to_hub:
            from ..hub import push_folder_to_hub

            metrics["hub_commit"] = push_folder_to_hub(
                output_dir, push_to_hub, private=hub_private, token=hub_token,
                commit_message=f"brainvis train {stage}",
            )
    trainer.accelerator.wait_for_everyone()
    return TrainingResult(output_dir=output_dir, stage=stage, metrics=metrics, model=trainer.model, trainer=trainer)


_RECIPE_FIELDS = {
    "time": ("input_normalization", "pooling_segments", "lmm_freeze_embeddings"),
    "freq": ("spectrum_scaling", "spectrum_normalization", "readout"),
}


def recipe_options(config, hyperparameters: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The opt-in learning-recipe options a model uses (those that differ from the configuration's
    default, the paper's behaviour), plus the learning-rate schedule: what a card must say about
    how a run was trained."""
    if config is None:
        return {}
    branches = {"time": getattr(config, "time_config", None), "freq": getattr(config, "freq_config", None)}
    if config.model_type == "brainvis_time_encoder":
        branches["time"] = config
    elif config.model_type == "brainvis_freq_encoder":
        branches["freq"] = config
    options: dict[str, Any] = {}
    for branch, branch_config in branches.items():
        for field in _RECIPE_FIELDS[branch] if branch_config is not None else ():
            value = getattr(branch_config, field)
            if value != getattr(type(branch_config), field):  # the class default is the paper's
                options[f"{branch}.{field}"] = value
    for key in ("lr_scheduler_type", "warmup_steps", "max_grad_norm"):
        if hyperparameters and key in hyperparameters:
            options[key] = hyperparameters[key]
    return options


def _linear_baseline(train_set, final_sets: Mapping[str, Any]) -> dict[str, Any]:
    """Accuracy of a standardised logistic regression on binned raw EEG, on the model's own split."""
    from ..evaluation.linear_probe import linear_baseline_accuracy

    def arrays(ds):
        columns = ds.with_format("numpy", columns=["eeg", "label"])
        return columns["eeg"], columns["label"]

    bin_size = 4
    scores = linear_baseline_accuracy(*arrays(train_set), {n: arrays(ds) for n, ds in final_sets.items()},
                                      bin_size=bin_size)
    return {
        "model": f"standardised logistic regression on {bin_size}-sample means of the EEG (train split)",
        **{name: {"accuracy": accuracy} for name, accuracy in scores.items()},
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value

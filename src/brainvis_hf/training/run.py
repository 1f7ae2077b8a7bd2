"""Running one training stage: data folder in, run folder out.

:func:`train_stage` reads top to bottom as four steps, each a small function:

1. :func:`check_run`: everything that can go wrong is checked before training (stage, preset,
   protocol, ``--init`` folders, ``--lora``, the hyper-parameter file, a checkpoint to resume,
   the data folder, its split hashes and, for ``align``, its CLIP targets);
2. :func:`build_run_model`: the stage's model (:mod:`.stage_models`), seeded, checked against the
   data, with LoRA adapters if asked;
3. :func:`fit_run`: ``TrainingArguments``, callbacks and :class:`~.trainer.BrainVisTrainer`, then
   ``trainer.train()``; :func:`evaluate_run` scores the selected model on the final splits;
4. :func:`write_run_folder`: the best model (``save_pretrained``), ``trainer_state.json``,
   ``training_args.json``, ``metrics.json``, ``training_curves.png``, the model card
   (``README.md``) and, if asked, the Hub upload.

A stage with a loop of its own (``diffusion``) is handed the same options by its runner
(:attr:`~.stages.Stage.runner`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from transformers import set_seed

from .._io import check_safetensors_file, dumps_strict, finite_or_none, read_json_file
from ..data import BrainVisDataCollator
from ..data.prepare import load_prepared_dataset
from ..data.splits import split_record
from ..evaluation.linear_probe import linear_baseline_accuracy
from ..hub import push_folder_to_hub, training_run_card
from ..plots import plot_training_curves
from .arguments import build_training_arguments, check_preset, check_protocol, load_training_config
from .callbacks import LinearProbeCallback, MomentumUpdateCallback
from .lora import apply_lora, trainable_parameter_counts, write_lora_meta
from .lora import merge_lora as merge_peft
from .stage_data import (
    DataInfo,
    describe_data,
    for_training,
    record_data_signal_info,
    stage_clip_targets,
    training_splits,
)
from .stage_models import build_stage_model
from .stages import STAGE_REGISTRY, RunOptions, Stage, TrainingResult, get_stage, stage_runner
from .trainer import BrainVisTrainer, compute_stage_metrics

_logger = logging.getLogger(__name__)

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
        stage: a name of :data:`~.stages.STAGES`: ``time-pretrain``, ``time-finetune``, ``freq``,
            ``timefreq``, ``align`` or ``diffusion``.
        data_dir: a folder written by ``brainvis data prepare`` (``align``: with ``clip_targets/``;
            ``diffusion``: with an ``image`` column).
        output_dir: the run folder; the best model is saved in it with ``save_pretrained``.
        preset: ``paper``, ``small``, ``tiny``, ...: the model configuration and the
            hyper-parameters (not for ``diffusion``, whose defaults are ``train_diffusion``'s).
        config: a full model ``config.json`` replacing the preset's (fresh models only; for
            ``timefreq`` it may set the prompt sizes).
        training_config: a hyper-parameter JSON replacing the preset's (same layout as
            ``hub_configs/training/<stage>.json``).
        init: the folders the stage starts from (see :data:`~.stages.STAGE_REGISTRY`).
        seed: seeds weights, masking, dropout and data order.
        protocol: ``validation`` (default: train on train, select on validation, report
            validation and test) or ``paper`` (the original's: train on train + validation,
            select on test; test figures are then optimistic).
        lora, lora_r, lora_alpha, lora_dropout: LoRA adapters (stages with ``lora_targets``);
            ``merge_lora`` also exports the merged model.
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
        :class:`~.stages.TrainingResult` with the output folder, the metrics (as in
        ``metrics.json``), the trained model and the trainer.
    """
    spec = get_stage(stage)
    options = RunOptions(
        preset=preset, config=config, training_config=training_config, init=tuple(init), seed=seed,
        protocol=protocol, lora=lora, lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
        merge_lora=merge_lora, linear_probe_every_n_epochs=linear_probe_every_n_epochs,
        resume_from_checkpoint=resume_from_checkpoint, overwrite_output=overwrite_output,
        linear_baseline=linear_baseline, push_to_hub=push_to_hub, hub_private=hub_private, hub_token=hub_token,
        training_overrides=dict(training_overrides or {}), callbacks=tuple(callbacks),
    )
    if spec.runner is not None:
        return stage_runner(spec)(spec, Path(data_dir), Path(output_dir), options)
    run = check_run(spec, data_dir, output_dir, options)
    build_run_model(run)
    fit_run(run)
    evaluate_run(run)
    return write_run_folder(run)


# ----------------------------------------------------------------------------------------------
# 1. check
# ----------------------------------------------------------------------------------------------


@dataclass
class StageRun:
    """One run of a Trainer stage, filled in step by step (check, build, fit, evaluate)."""

    stage: Stage
    options: RunOptions
    data_dir: Path
    output_dir: Path
    init_dirs: list[Path]
    hyper: dict[str, Any]
    resume: str | None
    dataset_dict: Any
    data: DataInfo
    splits_record: dict[str, Any]
    clip_targets: Any = None
    prompt_shape: tuple[int, int] | None = None
    # build
    model: Any = None
    model_source: str = ""
    lora_info: dict[str, Any] | None = None
    lora_meta: dict[str, Any] | None = None
    # fit
    trainer: Any = None
    args: Any = None
    train_output: Any = None
    train_set: Any = None
    final_sets: dict[str, Any] | None = None
    select_split: str = ""
    probe: Any = None
    # evaluate
    evaluation: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None


def check_run(stage: Stage, data_dir, output_dir, options: RunOptions) -> StageRun:
    """Check everything that can be checked before training; read the data and the hyper-parameters."""
    check_preset(options.preset)
    check_protocol(options.protocol)
    init_dirs = check_init_folders(stage, options.init)
    if options.lora and not stage.supports_lora:
        lora_stages = ", ".join(s.name for s in STAGE_REGISTRY.values() if s.supports_lora)
        raise ValueError(
            f"--lora applies to the stages that fine-tune a pretrained time encoder or UNet ({lora_stages}), "
            f"not {stage.name!r}"
        )
    if options.merge_lora and not options.lora:
        raise ValueError("--merge-lora needs --lora")
    hyper = load_training_config(stage.name, options.preset, options.training_config)
    output_dir = Path(output_dir)
    resume = resolve_resume(options.resume_from_checkpoint, output_dir)
    data_dir = Path(data_dir)
    dataset_dict = load_prepared_dataset(data_dir)
    run = StageRun(
        stage=stage, options=options, data_dir=data_dir, output_dir=output_dir, init_dirs=init_dirs, hyper=hyper,
        resume=resume, dataset_dict=dataset_dict, data=describe_data(dataset_dict, data_dir),
        splits_record=split_record(data_dir, dataset_dict),  # hashes of the splits used (docs/protocols.md)
    )
    run.clip_targets, run.prompt_shape = stage_clip_targets(stage, dataset_dict, data_dir)
    return run


def check_init_folders(stage: Stage, init: Sequence[str | os.PathLike]) -> list[Path]:
    """The ``--init`` folders of ``stage``: as many as it takes, each an existing folder."""
    folders = [Path(p) for p in init]
    stage.check_init_count(folders)
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"--init {folder}: no such folder")
    return folders


def checkpoint_problem(path: Path) -> str | None:
    """Why the ``checkpoint-*`` folder ``path`` cannot be resumed from (half-written by a crash or a
    full disk, or damaged), or ``None`` when it is complete. Reads headers only, no pickle."""
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


def resolve_resume(resume_from_checkpoint, output_dir: Path) -> str | None:
    """The checkpoint folder to resume from (``"last"``: the newest complete one), or ``None``."""
    if resume_from_checkpoint in (None, False, ""):
        return None
    if resume_from_checkpoint in (True, "last", "latest", "True", "true"):
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
            _logger.warning("skipping %s; resuming from an earlier checkpoint", problem)
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


# ----------------------------------------------------------------------------------------------
# 2. build
# ----------------------------------------------------------------------------------------------


def build_run_model(run: StageRun) -> None:
    """The stage's model, seeded and checked against the data; LoRA-wrapped with ``--lora``."""
    options, data = run.options, run.data
    set_seed(options.seed)  # the fresh weights (and heads) depend on the seed too, not only the data order
    model, run.model_source = build_stage_model(
        run.stage.name, data, preset=options.preset, config_path=options.config, init=run.init_dirs,
        prompt_shape=run.prompt_shape,
    )
    record_data_signal_info(model.config, data)
    if options.lora:
        run.lora_meta = {
            "stage": run.stage.name, "init": [str(p.resolve()) for p in run.init_dirs], "data": str(run.data_dir),
            "num_channels": data.num_channels, "num_samples": data.num_samples, "num_labels": data.num_labels,
            "id2label": {str(k): v for k, v in data.id2label.items()},
            "prompt_shape": list(run.prompt_shape) if run.prompt_shape else None,
        }
        model = apply_lora(model, r=options.lora_r, alpha=options.lora_alpha, dropout=options.lora_dropout,
                           targets=run.stage.lora_targets)
        trainable, total = trainable_parameter_counts(model)
        run.lora_info = {"r": options.lora_r, "alpha": options.lora_alpha, "dropout": options.lora_dropout,
                         "trainable_parameters": trainable, "total_parameters": total}
    run.model = model


# ----------------------------------------------------------------------------------------------
# 3. fit and evaluate
# ----------------------------------------------------------------------------------------------


def fit_run(run: StageRun) -> None:
    """Prepare the run folder, the splits, the ``TrainingArguments`` and the trainer; train."""
    stage, options = run.stage, run.options
    if not run.resume:
        prepare_output_dir(run.output_dir, overwrite_output=options.overwrite_output)
    train_set, select_set, run.select_split, final_sets = training_splits(
        run.dataset_dict, options.protocol, run.data_dir)
    train_set, select_set = for_training(train_set), for_training(select_set)
    run.train_set, run.final_sets = train_set, {name: for_training(ds) for name, ds in final_sets.items()}
    collator = BrainVisDataCollator(clip_targets=run.clip_targets)

    overrides = dict(options.training_overrides)
    probe_every = 0
    if stage.kind == "masked_modeling":
        probe_every = options.linear_probe_every_n_epochs
        if probe_every is None:
            probe_every = int(run.hyper.get("linear_probe_every_n_epochs", 10))
        if probe_every <= 0:
            # the LMM loss has moving targets (momentum encoder): not a selection criterion; keep the last weights
            overrides.setdefault("load_best_model_at_end", False)
            overrides.setdefault("metric_for_best_model", "loss")
            overrides.setdefault("greater_is_better", False)
    run.args = build_training_arguments(stage.name, run.output_dir, run.hyper, overrides, seed=options.seed)

    all_callbacks = list(options.callbacks)
    if stage.kind == "masked_modeling":
        all_callbacks.append(MomentumUpdateCallback(init_at_start=not run.init_dirs))
        if probe_every > 0:
            run.probe = LinearProbeCallback(train_set, select_set, collator, every_n_epochs=probe_every,
                                            batch_size=run.args.per_device_eval_batch_size)
            all_callbacks.append(run.probe)

    run.trainer = BrainVisTrainer(
        model=run.model,
        args=run.args,
        data_collator=collator,
        train_dataset=train_set,
        eval_dataset=select_set,
        compute_metrics=compute_stage_metrics(stage.kind),
        callbacks=all_callbacks,
        stage_kind=stage.kind,
        loss_parts=stage.loss_parts,
        linear_probe=run.probe,
    )
    run.train_output = run.trainer.train(resume_from_checkpoint=run.resume)


def prepare_output_dir(output_dir: Path, overwrite_output: bool) -> None:
    """Create the run folder; earlier checkpoints in it are an error unless ``overwrite_output``."""
    checkpoints = sorted(output_dir.glob("checkpoint-*")) if output_dir.is_dir() else []
    if checkpoints:
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


def evaluate_run(run: StageRun) -> None:
    """Score the selected model on the final splits; fit the linear baseline if asked."""
    run.evaluation = {
        name: _strip_prefix(run.trainer.evaluate(eval_dataset=ds, metric_key_prefix=name), name)
        for name, ds in run.final_sets.items()
    }
    run.baseline = linear_baseline(run.train_set, run.final_sets) if run.options.linear_baseline else None


def linear_baseline(train_set, final_sets: Mapping[str, Any]) -> dict[str, Any]:
    """Accuracy of a standardised logistic regression on binned raw EEG, on the model's own split."""

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


def _strip_prefix(metrics: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) + 1 :] if k.startswith(prefix + "_") else k: v for k, v in metrics.items()}


# ----------------------------------------------------------------------------------------------
# 4. write the run folder
# ----------------------------------------------------------------------------------------------


def write_run_folder(run: StageRun) -> TrainingResult:
    """Save the model and the trainer state; write ``metrics.json``, the curves, the card; upload."""
    trainer, options, output_dir = run.trainer, run.options, run.output_dir
    adapter_dir = output_dir / "lora_adapter" if options.lora and options.merge_lora else output_dir
    trainer.save_model(str(adapter_dir))
    trainer.save_state()
    metrics = run_metrics(run)
    if trainer.is_world_process_zero():
        training_args_bin = output_dir / "training_args.bin"
        if training_args_bin.exists():  # a pickle written by Trainer._save: keep JSON only
            training_args_bin.unlink()
        (output_dir / "training_args.json").write_text(run.args.to_json_string())
        if run.lora_meta is not None:
            write_lora_meta(adapter_dir, run.lora_meta)
            for stale in adapter_dir.glob("training_args.bin"):
                stale.unlink()
            if options.merge_lora:
                merge_peft(trainer.accelerator.unwrap_model(trainer.model)).save_pretrained(str(output_dir))
                metrics["merged_lora"] = True
        (output_dir / "metrics.json").write_text(dumps_strict(finite_or_none(_jsonable(metrics)), indent=2))
        plot_training_curves(trainer.state.log_history, output_dir / "training_curves.png",
                             title=f"brainvis train {run.stage.name}")
        training_run_card(output_dir, _jsonable(metrics)).save(str(output_dir / "README.md"))
        if options.push_to_hub:
            metrics["hub_commit"] = push_folder_to_hub(
                output_dir, options.push_to_hub, private=options.hub_private, token=options.hub_token,
                commit_message=f"brainvis train {run.stage.name}",
            )
    trainer.accelerator.wait_for_everyone()
    return TrainingResult(output_dir=output_dir, stage=run.stage.name, metrics=metrics, model=trainer.model,
                          trainer=trainer)


def run_metrics(run: StageRun) -> dict[str, Any]:
    """The content of ``metrics.json`` (the model card is written from it)."""
    trainer, args, options, data, state = run.trainer, run.args, run.options, run.data, run.trainer.state
    hyperparameters = {k: getattr(args, k) for k in _HYPERPARAMETER_FIELDS}
    hyperparameters["optim"] = str(getattr(args.optim, "value", args.optim))
    hyperparameters["lr_scheduler_type"] = str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type))
    num_processes = trainer.accelerator.num_processes
    hyperparameters["num_processes"] = num_processes
    hyperparameters["effective_batch_size"] = (
        args.per_device_train_batch_size * args.gradient_accumulation_steps * num_processes
    )
    model = trainer.accelerator.unwrap_model(trainer.model)
    return {
        "stage": run.stage.name,
        "preset": options.preset,
        "protocol": options.protocol,
        "selection_split": run.select_split,
        "seed": options.seed,
        "model_class": type(model).__name__,
        "model_config_source": run.model_source,
        "training_config_source": run.hyper["source"],
        "init": [str(p) for p in run.init_dirs],
        "data": {
            "path": str(run.data_dir), "name": data.name, "num_channels": data.num_channels,
            "num_samples": data.num_samples, "num_labels": data.num_labels,
            "num_train": len(run.train_set), "num_validation": data.split_sizes.get("validation"),
            "num_test": data.split_sizes.get("test"), "splits": run.splits_record,
        },
        "hyperparameters": hyperparameters,
        "train": dict(run.train_output.metrics),
        "global_step": state.global_step,
        "metric_for_best_model": args.metric_for_best_model if args.load_best_model_at_end else None,
        "best_metric": state.best_metric,
        "best_model_checkpoint": state.best_model_checkpoint,
        "evaluation": run.evaluation,
        "linear_baseline": run.baseline,
        "recipe": recipe_options(getattr(model, "config", None), hyperparameters),
        "linear_probe": list(run.probe.history) if run.probe is not None else [],
        "lora": run.lora_info,
    }


_RECIPE_FIELDS = {
    "time": (
        "input_normalization", "pooling_segments", "lmm_freeze_embeddings", "pooler_normalization",
        "time_shift_augmentation",
    ),
    "freq": ("spectrum_scaling", "spectrum_normalization", "readout"),
    "model": ("alignment_centred_loss_weight",),  # the unified model's own (BrainVisConfig)
}


def recipe_options(config, hyperparameters: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The opt-in learning-recipe options a model uses (those that differ from the configuration's
    default, the paper's behaviour), plus the learning-rate schedule: what a card must say about
    how a run was trained."""
    if config is None:
        return {}
    branches = {"time": getattr(config, "time_config", None), "freq": getattr(config, "freq_config", None),
                "model": config if config.model_type == "brainvis" else None}
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

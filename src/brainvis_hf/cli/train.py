"""`brainvis train STAGE`: train one BrainVis stage (the stages are those of
:data:`brainvis_hf.training.stages.STAGE_REGISTRY`).

Works the same under ``accelerate launch`` (several GPUs or CPU processes): see
``training/README.md`` and ``docs/training.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from .._io import finite_or_none, read_json_file
from ..presets import PRESETS as _PRESETS
from ..training.stages import STAGE_REGISTRY, STAGES
from ._checks import check_model_folder
from ._threads import add_threads_argument

# Trainer options exposed directly: (flag, type, help); every other TrainingArguments field can be
# given with --training-arg NAME=VALUE.
_TRAINER_OPTIONS: tuple[tuple[str, type, str], ...] = (
    ("--num-train-epochs", float, "epochs (default: the preset's)"),
    ("--max-steps", int, "optimizer steps; overrides --num-train-epochs"),
    ("--per-device-train-batch-size", int, "training batch per device"),
    ("--per-device-eval-batch-size", int, "evaluation batch per device"),
    ("--gradient-accumulation-steps", int, "micro-batches per optimizer step"),
    ("--learning-rate", float, "peak learning rate"),
    ("--weight-decay", float, "weight decay"),
    ("--lr-scheduler-type", str, "e.g. constant, linear, cosine"),
    ("--warmup-steps", float, "warm-up steps (or a ratio < 1)"),
    ("--logging-steps", float, "steps between training logs"),
    ("--eval-strategy", str, "no, steps or epoch"),
    ("--eval-steps", float, "steps between evaluations (with --eval-strategy steps)"),
    ("--save-strategy", str, "no, steps, epoch or best"),
    ("--save-steps", float, "steps between checkpoints (with --save-strategy steps)"),
    ("--save-total-limit", int, "checkpoints kept"),
    ("--dataloader-num-workers", int, "data-loading worker processes"),
    ("--report-to", str, "tensorboard (default), none, wandb, ..."),
)
_TRAINER_FLAGS: tuple[tuple[str, str], ...] = (
    ("--bf16", "bfloat16 mixed precision"),
    ("--fp16", "float16 mixed precision (CUDA)"),
    ("--activation-checkpointing", "recompute activations in the backward pass (saves memory); "
     "alias --gradient-checkpointing"),
    ("--use-cpu", "train on the CPU even if a GPU is available"),
)


def register(subparsers) -> None:
    """Add the ``train`` sub-command."""
    parser = subparsers.add_parser(
        "train",
        help=f"train a BrainVis stage ({', '.join(STAGES)})",
        description=textwrap.fill(
            "Train one BrainVis stage on a prepared data folder. The EEG stages run transformers.Trainer: "
            "the best model (selected on the validation split) is saved with save_pretrained in --output, "
            "with trainer_state.json, TensorBoard logs (runs/), metrics.json, training_curves.png and "
            "a model card. The diffusion stage writes a Stable Diffusion folder (docs/diffusion-training.md). "
            "Run it under `accelerate launch` for several devices.", 100,
        ) + "\n\nstages:\n" + "\n".join(f"  {s.name:<14} {s.help}" for s in STAGE_REGISTRY.values()),
        formatter_class=_Formatter,
    )
    parser.add_argument("stage", choices=STAGES, help="the stage to train")
    parser.add_argument("--data", required=True, help="prepared data folder (brainvis data prepare)")
    parser.add_argument("--output", required=True, help="run folder (the best model is saved in it)")
    parser.add_argument("--preset", default="paper", choices=_PRESETS,
                        help="model + hyper-parameter preset (small: CPU minutes, tiny: seconds; things-eeg2-*: 17 channels x 100 samples at 100 Hz)")
    parser.add_argument("--config", default=None, help="model config.json replacing the preset's (fresh models)")
    parser.add_argument("--training-config", default=None, help="hyper-parameter JSON replacing the preset's")
    parser.add_argument(
        "--init", action="append", default=[], metavar="DIR",
        help="folder(s) to start from (repeat --init): "
        + "; ".join(f"{s.name}: {s.init_help}" for s in STAGE_REGISTRY.values() if s.max_init),
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--protocol", default="validation", choices=("validation", "paper"),
        help="validation: select on validation; paper: the original's train on train+validation, select on test",
    )
    parser.add_argument(
        "--subject-protocol", default=None, choices=("per-subject", "loso"),
        help="train one run per subject: per-subject (train/select/test within each subject) or loso (leave one "
        "subject out: train on the others, test on it); OUTPUT/sub-XX/ per fold, mean +- std in "
        "OUTPUT/subject_protocol.json and OUTPUT/README.md; --init may contain {fold} (docs/protocols.md)",
    )
    parser.add_argument(
        "--controls", action="store_true",
        help="also train a label-shuffled control (classification stages) and report its test accuracy vs chance "
        "in metrics.json and the card (it must sit at chance); where the data declare a recording_order column, "
        "also run the temporal-adjacency probe (labels from neighbours in recording order only; docs/protocols.md)",
    )
    parser.add_argument("--lora", action="store_true", help="train LoRA adapters only: " + "; ".join(
        f"{s.name}: on {s.lora_targets.description}" for s in STAGE_REGISTRY.values() if s.supports_lora))
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--lora-alpha", type=int, default=16)
    parser.add_argument("--lora-dropout", type=float, default=0.05)
    parser.add_argument("--merge-lora", action="store_true", help="also save the merged model (adapter in lora_adapter/)")
    parser.add_argument("--linear-probe-every", type=int, default=None, help="time-pretrain: epochs between probes")
    parser.add_argument(
        "--resume-from-checkpoint", nargs="?", const="last", default=None, metavar="CHECKPOINT",
        help="resume from a checkpoint folder, or the last one in --output when no folder is given",
    )
    parser.add_argument("--overwrite-output", action="store_true", help="delete earlier checkpoints in --output")
    parser.add_argument(
        "--no-linear-baseline", dest="linear_baseline", action="store_false",
        help="skip the logistic-regression baseline reported beside the model's accuracy",
    )
    parser.add_argument("--push-to-hub", default=None, metavar="REPO", help="upload the run folder to this Hub repo")
    parser.add_argument("--hub-private", action="store_true")
    parser.add_argument("--hub-token", default=None)
    trainer_group = parser.add_argument_group("Trainer options (override the preset)")
    for flag, kind, text in _TRAINER_OPTIONS:
        trainer_group.add_argument(flag, type=kind, default=None, help=text)
    for flag, text in _TRAINER_FLAGS:
        aliases = ("--gradient-checkpointing",) if flag == "--activation-checkpointing" else ()
        trainer_group.add_argument(flag, *aliases, action="store_true", default=None, help=text)
    trainer_group.add_argument(
        "--training-arg", action="append", default=[], metavar="NAME=VALUE",
        help="any other TrainingArguments field (VALUE parsed as JSON when possible); repeatable",
    )
    add_threads_argument(parser)
    parser.set_defaults(func=_run)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Option defaults shown; the description's stage list kept line by line."""


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def training_overrides(args: argparse.Namespace) -> dict:
    """The ``TrainingArguments`` overrides given on the command line."""
    overrides = {}
    for flag, _, _ in _TRAINER_OPTIONS:
        name = flag[2:].replace("-", "_")
        value = getattr(args, name)
        if value is not None:
            overrides[name] = [value] if name == "report_to" else value
    for flag, _ in _TRAINER_FLAGS:
        name = flag[2:].replace("-", "_")
        if getattr(args, name):
            overrides[name] = True
    for item in args.training_arg:
        if "=" not in item:
            raise ValueError(f"--training-arg {item!r}: expected NAME=VALUE")
        name, value = item.split("=", 1)
        overrides[name.strip().replace("-", "_")] = _parse_value(value)
    return overrides


def _run(args: argparse.Namespace) -> int:
    from ..training.run import train_stage  # imports torch: `brainvis train --help` must not

    for folder in args.init:  # damaged weights / configs: one line naming the file, before training
        if Path(folder).is_dir():
            check_model_folder(Path(folder))
    for flag, value in (("--config", args.config), ("--training-config", args.training_config)):
        if value and Path(value).is_file():
            read_json_file(value, f"{flag} JSON file")

    if args.subject_protocol is not None:
        clashing = [flag for flag, value in (("--controls", args.controls), ("--push-to-hub", args.push_to_hub),
                                             ("--resume-from-checkpoint", args.resume_from_checkpoint)) if value]
        if clashing:
            print(f"brainvis train: error: --subject-protocol cannot be combined with {', '.join(clashing)}; "
                  "run the control on a fold's data folder (OUTPUT/folds/sub-XX/data) instead", file=sys.stderr)
            return 2
        return _run_subject_protocol(args)
    result = train_stage(
        args.stage,
        args.data,
        args.output,
        preset=args.preset,
        config=args.config,
        training_config=args.training_config,
        init=args.init,
        seed=args.seed,
        protocol=args.protocol,
        lora=args.lora,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        merge_lora=args.merge_lora,
        linear_probe_every_n_epochs=args.linear_probe_every,
        resume_from_checkpoint=args.resume_from_checkpoint,
        overwrite_output=args.overwrite_output,
        linear_baseline=args.linear_baseline,
        push_to_hub=args.push_to_hub,
        hub_private=args.hub_private,
        hub_token=args.hub_token,
        training_overrides=training_overrides(args),
    )
    main_process = result.trainer is None or result.trainer.is_world_process_zero()
    if main_process:
        if "evaluation" in result.metrics:
            summary = {split: {k: v for k, v in values.items() if k in ("loss", "accuracy", "cosine")}
                       for split, values in result.metrics["evaluation"].items()}
        else:  # a stage with a loop of its own (diffusion): its training loss
            summary = {k: result.metrics.get(k) for k in ("global_step", "loss_first", "loss_last")}
        print(f"brainvis train {args.stage}: model saved in {result.output_dir}; {json.dumps(finite_or_none(summary), allow_nan=False)}")
    if args.controls and main_process:
        from ..training.protocols import run_controls  # imports torch (see above)

        controls = run_controls(args.stage, args.data, args.output, seed=args.seed, init=args.init,
                                **_common_kwargs(args))
        c = controls["shuffled_labels"]
        state = "ABOVE CHANCE (confound?)" if c["above_chance"] else "at chance"
        print(f"brainvis train {args.stage}: label-shuffled control: test accuracy {c['test_accuracy']:.4f}, "
              f"chance {c['chance']:.4f}, p = {c['p_value']:.3g}: {state}")
        probe = controls.get("temporal_adjacency") or {}
        if probe.get("accuracy") is not None:
            state = "ABOVE CHANCE (the recording order gives the labels away)" if probe["above_chance"] else "at chance"
            print(f"brainvis train {args.stage}: temporal-adjacency probe: test accuracy {probe['accuracy']:.4f}, "
                  f"chance {probe['chance']:.4f}, p = {probe['p_value']:.3g}: {state}")
        elif probe.get("reason"):
            print(f"brainvis train {args.stage}: temporal-adjacency probe not run: {probe['reason']}")
    return 0


def _common_kwargs(args: argparse.Namespace) -> dict:
    """``train_stage`` arguments shared by the main run, subject folds and controls."""
    return dict(
        preset=args.preset, config=args.config, training_config=args.training_config, protocol=args.protocol,
        linear_probe_every_n_epochs=args.linear_probe_every, overwrite_output=True,
        training_overrides=training_overrides(args), lora=args.lora, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout, merge_lora=args.merge_lora,
    )


def _run_subject_protocol(args: argparse.Namespace) -> int:
    from ..training.protocols import run_subject_protocol  # imports torch (see _run)

    report = run_subject_protocol(args.stage, args.data, args.output, args.subject_protocol, init=args.init,
                                  seed=args.seed, **_common_kwargs(args))
    test = report["summary"].get("test", {})
    shown = {k: f"{v['mean']:.4f} +- {v['std']:.4f}" for k, v in test.items() if k in ("accuracy", "cosine", "loss")}
    print(f"brainvis train {args.stage} --subject-protocol {args.subject_protocol}: {len(report['folds'])} folds in "
          f"{args.output}; test {json.dumps(shown, allow_nan=False)}")
    return 0

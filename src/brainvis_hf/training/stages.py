"""The BrainVis training stages: one :class:`Stage` object each, in one registry that every other
module reads (the trainer, the run folder, the model card, ``brainvis train``, the demo).

A stage says what ``--init`` it needs, which model it trains (a builder in
:mod:`.stage_models`, or a loop of its own for the diffusion stage), how the best model is
selected, which loss parts are logged, where LoRA adapters go and what its model card says.
Adding a stage means adding one :class:`Stage` entry to :data:`STAGE_REGISTRY` and its model code
(``docs/architecture.md``, "Adding a training stage").

This module imports nothing heavy: ``brainvis train --help`` reads it without torch.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

#: what a stage's model learns; the trainer's evaluation predictions and metrics depend on it
STAGE_KIND_NAMES = ("masked_modeling", "classification", "alignment", "diffusion")

#: scalar outputs of the LMM model logged beside ``loss`` (and its evaluation metrics)
LMM_LOSS_PARTS = ("regression_loss", "codebook_loss", "codebook_hit_rate", "codebook_ndcg_at_10")
#: scalar outputs of the alignment model logged beside ``loss``
ALIGNMENT_LOSS_PARTS = ("mse_coarse_loss", "mse_fine_loss", "cosine_coarse_loss", "cosine_fine_loss",
                        "cosine_centred_coarse_loss", "cosine_centred_fine_loss", "classification_loss")


@dataclass(frozen=True)
class LoraTargets:
    """The ``nn.Linear`` layers of a stage's model that get LoRA adapters (everything else is
    frozen; the task heads are trained in full).

    Attributes:
        description: in words, for errors and docs.
        inside: a regular expression the module's dotted name must contain (``re.search``).
        exclude: sub-module names whose layers are never adapted.
        names: or: module-name suffixes, handed to PEFT as ``target_modules`` as they are.
    """

    description: str
    inside: str | None = None
    exclude: tuple[str, ...] = ()
    names: tuple[str, ...] = ()


#: the attention and feed-forward linears of the time encoder's transformer layers (not the LMM
#: momentum encoder or regressor: the fine-tuning stages do not train them)
TIME_ENCODER_LORA = LoraTargets(
    "the attention and feed-forward linears of the time encoder's transformer layers",
    inside=r"(^|\.)layers\.\d+\.",
    exclude=("momentum_encoder", "regressor"),
)
#: the UNet's attention projections (diffusers' ``train_text_to_image_lora`` recipe)
UNET_ATTENTION_LORA = LoraTargets(
    "the UNet's attention projections", names=("to_q", "to_k", "to_v", "to_out.0"),
)


@dataclass(frozen=True)
class Stage:
    """Everything about one training stage.

    Attributes:
        name: ``brainvis train NAME``.
        kind: one of :data:`STAGE_KIND_NAMES`.
        help: one line for ``brainvis train --help``.
        init_help: what ``--init`` must name, in words (for ``--help`` and errors).
        min_init, max_init: how many ``--init`` folders it takes.
        model_preset: the ``hub_configs`` folder of its model configuration ("" for none).
        model_builder: the function of :mod:`.stage_models` that builds its model from the data
            and the ``--init`` folders ("" for a stage with a loop of its own).
        metric_for_best_model, greater_is_better: validation metric of model selection.
        loss_parts: scalar model outputs logged beside ``loss`` during training.
        lora_targets: where ``--lora`` puts adapters; ``None``: the stage takes no ``--lora``.
        needs_clip_targets: the data folder must hold ``clip_targets/`` for every image.
        card_title, card_summary, card_task_type: its model card's heading, first paragraph and
            ``model-index`` task.
        runner: ``"module:function"`` of a stage that is not run by ``transformers.Trainer``
            (it receives ``(stage, data_dir, output_dir, options: RunOptions)`` and returns a
            :class:`TrainingResult`); ``None`` for the Trainer stages.
    """

    name: str
    kind: str
    help: str
    init_help: str
    min_init: int = 0
    max_init: int = 0
    model_preset: str = ""
    model_builder: str = ""
    metric_for_best_model: str = "loss"
    greater_is_better: bool = False
    loss_parts: tuple[str, ...] = ()
    lora_targets: LoraTargets | None = None
    needs_clip_targets: bool = False
    card_title: str = ""
    card_summary: str = ""
    card_task_type: str = "eeg-classification"
    runner: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in STAGE_KIND_NAMES:
            raise ValueError(f"Stage {self.name!r}: unknown kind {self.kind!r}; expected one of {STAGE_KIND_NAMES}")
        if bool(self.model_builder) == bool(self.runner):
            raise ValueError(f"Stage {self.name!r}: give exactly one of model_builder and runner")

    @property
    def supports_lora(self) -> bool:
        """Whether ``--lora`` applies."""
        return self.lora_targets is not None

    def check_init_count(self, init: Sequence[str | os.PathLike]) -> None:
        """``ValueError`` unless ``init`` has between :attr:`min_init` and :attr:`max_init` entries."""
        if not self.min_init <= len(init) <= self.max_init:
            count = str(self.min_init) if self.min_init == self.max_init else f"{self.min_init} to {self.max_init}"
            raise ValueError(
                f"Stage {self.name!r} needs {count} --init folder(s) ({self.init_help}); got {len(init)}"
                + (f": {[str(f) for f in init]}" if init else "")
            )


STAGE_REGISTRY: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage(
            name="time-pretrain",
            kind="masked_modeling",
            help="latent masked modeling of the time encoder (no labels)",
            init_help="optionally a time-encoder folder to continue pretraining from",
            max_init=1,
            model_preset="time_encoder",
            model_builder="build_time_pretrain_model",
            metric_for_best_model="linear_probe_accuracy",
            greater_is_better=True,
            loss_parts=LMM_LOSS_PARTS,
            card_title="BrainVis time encoder (latent masked modeling pretraining)",
            card_summary=(
                "Transformer EEG time encoder pretrained without labels by latent masked modeling (LMM): 75% of "
                "the 4-sample units are masked and their momentum-encoder representations and codebook tokens "
                "are predicted from the visible ones."
            ),
            card_task_type="feature-extraction",
        ),
        Stage(
            name="time-finetune",
            kind="classification",
            help="the pretrained time encoder with a linear classifier",
            init_help="the pretrained time-encoder folder (output of time-pretrain)",
            min_init=1,
            max_init=1,
            model_preset="time_encoder",
            model_builder="build_time_finetune_model",
            metric_for_best_model="accuracy",
            greater_is_better=True,
            lora_targets=TIME_ENCODER_LORA,
            card_title="BrainVis time encoder EEG classifier",
            card_summary=(
                "The LMM-pretrained time encoder fine-tuned with a linear head to classify which of the image "
                "classes a subject was looking at."
            ),
        ),
        Stage(
            name="freq",
            kind="classification",
            help="the frequency encoder (|FFT| -> LSTM) with its classifier",
            init_help="optionally a frequency-encoder folder to continue from",
            max_init=1,
            model_preset="freq_encoder",
            model_builder="build_freq_model",
            metric_for_best_model="accuracy",
            greater_is_better=True,
            card_title="BrainVis frequency encoder EEG classifier",
            card_summary=(
                "Frequency branch of BrainVis: |FFT| spectrum of each channel -> LSTM -> 128-d feature, with a "
                "linear classifier."
            ),
        ),
        Stage(
            name="timefreq",
            kind="classification",
            help="both encoders fine-tuned jointly with one classifier",
            init_help=(
                "the time-encoder folder (time-pretrain or time-finetune output) and then the frequency-encoder "
                "folder (freq output)"
            ),
            min_init=2,
            max_init=2,
            model_preset="timefreq",
            model_builder="build_timefreq_model",
            metric_for_best_model="accuracy",
            greater_is_better=True,
            lora_targets=TIME_ENCODER_LORA,
            card_title="BrainVis unified time-frequency EEG classifier",
            card_summary=(
                "The unified BrainVis classifier: pooled time-encoder features concatenated with the frequency "
                "feature, both branches fine-tuned jointly with a linear head."
            ),
        ),
        Stage(
            name="align",
            kind="alignment",
            help="CLIP alignment with semantic interpolation (needs clip_targets/)",
            init_help="the unified time-frequency classifier folder (timefreq output)",
            min_init=1,
            max_init=1,
            model_preset="align",
            model_builder="build_align_model",
            metric_for_best_model="cosine",
            greater_is_better=True,
            loss_parts=ALIGNMENT_LOSS_PARTS,
            lora_targets=TIME_ENCODER_LORA,
            needs_clip_targets=True,
            card_title="BrainVis EEG -> CLIP text-embedding alignment model",
            card_summary=(
                "The BrainVis alignment model: the unified classifier's features and logits mapped by a "
                "residual MLP to a 77 x D CLIP text-embedding sequence that conditions Stable Diffusion, trained "
                "towards both the class-name embedding and a BLIP-2 caption embedding (semantic interpolation)."
            ),
            card_task_type="feature-extraction",
        ),
        Stage(
            name="diffusion",
            kind="diffusion",
            help="the UNet on the data's images, prompted with their class words (needs an image column)",
            init_help=(
                "optionally a Stable Diffusion v1.x folder or Hub id to adapt; none: a small VAE and UNet are "
                "trained from scratch"
            ),
            max_init=1,
            lora_targets=UNET_ATTENTION_LORA,
            card_title="BrainVis diffusion model (UNet conditioned on class-word CLIP embeddings)",
            card_summary=(
                "A Stable Diffusion UNet taught the data set's images, each prompted with the CLIP text embedding "
                "of its class words: the conditioning the alignment model's coarse target imitates."
            ),
            card_task_type="text-to-image",
            runner="brainvis_hf.training.diffusion:run_diffusion_stage",
        ),
    )
}

#: every stage ``train_stage`` / ``brainvis train`` runs, in chain order
STAGES: tuple[str, ...] = tuple(STAGE_REGISTRY)
#: the stages run by ``transformers.Trainer`` (each has a hyper-parameter file per preset)
TRAINER_STAGES: tuple[str, ...] = tuple(s.name for s in STAGE_REGISTRY.values() if s.runner is None)


def get_stage(name: str) -> Stage:
    """The :class:`Stage` called ``name``; ``ValueError`` naming the known stages otherwise."""
    if name not in STAGE_REGISTRY:
        raise ValueError(f"Unknown stage {name!r}; expected one of {', '.join(STAGES)}.")
    return STAGE_REGISTRY[name]


def stage_loss_parts(kind: str) -> tuple[str, ...]:
    """The loss parts of the stages of ``kind`` (the trainer logs them)."""
    parts = [p for s in STAGE_REGISTRY.values() if s.kind == kind for p in s.loss_parts]
    return tuple(dict.fromkeys(parts))


def stage_runner(stage: Stage):
    """The function that runs a stage with a loop of its own (its module is imported on first use:
    the diffusion stage's needs diffusers, which the Trainer stages never load)."""
    module, _, name = stage.runner.partition(":")
    return getattr(importlib.import_module(module), name)


# ----------------------------------------------------------------------------------------------
# What every stage receives and returns
# ----------------------------------------------------------------------------------------------


@dataclass
class RunOptions:
    """The options of :func:`~brainvis_hf.training.run.train_stage` besides the stage and folders
    (see its docstring); a stage with a loop of its own receives them too."""

    preset: str = "paper"
    config: str | os.PathLike | None = None
    training_config: str | os.PathLike | None = None
    init: Sequence[str | os.PathLike] = ()
    seed: int = 42
    protocol: str = "validation"
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    merge_lora: bool = False
    linear_probe_every_n_epochs: int | None = None
    resume_from_checkpoint: str | os.PathLike | bool | None = None
    overwrite_output: bool = False
    linear_baseline: bool = True
    push_to_hub: str | None = None
    hub_private: bool = False
    hub_token: str | None = None
    training_overrides: dict[str, Any] = field(default_factory=dict)
    callbacks: Sequence[Any] = ()


@dataclass
class TrainingResult:
    """What :func:`~brainvis_hf.training.run.train_stage` returns: the run folder, the metrics (as
    in its ``metrics.json``), the trained model and the ``Trainer`` (``None`` for a stage with a
    loop of its own)."""

    output_dir: Path
    stage: str
    metrics: dict[str, Any]
    model: Any = field(repr=False)
    trainer: Any = field(repr=False)


# ----------------------------------------------------------------------------------------------
# Old names
# ----------------------------------------------------------------------------------------------

StageSpec = Stage
STAGE_SPECS = STAGE_REGISTRY
get_stage_spec = get_stage
#: stage name -> kind (old name; read ``get_stage(name).kind``)
STAGE_KINDS: dict[str, str] = {s.name: s.kind for s in STAGE_REGISTRY.values()}

# Names that lived here before the run was split into check -> build -> fit -> write. They are
# looked up on first use, because their modules import this one (and torch).
_MOVED = {
    "train_stage": ".run",
    "checkpoint_problem": ".run",
    "recipe_options": ".run",
    "DataInfo": ".stage_data",
    "describe_data": ".stage_data",
    "record_data_signal_info": ".stage_data",
    "DATA_COLUMNS": ".stage_data",
    "build_stage_model": ".stage_models",
    "rebuild_base_model": ".stage_models",
    "ALIGN_CLASSIFICATION_LOSS_WEIGHT": ".stage_models",
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __package__), name)

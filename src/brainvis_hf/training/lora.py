"""LoRA (PEFT) for the stages that fine-tune a pretrained time encoder.

Adapters go where the stage's :attr:`~.stages.Stage.lora_targets` say: for the EEG stages the
attention (query, key, value, output) and feed-forward linears of the time encoder's transformer
layers; the task heads (classifier, prompt projector) are trained in full
(``modules_to_save``); everything else is frozen. A run trained with ``lora=True`` saves the
adapter (``adapter_config.json`` + ``adapter_model.safetensors``) and a ``brainvis_lora.json``
that records how to rebuild the base model, so :func:`~brainvis_hf.training.lora_merge.merge_lora_adapter`
can export a plain model folder later; ``merge_lora=True`` does it at the end of training.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .stages import TIME_ENCODER_LORA, LoraTargets

LORA_META_NAME = "brainvis_lora.json"


def lora_target_modules(model: nn.Module, targets: LoraTargets = TIME_ENCODER_LORA) -> list[str]:
    """Names of the ``nn.Linear`` modules of ``model`` that ``targets`` selects (by default: inside
    the time encoder's transformer layers, not the LMM momentum encoder or regressor)."""
    if targets.names:
        return [name for name, module in model.named_modules()
                if isinstance(module, nn.Linear) and any(name == t or name.endswith("." + t) for t in targets.names)]
    inside = re.compile(targets.inside or "")
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or not inside.search(name):
            continue
        if any(part in name.split(".") for part in targets.exclude):
            continue
        names.append(name)
    return names


def lora_modules_to_save(model: nn.Module, targets: list[str]) -> list[str]:
    """Top-level children of ``model`` that hold no LoRA target but have parameters (the heads)."""
    keep = []
    for child_name, child in model.named_children():
        if any(t == child_name or t.startswith(child_name + ".") for t in targets):
            continue
        if any(True for _ in child.parameters()):
            keep.append(child_name)
    return keep


def apply_lora(model, *, r: int = 8, alpha: int = 16, dropout: float = 0.05,
               targets: LoraTargets = TIME_ENCODER_LORA):
    """Wrap ``model`` in a ``peft.PeftModel`` with LoRA on the linears ``targets`` selects (a
    stage's :attr:`~.stages.Stage.lora_targets`).

    Raises:
        ValueError: when the model has no such linears (e.g. the frequency encoder).
    """
    # peft takes seconds to import and only --lora runs need it
    from peft import LoraConfig, get_peft_model

    names = lora_target_modules(model, targets)
    if not names:
        raise ValueError(f"LoRA goes on {targets.description}; {type(model).__name__} has none.")
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=names,
        modules_to_save=lora_modules_to_save(model, names),
        bias="none",
    )
    return get_peft_model(model, config)


def trainable_parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def write_lora_meta(folder: str | os.PathLike, meta: Mapping[str, Any]) -> None:
    """Record how the base model of an adapter is rebuilt (stage, init folders, label set)."""
    Path(folder, LORA_META_NAME).write_text(json.dumps(dict(meta), indent=2, allow_nan=False))


@torch.no_grad()
def merge_lora(model):
    """Merge the adapters of a ``PeftModel`` into its base weights and return the plain model."""
    return model.merge_and_unload()

"""Trainer callbacks of the BrainVis stages.

- :class:`MomentumUpdateCallback`: LMM momentum encoder, initialised from the online encoder at
  the start of training and updated after every *optimizer* step (``on_step_end`` fires once per
  optimizer step, also under gradient accumulation).
- :class:`LinearProbeCallback`: every few epochs, standardised logistic regression on the pooled
  features of the (frozen) encoder, fitted on train, scored on validation (part of the Trainer's
  evaluation, so it can select the best pretraining checkpoint).
"""

from __future__ import annotations

import math

import torch
from transformers import TrainerCallback

from ..evaluation.linear_probe import linear_probe_accuracy


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


class MomentumUpdateCallback(TrainerCallback):
    """Keeps the LMM momentum encoder: ``theta_m <- m * theta_m + (1 - m) * theta_online``.

    Args:
        init_at_start: copy the online encoder into the momentum encoder when a run starts from
            step 0 (not when it resumes from a checkpoint, which holds the momentum encoder).
    """

    def __init__(self, init_at_start: bool = True):
        self.init_at_start = init_at_start
        self.num_updates = 0

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.init_at_start and state.global_step == 0 and model is not None:
            _unwrap(model).init_momentum_encoder()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None:
            with torch.no_grad():
                _unwrap(model).momentum_update()
            self.num_updates += 1


@torch.no_grad()
def pooled_features(
    model: torch.nn.Module, dataset, collator, *, batch_size: int = 256, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled encoder features (``model.base_model(eeg_values).pooler_output``) and labels of ``dataset``."""
    model = _unwrap(model)
    encoder = model.base_model
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    features, labels = [], []
    try:
        for start in range(0, len(dataset), batch_size):
            rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            batch = collator(rows)
            output = encoder(eeg_values=batch["eeg_values"].to(device))
            features.append(output.pooler_output.float().cpu())
            labels.append(batch["labels"].cpu())
    finally:
        model.train(was_training)
    return torch.cat(features), torch.cat(labels)


def linear_probe(model, train_dataset, eval_dataset, collator, *, batch_size: int = 256) -> float:
    """Linear-probe accuracy of ``model``'s pooled features (fit on train, score on eval)."""
    train_x, train_y = pooled_features(model, train_dataset, collator, batch_size=batch_size)
    eval_x, eval_y = pooled_features(model, eval_dataset, collator, batch_size=batch_size)
    return linear_probe_accuracy(train_x.numpy(), train_y.numpy(), eval_x.numpy(), eval_y.numpy())


class LinearProbeCallback(TrainerCallback):
    """Linear probe of the encoder every ``every_n_epochs`` epochs (and after the last one).

    The probe runs inside the Trainer's evaluation (:class:`~.trainer.BrainVisTrainer` calls
    :meth:`run`), so its accuracy is logged as ``eval_linear_probe_accuracy`` and can select the
    best checkpoint; with an epoch evaluation strategy this callback skips the evaluations (and
    checkpoints) of the epochs in between.

    Args:
        train_dataset, eval_dataset: rows the collator turns into ``eeg_values`` / ``labels``.
        collator: the run's data collator.
        every_n_epochs: probing interval in epochs.
        batch_size: feature-extraction batch size.
    """

    def __init__(self, train_dataset, eval_dataset, collator, *, every_n_epochs: int = 10, batch_size: int = 256):
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.collator = collator
        self.every_n_epochs = every_n_epochs
        self.batch_size = batch_size
        self.history: list[dict[str, float]] = []

    def on_train_begin(self, args, state, control, **kwargs):
        # resuming: the probes before the checkpoint are in its log history (the Trainer logs them as
        # eval_linear_probe_accuracy); rebuild the history so that metrics.json keeps them
        self.history = [
            {"epoch": float(round(entry.get("epoch") or 0.0, 4)), "step": int(entry.get("step", 0)),
             "linear_probe_accuracy": float(entry["eval_linear_probe_accuracy"])}
            for entry in state.log_history if "eval_linear_probe_accuracy" in entry
        ]  # fmt: skip

    def on_epoch_end(self, args, state, control, **kwargs):
        if str(getattr(args.eval_strategy, "value", args.eval_strategy)) != "epoch" or state.epoch is None:
            return
        epoch = int(round(state.epoch))
        last = state.global_step >= state.max_steps or epoch >= int(math.ceil(args.num_train_epochs))
        if epoch % self.every_n_epochs != 0 and not last:
            control.should_evaluate = False
            if str(getattr(args.save_strategy, "value", args.save_strategy)) == "epoch":
                control.should_save = False

    def run(self, model, state) -> float:
        """Probe ``model`` now; records and returns the accuracy."""
        accuracy = linear_probe(model, self.train_dataset, self.eval_dataset, self.collator, batch_size=self.batch_size)
        epoch = float(round(state.epoch, 4)) if state.epoch is not None else 0.0
        self.history.append({"epoch": epoch, "step": state.global_step, "linear_probe_accuracy": accuracy})
        return accuracy

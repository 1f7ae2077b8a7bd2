"""``BrainVisTrainer``: ``transformers.Trainer`` that logs the models' loss parts and computes
small per-stage evaluation predictions.

- Training: the scalar parts a model returns besides ``loss`` (LMM: ``regression_loss``,
  ``codebook_loss``, ``codebook_hit_rate``; alignment: its loss terms) are averaged over the
  logging interval (and over processes) and logged next to ``loss``.
- Evaluation: ``prediction_step`` returns a small ``B x K`` tensor per batch instead of the raw
  outputs (the alignment output alone is 77 x 768 per sample): class logits, the per-sample
  cosine similarity to the CLIP targets, or the LMM loss parts. :func:`compute_stage_metrics`
  turns them into metrics.
- Model inputs are filtered by the model's ``forward`` signature, so one collator serves all
  stages (the LMM model takes no labels, only the alignment model takes CLIP targets).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Trainer

from ..evaluation.classification_metrics import eeg_classification_metrics
from .stages import LMM_LOSS_PARTS, stage_loss_parts

#: the Trainer's stage kinds (their loss parts are the stages' :attr:`~.stages.Stage.loss_parts`)
TRAINER_KINDS = ("masked_modeling", "classification", "alignment")
# old names
LOSS_PART_KEYS: dict[str, tuple[str, ...]] = {kind: stage_loss_parts(kind) for kind in TRAINER_KINDS}
PRETRAIN_PARTS = LMM_LOSS_PARTS


def forward_parameter_names(model: torch.nn.Module) -> set[str] | None:
    """Names the (unwrapped) model's ``forward`` accepts; ``None`` if it takes ``**kwargs``."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):  # DDP & co.
        model = model.module
    if hasattr(model, "get_base_model"):  # PEFT
        model = model.get_base_model()
    params = inspect.signature(model.forward).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return set(params)


def select_model_inputs(model: torch.nn.Module, inputs: dict[str, Any]) -> dict[str, Any]:
    """Keep the entries of ``inputs`` that ``model.forward`` accepts."""
    names = forward_parameter_names(model)
    if names is None:
        return dict(inputs)
    return {k: v for k, v in inputs.items() if k in names}


def _scalar(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.detach().float().reshape(())
    if isinstance(value, (int, float)):
        return torch.tensor(float(value))
    return None


def per_sample_cosine(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each sample's flattened prediction and target (``B``)."""
    return F.cosine_similarity(prediction.flatten(1).float(), target.flatten(1).float(), dim=1)


class BrainVisTrainer(Trainer):
    """``Trainer`` for the BrainVis stages.

    Args:
        stage_kind: ``"masked_modeling"``, ``"classification"`` or ``"alignment"``.
        loss_parts: the scalar outputs logged beside ``loss`` (default: those of the registered
            stages of ``stage_kind``).
        linear_probe: a :class:`~.callbacks.LinearProbeCallback` run in every in-training evaluation.
        *args, **kwargs: as ``transformers.Trainer``.
    """

    def __init__(self, *args, stage_kind: str = "classification", loss_parts: tuple[str, ...] | None = None,
                 linear_probe=None, **kwargs):
        if stage_kind not in TRAINER_KINDS:
            raise ValueError(f"Unknown stage kind {stage_kind!r}; expected one of {sorted(TRAINER_KINDS)}")
        super().__init__(*args, **kwargs)
        self.stage_kind = stage_kind
        self.loss_parts = tuple(stage_loss_parts(stage_kind) if loss_parts is None else loss_parts)
        self.linear_probe = linear_probe
        self._extra_eval_metrics: dict[str, float] = {}
        if self.compute_metrics is not None:
            self.compute_metrics = self._with_extra_metrics(self.compute_metrics)
        self._part_sums: dict[str, torch.Tensor] = {}
        self._part_count = 0
        # our models return a per-batch mean loss: let the Trainer divide it by the accumulation steps
        self.loss_is_scaled_for_ga = False

    # ---- training -------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        model_inputs = select_model_inputs(model, inputs)
        # `label_smoothing_factor` (TrainingArguments): as the Trainer does, integer class labels go
        # to its LabelSmoother instead of the model (classification stages, in training only: the
        # evaluation loss stays the plain cross-entropy)
        labels = model_inputs.get("labels")
        smooth = (
            self.label_smoother is not None and self.stage_kind == "classification" and model.training
            and isinstance(labels, torch.Tensor) and not labels.is_floating_point()
        )
        labels = model_inputs.pop("labels") if smooth else None
        outputs = model(**model_inputs)
        if labels is not None:
            loss = self.label_smoother(outputs, labels)
        else:
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs[0]
        if loss is None:
            raise ValueError(f"The model returned no loss; it received {sorted(select_model_inputs(model, inputs))}")
        if model.training:
            self._accumulate_parts(outputs)
        return (loss, outputs) if return_outputs else loss

    def _accumulate_parts(self, outputs) -> None:
        if not isinstance(outputs, dict):
            return
        keys = self.loss_parts
        found = False
        for key in keys:
            value = _scalar(outputs.get(key))
            if value is None:
                continue
            found = True
            self._part_sums[key] = self._part_sums.get(key, torch.zeros(())) + value.cpu()
        if found:
            self._part_count += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the averaged loss parts to the training logs (those that carry ``loss``)."""
        if "loss" in logs and self._part_count:
            keys = sorted(self._part_sums)
            means = torch.stack([self._part_sums[k] for k in keys]) / self._part_count
            if self.accelerator.num_processes > 1:
                means = self.accelerator.reduce(means.to(self.args.device), reduction="mean").cpu()
            for key, value in zip(keys, means.tolist()):
                logs[key] = round(value, 6)
            self._part_sums, self._part_count = {}, 0
        super().log(logs, start_time)

    # ---- evaluation -----------------------------------------------------------------------
    def _with_extra_metrics(self, compute_metrics):
        def compute(eval_prediction):
            return {**compute_metrics(eval_prediction), **self._extra_eval_metrics}

        return compute

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        """As ``Trainer.evaluate``; the in-training evaluations also run the linear probe, if any."""
        self._extra_eval_metrics = {}
        if self.linear_probe is not None and eval_dataset is None:
            self._extra_eval_metrics["linear_probe_accuracy"] = self.linear_probe.run(self.model, self.state)
        try:
            return super().evaluate(eval_dataset=eval_dataset, ignore_keys=ignore_keys,
                                    metric_key_prefix=metric_key_prefix)
        finally:
            self._extra_eval_metrics = {}

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            outputs = model(**select_model_inputs(model, inputs))
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs[0]
        loss = loss.detach().mean() if loss is not None else None
        if prediction_loss_only:
            return loss, None, None
        labels = inputs.get("labels")
        batch = inputs["eeg_values"].shape[0]
        if labels is None:
            labels = torch.full((batch,), -100, dtype=torch.long, device=inputs["eeg_values"].device)
        return loss, self._stage_predictions(outputs, inputs, batch), labels

    def _stage_predictions(self, outputs, inputs, batch: int) -> torch.Tensor:
        if self.stage_kind == "classification":
            return outputs["logits"].detach().float()
        if self.stage_kind == "alignment":
            prompt = outputs["prompt_embeds"]
            cos = [per_sample_cosine(prompt, inputs[k]) for k in ("coarse_embeds", "fine_embeds")]
            columns = [c[:, None] for c in cos]
            if outputs.get("logits") is not None:
                columns.insert(0, outputs["logits"].detach().float())
            return torch.cat(columns, dim=1)
        # masked modeling: batch-mean loss parts, one row per sample (sample-weighted mean later)
        values = []
        for key in LMM_LOSS_PARTS:
            value = _scalar(outputs.get(key)) if isinstance(outputs, dict) else None
            values.append(value.to(inputs["eeg_values"].device) if value is not None else torch.tensor(float("nan")))
        return torch.stack(values).to(inputs["eeg_values"].device)[None, :].expand(batch, -1).clone()


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Top-1 (``accuracy``) / top-3 accuracy and macro-F1 of ``logits`` (N x K) against ``labels``
    (N): the numbers of :func:`~brainvis_hf.evaluation.eeg_classification_metrics`, so training
    logs and the evaluation report break ties and average F1 the same way."""
    result = eeg_classification_metrics(logits, labels)
    metrics = {"accuracy": result["top1_accuracy"]}
    if logits.shape[1] > 3:
        metrics["top3_accuracy"] = result["top3_accuracy"]
    metrics["macro_f1"] = result["macro_f1"]
    return metrics


def compute_stage_metrics(stage_kind: str):
    """The ``compute_metrics`` callable of a stage kind (reads :class:`BrainVisTrainer` predictions)."""

    def compute(eval_prediction) -> dict[str, float]:
        predictions = np.asarray(eval_prediction.predictions, dtype=np.float64)
        labels = np.asarray(eval_prediction.label_ids)
        if stage_kind == "classification":
            return classification_metrics(predictions, labels)
        if stage_kind == "alignment":
            metrics = {
                "cosine_coarse": float(np.mean(predictions[:, -2])),
                "cosine_fine": float(np.mean(predictions[:, -1])),
            }
            metrics["cosine"] = (metrics["cosine_coarse"] + metrics["cosine_fine"]) / 2
            if predictions.shape[1] > 2:
                metrics.update(classification_metrics(predictions[:, :-2], labels))
            return metrics
        return {key: float(np.nanmean(predictions[:, i])) for i, key in enumerate(LMM_LOSS_PARTS)}

    return compute

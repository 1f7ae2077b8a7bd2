"""The unified BrainVis model: time + frequency features, the class head and the CLIP alignment head.

`BrainVisModel` concatenates the pooled time feature (d) and the frequency feature (128);
`BrainVisForEEGClassification` puts a Linear class head on it; `BrainVisForCLIPAlignment` adds
the tanh residual "AlignNet" stack that maps [feature, class logits] to a 77 x 768 stand-in for
the Stable Diffusion text-prompt embedding.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_brainvis import BrainVisConfig
from .modeling_freq_encoder import BrainVisFreqEncoderModel
from .modeling_time_encoder import (
    BrainVisEEGClassifierOutput,
    BrainVisModelMixin,
    BrainVisTimeEncoderModel,
    check_eeg_values,
    check_model_outputs,
    classification_loss,
    init_linear_like_torch,
)


@dataclass
class BrainVisModelOutput(ModelOutput):
    """Output of `BrainVisModel`.

    Args:
        pooler_output: B x (d + 128) joint feature `[time feature, frequency feature]`.
        last_hidden_state: B x n x d token states of the time encoder.
        time_features: B x d pooled time feature.
        freq_features: B x 128 frequency feature.
        hidden_states: per-layer time-encoder states when requested.
        attentions: per-layer time-encoder attention weights when requested.
        freq_hidden_states: the frequency encoder's input spectrum and LSTM states when requested.
    """

    pooler_output: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    time_features: torch.FloatTensor | None = None
    freq_features: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    freq_hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class BrainVisCLIPAlignmentOutput(ModelOutput):
    """Output of `BrainVisForCLIPAlignment`.

    Args:
        loss: `mse_coarse_loss + mse_fine_loss + cosine_coarse_loss + cosine_fine_loss`
            (the terms whose targets were given), plus
            `config.alignment_centred_loss_weight * (cosine_centred_coarse_loss + cosine_centred_fine_loss)`
            when that weight is set, plus
            `config.alignment_classification_loss_weight * classification_loss` when labels are given.
        prompt_embeds: B x prompt_sequence_length x prompt_embed_dim predicted prompt embedding.
        logits: B x num_labels class scores of the unified classifier.
        pooler_output: B x (d + 128) joint feature.
        mse_coarse_loss / mse_fine_loss: MSE to the class-name / caption CLIP embeddings.
        cosine_coarse_loss / cosine_fine_loss: cosine-embedding loss (target +1) on the flattened vectors.
        cosine_centred_coarse_loss / cosine_centred_fine_loss: cosine-embedding loss between the
            batch-centred prediction and target (when `config.alignment_centred_loss_weight` > 0
            and the batch holds 2 or more samples; weighted into `loss` by that weight).
        classification_loss: the class-head loss of `logits` with `labels` after `config.problem_type`
            (cross-entropy by default), when given (reported; weighted into `loss` by
            `alignment_classification_loss_weight`, 0 by default as in the paper).
        hidden_states / attentions / freq_hidden_states: as in `BrainVisModelOutput`, when requested.
    """

    loss: torch.FloatTensor | None = None
    prompt_embeds: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    mse_coarse_loss: torch.FloatTensor | None = None
    mse_fine_loss: torch.FloatTensor | None = None
    cosine_coarse_loss: torch.FloatTensor | None = None
    cosine_fine_loss: torch.FloatTensor | None = None
    classification_loss: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    freq_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    # after the fields above, so that their tuple positions stay as before
    cosine_centred_coarse_loss: torch.FloatTensor | None = None
    cosine_centred_fine_loss: torch.FloatTensor | None = None


def _as_base_model(source, base_class: type[PreTrainedModel], attribute: str, **load_kwargs) -> PreTrainedModel:
    """A base encoder from a folder / hub id, a base model, or a model holding one as `attribute`."""
    if isinstance(source, (str, os.PathLike)):
        return base_class.from_pretrained(source, **load_kwargs)
    if isinstance(source, base_class):
        return source
    inner = getattr(source, attribute, None)
    if isinstance(inner, base_class):
        return inner
    raise ValueError(
        f"Expected a folder, a {base_class.__name__} or a model with a `{attribute}` {base_class.__name__}, "
        f"got {type(source).__name__}."
    )


class BrainVisPreTrainedModel(BrainVisModelMixin, PreTrainedModel):
    config_class = BrainVisConfig
    config: BrainVisConfig
    base_model_prefix = "brainvis"
    main_input_name = "eeg_values"
    input_modalities = ("time",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["BrainVisTransformerLayer", "BrainVisFreqEncoderModel"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Heads use PyTorch's default Linear init (as the original); the encoders initialise themselves."""
        if isinstance(module, nn.Linear):
            init_linear_like_torch(module)

    @classmethod
    def from_encoders(cls, time_encoder, freq_encoder, *, load_kwargs: dict | None = None, **config_overrides):
        """Build the model around trained encoders (the unified stage after the two branch stages).

        Args:
            time_encoder: folder of a saved time encoder (LMM-pretrained or fine-tuned), or a
                `BrainVisTimeEncoderModel` / a model holding one as `.time_encoder`.
            freq_encoder: likewise for the frequency encoder (`.freq_encoder`).
            load_kwargs: extra arguments of `from_pretrained` for folders.
            **config_overrides: `BrainVisConfig` fields (e.g. `id2label`, `prompt_embed_dim`).

        The encoders' weights are copied; the new heads are freshly initialised.
        """
        load_kwargs = load_kwargs or {}
        time_model = _as_base_model(time_encoder, BrainVisTimeEncoderModel, "time_encoder", **load_kwargs)
        freq_model = _as_base_model(freq_encoder, BrainVisFreqEncoderModel, "freq_encoder", **load_kwargs)
        config = BrainVisConfig(
            time_config=copy.deepcopy(time_model.config), freq_config=copy.deepcopy(freq_model.config), **config_overrides
        )
        model = cls(config)
        base = model.brainvis if hasattr(model, "brainvis") else model
        base.time_encoder.load_state_dict(time_model.state_dict())
        base.freq_encoder.load_state_dict(freq_model.state_dict())
        return model


class BrainVisModel(BrainVisPreTrainedModel):
    """Time encoder and frequency encoder side by side: `pooler_output` = [time feature, freq feature]."""

    def __init__(self, config: BrainVisConfig):
        super().__init__(config)
        self.time_encoder = BrainVisTimeEncoderModel(config.time_config)
        self.freq_encoder = BrainVisFreqEncoderModel(config.freq_config)
        self.post_init()

    def forward(
        self,
        eeg_values: torch.Tensor,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BrainVisModelOutput | tuple:
        """Joint feature of `eeg_values` (B x C x T); the flags default to the config's."""
        output_attentions, output_hidden_states, return_dict = self._output_flags(
            output_attentions, output_hidden_states, return_dict
        )
        check_eeg_values(eeg_values, self.config.num_channels, self.config.num_samples, dtype=self.dtype)
        time_out = self.time_encoder(
            eeg_values,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        freq_out = self.freq_encoder(eeg_values, output_hidden_states=output_hidden_states, return_dict=True)
        freq_features = freq_out.pooler_output
        time_features = time_out.pooler_output
        joint = torch.cat((time_features, freq_features.to(time_features.dtype)), dim=1)
        output = BrainVisModelOutput(
            pooler_output=joint,
            last_hidden_state=time_out.last_hidden_state,
            time_features=time_features,
            freq_features=freq_features,
            hidden_states=time_out.hidden_states,
            attentions=time_out.attentions,
            freq_hidden_states=freq_out.hidden_states,
        )
        return output if return_dict else output.to_tuple()


class BrainVisForEEGClassification(BrainVisPreTrainedModel):
    """The unified time-frequency classifier: Linear(d + 128 -> num_labels) on the joint feature."""

    def __init__(self, config: BrainVisConfig):
        super().__init__(config)
        self.brainvis = BrainVisModel(config)
        self.classifier = nn.Linear(config.feature_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        eeg_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BrainVisEEGClassifierOutput | tuple:
        """Class scores of `eeg_values`; with `labels`, the loss after `config.problem_type`."""
        output_attentions, output_hidden_states, return_dict = self._output_flags(
            output_attentions, output_hidden_states, return_dict
        )
        features = self.brainvis(
            eeg_values,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(features.pooler_output)
        if not self.training:
            check_model_outputs(logits, "logits")
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        output = BrainVisEEGClassifierOutput(
            loss=loss,
            logits=logits,
            pooler_output=features.pooler_output,
            hidden_states=features.hidden_states,
            attentions=features.attentions,
            freq_hidden_states=features.freq_hidden_states,
        )
        return output if return_dict else output.to_tuple()


class BrainVisPromptProjector(nn.Module):
    """The AlignNet stack: tanh layers with two-apart residuals, then Linear to the prompt embedding.

    h1 = tanh(fc1(x)); h2 = tanh(fc2(h1)); h3 = tanh(fc3(h2) + h1); h4 = tanh(fc4(h3) + h2);
    h5 = tanh(fc5(h4) + h3); out = output(h5), with widths 4d, d, 4d, d, 4d.
    """

    def __init__(self, config: BrainVisConfig):
        super().__init__()
        d = config.time_config.hidden_size
        wide = 4 * d
        self.fc1 = nn.Linear(config.feature_size + config.num_labels, wide)
        self.fc2 = nn.Linear(wide, d)
        self.fc3 = nn.Linear(d, wide)
        self.fc4 = nn.Linear(wide, d)
        self.fc5 = nn.Linear(d, wide)
        self.output = nn.Linear(wide, config.prompt_sequence_length * config.prompt_embed_dim)
        self.prompt_shape = (config.prompt_sequence_length, config.prompt_embed_dim)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        h1 = torch.tanh(self.fc1(inputs))
        h2 = torch.tanh(self.fc2(h1))
        h3 = torch.tanh(self.fc3(h2) + h1)
        h4 = torch.tanh(self.fc4(h3) + h2)
        h5 = torch.tanh(self.fc5(h4) + h3)
        return self.output(h5).view(inputs.shape[0], *self.prompt_shape)


def _cosine_embedding_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cosine-embedding loss with target +1 on flattened vectors: mean(1 - cos)."""
    return (1.0 - F.cosine_similarity(prediction.flatten(1), target.flatten(1), dim=1, eps=1e-8)).mean()


class BrainVisForCLIPAlignment(BrainVisPreTrainedModel):
    """AlignNet: predicts the 77 x 768 prompt embedding from [joint feature, class logits].

    Trained with `MSE(out, coarse) + MSE(out, fine) + CosEmb(out, coarse) + CosEmb(out, fine)`
    ("semantic interpolation" between the class-name and caption CLIP embeddings).
    """

    def __init__(self, config: BrainVisConfig):
        super().__init__(config)
        self.brainvis = BrainVisModel(config)
        self.classifier = nn.Linear(config.feature_size, config.num_labels)
        self.prompt_projector = BrainVisPromptProjector(config)
        self.post_init()

    def _check_target(self, name: str, target: torch.Tensor, batch: int) -> torch.Tensor:
        expected = (batch, self.config.prompt_sequence_length, self.config.prompt_embed_dim)
        if not isinstance(target, torch.Tensor) or tuple(target.shape) != expected:
            got = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
            raise ValueError(f"{name} must have shape {expected}, got {got}.")
        return target

    def forward(
        self,
        eeg_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        coarse_embeds: torch.Tensor | None = None,
        fine_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BrainVisCLIPAlignmentOutput | tuple:
        """The predicted prompt embedding of `eeg_values`; with targets / `labels`, the losses."""
        output_attentions, output_hidden_states, return_dict = self._output_flags(
            output_attentions, output_hidden_states, return_dict
        )
        encoded = self.brainvis(
            eeg_values,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        features = encoded.pooler_output
        logits = self.classifier(features)
        prompt_embeds = self.prompt_projector(torch.cat((features, logits), dim=1))
        if not self.training:
            check_model_outputs(logits, "logits")
            check_model_outputs(prompt_embeds, "prompt embeddings")

        parts: dict[str, torch.Tensor] = {}
        batch = prompt_embeds.shape[0]
        prediction = prompt_embeds.float()
        for kind, target in (("coarse", coarse_embeds), ("fine", fine_embeds)):
            if target is None:
                continue
            target = self._check_target(f"{kind}_embeds", target, batch).to(prediction.device, torch.float32)
            parts[f"mse_{kind}_loss"] = F.mse_loss(prediction, target)
            parts[f"cosine_{kind}_loss"] = _cosine_embedding_loss(prediction, target)
            if self.config.alignment_centred_loss_weight and batch > 1:
                parts[f"cosine_centred_{kind}_loss"] = _cosine_embedding_loss(
                    prediction - prediction.mean(0, keepdim=True), target - target.mean(0, keepdim=True)
                )
        if labels is not None:
            parts["classification_loss"] = classification_loss(logits, labels, self.config)

        loss = None
        clip_terms = [v for k, v in parts.items() if k != "classification_loss" and "centred" not in k]
        centred = self.config.alignment_centred_loss_weight
        clip_terms += [centred * v for k, v in parts.items() if "centred" in k]
        weight = self.config.alignment_classification_loss_weight
        if clip_terms:
            loss = torch.stack(clip_terms).sum()
        if "classification_loss" in parts and weight:
            weighted = weight * parts["classification_loss"]
            loss = weighted if loss is None else loss + weighted
        output = BrainVisCLIPAlignmentOutput(
            loss=loss,
            prompt_embeds=prompt_embeds,
            logits=logits,
            pooler_output=features,
            **parts,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
            freq_hidden_states=encoded.freq_hidden_states,
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "BrainVisPreTrainedModel",
    "BrainVisModel",
    "BrainVisForEEGClassification",
    "BrainVisForCLIPAlignment",
    "BrainVisModelOutput",
    "BrainVisCLIPAlignmentOutput",
    "BrainVisPromptProjector",
]

"""BrainVis time encoder: patch projection + learned positions + post-norm transformer blocks.

`BrainVisTimeEncoderModel` is the shared base; `BrainVisTimeEncoderForMaskedModeling` adds the
Latent Masked Modeling objective (momentum encoder, codebook tokenizer, cross-attention
regressor) and `BrainVisTimeEncoderForEEGClassification` a linear class head on the pooled
feature. Inputs are channels-first EEG, `eeg_values` of shape B x C x T.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput

from .configuration_brainvis import BrainVisTimeEncoderConfig

_ACCEPTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class NonFiniteEEGError(ValueError):
    """EEG values (or the model outputs they give) that are NaN / Inf; `batch_indices` are the rows."""

    def __init__(self, message: str, batch_indices: list[int]):
        super().__init__(message)
        self.batch_indices = batch_indices


_FIX_HINT = "standardise the EEG (z-score each channel, as the training data) or run the model in float32"


def _bad_rows(values: torch.Tensor) -> list[int]:
    return torch.nonzero(~torch.isfinite(values).flatten(1).all(dim=1)).flatten().tolist()


def check_model_outputs(values: torch.Tensor, name: str) -> None:
    """Raise a `NonFiniteEEGError` when finite EEG gave NaN / Inf `values` (e.g. logits).

    Finite but large inputs (raw microvolts ~1e3 in float16, ~1e18 in float32) overflow inside the
    encoder; the argmax of NaN logits would silently "predict" class 0. Checked in eval mode only,
    so training steps get no extra device sync.
    """
    if torch.compiler.is_compiling() or values.numel() == 0 or bool(torch.isfinite(values).all()):
        return
    rows = _bad_rows(values)
    raise NonFiniteEEGError(
        f"the model's {name} are NaN/Inf for batch item(s) {rows[:10]} although the EEG is finite "
        f"({values.dtype}): the EEG values are too large for the model; {_FIX_HINT} "
        "(or the weights themselves are not finite: a diverged training run).",
        rows,
    )


def check_eeg_values(eeg_values: torch.Tensor, num_channels: int, num_samples: int, dtype: torch.dtype | None = None) -> None:
    """Raise a `ValueError` naming expected vs got unless `eeg_values` is a finite, non-empty B x C x T
    float tensor; with `dtype` (the model's), also finite after the cast to it (float64 1e39 is
    finite but overflows float32)."""
    if not isinstance(eeg_values, torch.Tensor):
        raise ValueError(f"eeg_values must be a torch.Tensor of shape (batch, {num_channels}, {num_samples}), "
                         f"got {type(eeg_values).__name__}.")  # fmt: skip
    if eeg_values.dtype not in _ACCEPTED_DTYPES:
        raise ValueError(
            f"eeg_values must be a floating-point tensor (float32, float16, bfloat16 or float64), got {eeg_values.dtype}."
        )
    if eeg_values.ndim != 3:
        raise ValueError(
            f"eeg_values must have 3 dimensions (batch, channels={num_channels}, samples={num_samples}), "
            f"got shape {tuple(eeg_values.shape)}."
        )
    _, channels, samples = eeg_values.shape
    if channels != num_channels:
        raise ValueError(
            f"eeg_values must have {num_channels} channels (dim 1, channels first: batch x channels x samples), "
            f"got {channels} (shape {tuple(eeg_values.shape)})."
        )
    if samples != num_samples:
        raise ValueError(
            f"eeg_values must have {num_samples} time samples (dim 2), got {samples} "
            f"(shape {tuple(eeg_values.shape)}); crop or resample the recordings to the model's window."
        )
    if eeg_values.shape[0] == 0:
        raise ValueError(f"eeg_values holds no recordings (batch size 0, shape {tuple(eeg_values.shape)}); pass at least one.")
    if torch.compiler.is_compiling():
        return
    if not bool(torch.isfinite(eeg_values).all()):
        bad = int((~torch.isfinite(eeg_values)).sum())
        rows = _bad_rows(eeg_values)
        raise NonFiniteEEGError(f"eeg_values must be finite, got {bad} NaN/Inf value(s) in batch item(s) {rows[:10]}.", rows)
    if dtype is not None and dtype != eeg_values.dtype and torch.finfo(dtype).max < torch.finfo(eeg_values.dtype).max:
        cast = eeg_values.to(dtype)
        if not bool(torch.isfinite(cast).all()):
            rows = _bad_rows(cast)
            largest = float(eeg_values.abs().max())
            raise NonFiniteEEGError(
                f"eeg_values overflow {dtype} (largest magnitude {largest:.3g}) in batch item(s) {rows[:10]}; {_FIX_HINT}.",
                rows,
            )


# ----------------------------------------------------------------------------------------------
# Building blocks (shared with the regressor)
# ----------------------------------------------------------------------------------------------


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention with explicit weights: B x H x L x D inputs -> (B x L x H x D output, B x H x L x S weights)."""
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


class BrainVisAttention(nn.Module):
    """Multi-head attention with separate query, key, value and output projections.

    The kernel is `config._attn_implementation` through transformers' attention interface
    ("sdpa" by default, "eager", or "flex_attention" / "flash_attention_*" where installed);
    when the weights are asked for (`output_attentions`), the eager kernel computes them.
    """

    def __init__(self, config: BrainVisTimeEncoderConfig, dropout: float):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.dropout = dropout
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.output = nn.Linear(config.hidden_size, config.hidden_size)

    def _heads(self, states: torch.Tensor) -> torch.Tensor:
        batch, length, _ = states.shape
        return states.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Self-attention over `hidden_states`, or cross-attention to `key_value_states` when given.

        Returns the B x L x d output and the B x heads x L x S weights (None unless `output_attentions`).
        """
        source = hidden_states if key_value_states is None else key_value_states
        query = self._heads(self.query(hidden_states))
        key = self._heads(self.key(source))
        value = self._heads(self.value(source))
        implementation = "eager" if output_attentions else self.config._attn_implementation
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        context, weights = attention_interface(
            self, query, key, value, None, dropout=self.dropout if self.training else 0.0, scaling=self.scaling
        )
        batch, length = hidden_states.shape[:2]
        context = context.reshape(batch, length, self.num_heads * self.head_dim)
        return self.output(context), (weights if output_attentions else None)


class BrainVisFeedForward(nn.Module):
    """Linear -> GELU -> Linear -> Dropout."""

    def __init__(self, hidden_size: int, intermediate_size: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.fc2 = nn.Linear(intermediate_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(F.gelu(self.fc1(hidden_states))))


class BrainVisResidualLayerNorm(nn.Module):
    """Post-norm residual: `LayerNorm(x + Dropout(a * update))`, `a` a learnable scalar (or 1)."""

    def __init__(self, hidden_size: int, eps: float, dropout: float, learnable_scale: bool, scale_init: float):
        super().__init__()
        self.scale_init = scale_init
        self.scale = nn.Parameter(torch.tensor(float(scale_init))) if learnable_scale else None
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=eps)

    def forward(self, residual: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        if self.scale is not None:
            update = update * self.scale
        return self.layer_norm(residual + self.dropout(update))


class BrainVisTransformerLayer(GradientCheckpointingLayer):
    """One post-norm block: (self- or cross-) attention sub-layer, then a GELU feed-forward sub-layer."""

    def __init__(
        self,
        config: BrainVisTimeEncoderConfig,
        dropout: float,
        attention_dropout: float,
        learnable_scale: bool,
    ):
        super().__init__()
        hidden_size, eps, scale_init = config.hidden_size, config.layer_norm_eps, config.residual_scale_init
        self.attention = BrainVisAttention(config, attention_dropout)
        self.attention_residual = BrainVisResidualLayerNorm(hidden_size, eps, dropout, learnable_scale, scale_init)
        self.feed_forward = BrainVisFeedForward(hidden_size, config.intermediate_size, dropout)
        self.feed_forward_residual = BrainVisResidualLayerNorm(hidden_size, eps, dropout, learnable_scale, scale_init)

    @classmethod
    def encoder_layer(cls, config: BrainVisTimeEncoderConfig) -> BrainVisTransformerLayer:
        """A self-attention block of the encoder."""
        return cls(
            config, config.hidden_dropout_prob, config.attention_probs_dropout_prob, config.enable_res_parameter
        )

    @classmethod
    def regressor_layer(cls, config: BrainVisTimeEncoderConfig) -> BrainVisTransformerLayer:
        """A cross-attention block of the LMM regressor (learnable residual scale always on, as in the original)."""
        return cls(config, config.regressor_dropout_prob, config.regressor_dropout_prob, True)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(hidden_states, key_value_states, output_attentions=output_attentions)
        hidden_states = self.attention_residual(hidden_states, attended)
        return self.feed_forward_residual(hidden_states, self.feed_forward(hidden_states)), weights


class BrainVisTimeTransformer(nn.Module):
    """A stack of self-attention blocks (no final norm: each block ends with its own LayerNorm)."""

    def __init__(self, config: BrainVisTimeEncoderConfig):
        super().__init__()
        self.layers = nn.ModuleList(
            [BrainVisTransformerLayer.encoder_layer(config) for _ in range(config.num_hidden_layers)]
        )

    def forward(
        self, hidden_states: torch.Tensor, output_hidden_states: bool = False, output_attentions: bool = False
    ) -> BaseModelOutput:
        """`last_hidden_state`; `hidden_states` (the input, then every block's output) and
        `attentions` (every block's weights) when asked for."""
        all_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.layers:
            hidden_states, weights = layer(hidden_states, output_attentions=output_attentions)
            if output_hidden_states:
                all_states = all_states + (hidden_states,)
            if output_attentions:
                all_attentions = all_attentions + (weights,)
        return BaseModelOutput(last_hidden_state=hidden_states, hidden_states=all_states, attentions=all_attentions)


def normalize_recordings(eeg_values: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Z-score every channel of every recording over time (in float32; flat channels become 0)."""
    values = eeg_values.float()
    mean = values.mean(dim=-1, keepdim=True)
    std = values.std(dim=-1, keepdim=True, correction=0)
    return ((values - mean) / (std + eps)).to(eeg_values.dtype)


def random_time_shift(
    eeg_values: torch.Tensor, max_shift: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift every recording of B x C x T by its own random whole number of samples in
    [-max_shift, max_shift]; the vacated end repeats the edge sample (no wrap-around). The shifts
    are drawn on the CPU (from `generator`, a CPU generator, or the global RNG) on every device."""
    if max_shift == 0:
        return eeg_values
    batch, _, length = eeg_values.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (batch,), generator=generator).to(eeg_values.device)
    # output sample t reads input sample t - shift, clamped to the recording (edge repeat)
    index = (torch.arange(length, device=eeg_values.device)[None, :] - shifts[:, None]).clamp(0, length - 1)
    return eeg_values.gather(-1, index[:, None, :].expand_as(eeg_values))


def pool_units(hidden_states: torch.Tensor, segments: int) -> torch.Tensor:
    """Mean of B x n x d unit states over `segments` contiguous groups of units, concatenated: B x (segments * d).

    `segments=1` is the plain mean over units (the paper). Groups differ in size by at most one
    unit when `segments` does not divide n (`torch.tensor_split`).
    """
    if segments == 1:
        return hidden_states.mean(dim=1)
    return torch.cat([part.mean(dim=1) for part in hidden_states.tensor_split(segments, dim=1)], dim=-1)


class BrainVisTimeEmbeddings(nn.Module):
    """Conv1d patch projection (kernel = stride = wave_length) and a learned position table."""

    def __init__(self, config: BrainVisTimeEncoderConfig):
        super().__init__()
        self.config = config
        self.patch_projection = nn.Conv1d(
            config.num_channels, config.hidden_size, kernel_size=config.wave_length, stride=config.wave_length
        )
        self.position_embeddings = nn.Embedding(config.num_units, config.hidden_size)

    def project(self, eeg_values: torch.Tensor) -> torch.Tensor:
        """B x C x T -> B x n x d units, without positions (what the LMM tokenizer reads)."""
        config = self.config
        if config.input_normalization == "recording":
            eeg_values = normalize_recordings(eeg_values)
        remainder = eeg_values.shape[-1] % config.wave_length
        if remainder and config.padding == "zeros":
            eeg_values = F.pad(eeg_values, (0, config.wave_length - remainder))
        elif remainder and config.padding == "truncate":
            eeg_values = eeg_values[..., : eeg_values.shape[-1] - remainder]
        eeg_values = eeg_values.to(self.patch_projection.weight.dtype)
        return self.patch_projection(eeg_values).transpose(1, 2)

    def forward(self, eeg_values: torch.Tensor) -> torch.Tensor:
        return self.add_positions(self.project(eeg_values))

    def add_positions(self, units: torch.Tensor) -> torch.Tensor:
        return units + self.position_embeddings.weight.to(units.dtype)


# ----------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------


@dataclass
class BrainVisEEGClassifierOutput(ModelOutput):
    """Output of the BrainVis classifiers.

    Args:
        loss: with `labels`: cross-entropy, binary cross-entropy (multi-label) or MSE (regression),
            after `config.problem_type` (see `classification_loss`).
        logits: B x num_labels class scores (or regression outputs).
        pooler_output: the pooled feature the head read (B x d, B x 128 or B x (d+128)).
        hidden_states: when requested, the embeddings and every block's output of the time encoder
            (the frequency classifier: its input spectrum and LSTM states).
        attentions: when requested, every time-encoder block's B x heads x n x n attention weights.
        freq_hidden_states: the unified classifier's frequency-encoder states, when requested.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    freq_hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class BrainVisMaskedModelingOutput(ModelOutput):
    """Output of Latent Masked Modeling.

    Args:
        loss: `regression_loss_weight * regression_loss + codebook_loss_weight * codebook_loss`.
        regression_loss: MSE between the regressed and the momentum-encoded masked units.
        codebook_loss: label-smoothed cross-entropy of the codebook prediction of the masked units.
        codebook_hit_rate: share of masked units whose sampled token is the arg-max prediction.
        codebook_ndcg_at_10: NDCG@10 of the sampled token in the codebook prediction.
        predicted_representations: B x m x d regressor output for the m masked units.
        target_representations: B x m x d momentum-encoder output (no gradient).
        codebook_logits: B x m x codebook_size predicted token scores.
        target_tokens: B x m sampled target tokens (no gradient).
        masked_indices: B x m unit indices that were masked.
        visible_indices: B x (n - m) unit indices the online encoder saw.
        hidden_states: when requested, the online encoder's input (visible units) and block outputs.
        attentions: when requested, the online encoder's self-attention weights per block.
        cross_attentions: when requested, the regressor's B x heads x m x (n - m) weights per block.
    """

    loss: torch.FloatTensor | None = None
    regression_loss: torch.FloatTensor | None = None
    codebook_loss: torch.FloatTensor | None = None
    codebook_hit_rate: torch.FloatTensor | None = None
    codebook_ndcg_at_10: torch.FloatTensor | None = None
    predicted_representations: torch.FloatTensor | None = None
    target_representations: torch.FloatTensor | None = None
    codebook_logits: torch.FloatTensor | None = None
    target_tokens: torch.LongTensor | None = None
    masked_indices: torch.LongTensor | None = None
    visible_indices: torch.LongTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    cross_attentions: tuple[torch.FloatTensor, ...] | None = None


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------


def init_linear_like_torch(module: nn.Module) -> None:
    """PyTorch's default init of Linear / Conv layers (kaiming-uniform weights, fan-in uniform bias)."""
    init.kaiming_uniform_(module.weight, a=math.sqrt(5))
    if module.bias is not None:
        fan_in = module.weight[0].numel()
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(module.bias, -bound, bound)


def init_running_stats(module: nn.Module) -> None:
    """Fresh BatchNorm statistics (mean 0, variance 1): a checkpoint without them (e.g. LMM weights
    loaded for fine-tuning) would otherwise leave the buffers uninitialised."""
    init.zeros_(module.running_mean)
    init.ones_(module.running_var)
    init.zeros_(module.num_batches_tracked)


PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, config) -> torch.Tensor:
    """The loss of a class head after `config.problem_type`, inferred and recorded as transformers heads do.

    Unset, it is `"regression"` for `num_labels == 1`, `"single_label_classification"` for integer
    labels and `"multi_label_classification"` otherwise. Single-label: cross-entropy with B class
    ids; multi-label: binary cross-entropy with logits against B x num_labels multi-hot targets;
    regression: MSE against B (num_labels 1) or B x num_labels float targets. In float32.
    """
    num_labels = logits.shape[-1]
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int, torch.int16, torch.int8, torch.uint8):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    problem_type = config.problem_type
    batch = logits.shape[0]
    if problem_type == "single_label_classification":
        if labels.numel() != batch:
            raise ValueError(
                f"labels must hold one class id per recording ({batch}) for single_label_classification, "
                f"got shape {tuple(labels.shape)}; pass multi-hot labels as floats or set "
                "config.problem_type='multi_label_classification'."
            )
        return F.cross_entropy(logits.float(), labels.reshape(-1).long())
    if problem_type == "multi_label_classification":
        if tuple(labels.shape) != tuple(logits.shape):
            raise ValueError(
                f"labels must be multi-hot of shape {tuple(logits.shape)} (batch, num_labels) for "
                f"multi_label_classification, got shape {tuple(labels.shape)}."
            )
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
    if problem_type == "regression":
        if labels.numel() != logits.numel():
            raise ValueError(
                f"labels must have {batch} x {num_labels} values (batch, num_labels) for regression, "
                f"got shape {tuple(labels.shape)}."
            )
        return F.mse_loss(logits.float(), labels.float().reshape(logits.shape))
    raise ValueError(f"config.problem_type must be one of {PROBLEM_TYPES} or None, got {problem_type!r}.")


def _cpu_kernels_module():
    # Loaded on use, and not by an import statement: cpu_kernels.py uses private oneDNN operators,
    # so it is not shipped as remote code (transformers copies the modules a modeling file imports).
    try:
        return importlib.import_module(".cpu_kernels", __package__)
    except ImportError as error:
        raise ImportError(
            "The oneDNN CPU kernels come with the installed brainvis-hf package, not with the remote code "
            "of a saved folder; the model runs without them."
        ) from error


class BrainVisModelMixin:
    """What every BrainVis model shares: the output flags from the config and the opt-in CPU kernels."""

    def _output_flags(
        self, output_attentions: bool | None, output_hidden_states: bool | None, return_dict: bool | None
    ) -> tuple[bool, bool, bool]:
        """The forward arguments, or the config's `output_attentions` / `output_hidden_states` / `return_dict`."""
        config = self.config
        return (
            bool(config.output_attentions if output_attentions is None else output_attentions),
            bool(config.output_hidden_states if output_hidden_states is None else output_hidden_states),
            bool(config.return_dict if return_dict is None else return_dict),
        )

    def enable_cpu_kernels(self):
        """Run this model on the oneDNN CPU kernels of the installed package (`models/cpu_kernels.py`); returns it.

        Opt-in: faster CPU inference and fp32 training, equal to float32 round-off; state dict unchanged.
        """
        return _cpu_kernels_module().enable_cpu_kernels(self)

    def disable_cpu_kernels(self):
        """Back to the plain PyTorch kernels; returns the model."""
        return _cpu_kernels_module().disable_cpu_kernels(self)


class BrainVisTimeEncoderPreTrainedModel(BrainVisModelMixin, PreTrainedModel):
    config_class = BrainVisTimeEncoderConfig
    config: BrainVisTimeEncoderConfig
    base_model_prefix = "time_encoder"
    main_input_name = "eeg_values"
    input_modalities = ("time",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["BrainVisTransformerLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Initialise as the original: xavier-normal Linear weights with a constant bias, PyTorch
        defaults for the convolution and position table, residual scales at `residual_scale_init`."""
        if isinstance(module, nn.Linear):
            init.xavier_normal_(module.weight)
            if module.bias is not None:
                init.constant_(module.bias, self.config.initializer_bias_value)
        elif isinstance(module, nn.Conv1d):
            init_linear_like_torch(module)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm1d):
            init_running_stats(module)
        elif isinstance(module, BrainVisResidualLayerNorm) and module.scale is not None:
            init.constant_(module.scale, module.scale_init)
        elif isinstance(module, BrainVisTimeEncoderForMaskedModeling):
            init.normal_(module.mask_token, mean=0.0, std=1.0)


class BrainVisTimeEncoderModel(BrainVisTimeEncoderPreTrainedModel):
    """The time encoder: `last_hidden_state` (B x n x d) and its mean over units, `pooler_output`
    (B x d; B x `pooled_size` with `config.pooling_segments` > 1)."""

    def __init__(self, config: BrainVisTimeEncoderConfig):
        super().__init__(config)
        self.embeddings = BrainVisTimeEmbeddings(config)
        self.encoder = BrainVisTimeTransformer(config)
        # opt-in: the pooled feature standardised with running statistics of the training data
        self.pooler_norm = (
            nn.BatchNorm1d(config.pooled_size, affine=False) if config.pooler_normalization == "batch" else None
        )
        self.post_init()

    def pool(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The pooled feature of B x n x d unit states (`pooler_output`)."""
        pooled = pool_units(hidden_states, self.config.pooling_segments)
        if self.pooler_norm is not None:
            pooled = self.pooler_norm(pooled.to(self.pooler_norm.running_mean.dtype)).to(pooled.dtype)
        return pooled

    def forward(
        self,
        eeg_values: torch.Tensor,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        """Encode `eeg_values` (B x C x T); the flags default to the config's."""
        config = self.config
        output_attentions, output_hidden_states, return_dict = self._output_flags(
            output_attentions, output_hidden_states, return_dict
        )
        check_eeg_values(eeg_values, config.num_channels, config.num_samples, dtype=self.dtype)
        if self.training and config.time_shift_augmentation:
            eeg_values = random_time_shift(eeg_values, config.time_shift_augmentation)
        hidden_states = self.embeddings(eeg_values)
        encoded = self.encoder(hidden_states, output_hidden_states, output_attentions)
        hidden_states = encoded.last_hidden_state
        if not self.training:
            check_model_outputs(hidden_states, "time-encoder states")
        output = BaseModelOutputWithPooling(
            last_hidden_state=hidden_states,
            pooler_output=self.pool(hidden_states),
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


class BrainVisTimeEncoderForEEGClassification(BrainVisTimeEncoderPreTrainedModel):
    """Time encoder + Linear(d -> num_labels) on the pooled feature (supervised fine-tuning stage)."""

    def __init__(self, config: BrainVisTimeEncoderConfig):
        super().__init__(config)
        self.time_encoder = BrainVisTimeEncoderModel(config)
        self.classifier = nn.Linear(config.pooled_size, config.num_labels)
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
        encoded = self.time_encoder(
            eeg_values,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(encoded.pooler_output)
        if not self.training:
            check_model_outputs(logits, "logits")
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        output = BrainVisEEGClassifierOutput(
            loss=loss,
            logits=logits,
            pooler_output=encoded.pooler_output,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


class BrainVisTimeEncoderForMaskedModeling(BrainVisTimeEncoderPreTrainedModel):
    """Latent Masked Modeling (LMM) pretraining of the time encoder.

    The units (projected EEG, before positions) are tokenised by sampling from the softmax of a
    Linear codebook tokenizer; the units (with positions) are split into visible and masked ones
    by a random permutation; the online encoder reads the visible units, a momentum copy of it
    (no gradient) encodes the masked ones as regression targets, and a cross-attention regressor
    predicts them from mask queries (mask token + positions). The tokenizer applied to the
    prediction gives codebook logits for the sampled tokens.

    Call `init_momentum_encoder()` before training (done once at construction too) and
    `momentum_update()` after every optimizer step.
    """

    def __init__(self, config: BrainVisTimeEncoderConfig):
        super().__init__(config)
        self.time_encoder = BrainVisTimeEncoderModel(config)
        self.momentum_encoder = BrainVisTimeTransformer(config)
        self.momentum_encoder.requires_grad_(False)
        self.mask_token = nn.Parameter(torch.zeros(config.hidden_size))
        self.tokenizer = nn.Linear(config.hidden_size, config.codebook_size)
        self.regressor = nn.ModuleList(
            [BrainVisTransformerLayer.regressor_layer(config) for _ in range(config.num_regressor_layers)]
        )
        self.post_init()
        self.init_momentum_encoder()
        if config.lmm_freeze_embeddings:  # opt-in, see the config: LMM trains the transformer only
            self.time_encoder.embeddings.requires_grad_(False)

    # -- momentum encoder -------------------------------------------------------------------

    def _paired_parameters(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        online = list(self.time_encoder.encoder.parameters())
        momentum = list(self.momentum_encoder.parameters())
        return online, momentum

    @torch.no_grad()
    def init_momentum_encoder(self) -> None:
        """Copy the online encoder blocks into the momentum encoder."""
        for online, momentum in zip(*self._paired_parameters()):
            momentum.copy_(online)

    @torch.no_grad()
    def momentum_update(self, momentum: float | None = None) -> None:
        """`theta_m <- m * theta_m + (1 - m) * theta_online` (m = `config.momentum` unless given)."""
        m = self.config.momentum if momentum is None else float(momentum)
        online, target = self._paired_parameters()
        torch._foreach_lerp_(target, online, 1.0 - m)  # theta_m + (1 - m) (theta_online - theta_m)

    def _set_gradient_checkpointing(self, enable: bool = True, *args, **kwargs):
        super()._set_gradient_checkpointing(enable, *args, **kwargs)
        for layer in self.momentum_encoder.layers:  # runs without gradient: nothing to checkpoint
            layer.gradient_checkpointing = False

    # -- masking ----------------------------------------------------------------------------

    def random_split(
        self,
        batch_size: int,
        device: torch.device,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Visible and masked unit indices (B x (n - m), B x m) from random permutations.

        With `noise` (B x n or n), the units are ordered by ascending noise instead (the last m are
        masked), which makes the split reproducible; so does a `generator` (on `device`).
        """
        num_units, num_masked = self.config.num_units, self.config.num_masked_units
        if noise is not None:
            if noise.shape[-1] != num_units or noise.ndim not in (1, 2) or (noise.ndim == 2 and noise.shape[0] != batch_size):
                raise ValueError(
                    f"noise must have shape ({batch_size}, {num_units}) or ({num_units},), got {tuple(noise.shape)}."
                )
            order = noise.to(device).argsort(dim=-1)
            order = order.expand(batch_size, -1) if order.ndim == 1 else order
        elif self.config.mask_mode == "per_sample":
            order = torch.rand(batch_size, num_units, device=device, generator=generator).argsort(dim=1)
        else:
            order = torch.randperm(num_units, device=device, generator=generator).unsqueeze(0).expand(batch_size, -1)
        return order[:, : num_units - num_masked], order[:, num_units - num_masked :]

    @staticmethod
    def _gather_units(states: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return states.gather(1, indices.unsqueeze(-1).expand(-1, -1, states.shape[-1]))

    @torch.no_grad()
    def sample_tokens(self, units: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Target tokens: one draw per unit from softmax(tokenizer(units)) (no gradient)."""
        logits = self.tokenizer(units).float()
        probs = logits.softmax(dim=-1).reshape(-1, logits.shape[-1])
        return torch.multinomial(probs, 1, generator=generator).view(logits.shape[:-1])

    # -- forward ----------------------------------------------------------------------------

    def forward(
        self,
        eeg_values: torch.Tensor,
        noise: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        generator: torch.Generator | None = None,
        target_tokens: torch.LongTensor | None = None,
    ) -> BrainVisMaskedModelingOutput | tuple:
        """One LMM pass over `eeg_values` (B x C x T).

        `noise` (optional, B x n or n) fixes the visible/masked split (see `random_split`).
        `generator` (a `torch.Generator` on the input's device) draws the split and the codebook
        targets, so in eval mode two calls with equally seeded generators give the same loss;
        `target_tokens` (B x n codebook ids) replaces the sampled targets. Without them both
        come from the global RNG, as in the original.
        `labels` is ignored (LMM is self-supervised); it is accepted so that a labelled batch of
        `BrainVisDataCollator` can be passed as it is.
        """
        config = self.config
        output_attentions, output_hidden_states, return_dict = self._output_flags(
            output_attentions, output_hidden_states, return_dict
        )
        check_eeg_values(eeg_values, config.num_channels, config.num_samples, dtype=self.dtype)
        embeddings = self.time_encoder.embeddings
        # frozen embeddings (opt-in) get no gradient even where loading re-enabled requires_grad
        frozen = config.lmm_freeze_embeddings
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            units = embeddings.project(eeg_values)
        positions = embeddings.position_embeddings.weight.to(units.dtype)
        positions = positions.detach() if frozen else positions
        if target_tokens is None:
            target_tokens = self.sample_tokens(units, generator)
        elif tuple(target_tokens.shape) != tuple(units.shape[:2]):
            raise ValueError(
                f"target_tokens must have shape {tuple(units.shape[:2])} (batch, units), got {tuple(target_tokens.shape)}."
            )
        else:
            target_tokens = target_tokens.to(units.device, torch.long)
        units = units + positions  # embeddings.add_positions
        queries = self.mask_token.to(units.dtype) + positions

        batch = units.shape[0]
        visible_idx, masked_idx = self.random_split(batch, units.device, noise, generator)
        visible = self._gather_units(units, visible_idx)
        masked = self._gather_units(units, masked_idx)
        queries = self._gather_units(queries.unsqueeze(0).expand(batch, -1, -1), masked_idx)
        target_tokens = target_tokens.gather(1, masked_idx)

        encoded = self.time_encoder.encoder(visible, output_hidden_states, output_attentions)
        rep_visible = encoded.last_hidden_state
        with torch.no_grad():
            rep_masked = self.momentum_encoder(masked).last_hidden_state
        prediction = queries
        cross_attentions = () if output_attentions else None
        for layer in self.regressor:
            prediction, weights = layer(prediction, rep_visible, output_attentions=output_attentions)
            if output_attentions:
                cross_attentions = cross_attentions + (weights,)
        codebook_logits = self.tokenizer(prediction)

        regression_loss = F.mse_loss(prediction.float(), rep_masked.float())
        flat_logits = codebook_logits.float().reshape(-1, config.codebook_size)
        flat_tokens = target_tokens.reshape(-1)
        codebook_loss = F.cross_entropy(flat_logits, flat_tokens, label_smoothing=config.label_smoothing)
        loss = config.regression_loss_weight * regression_loss + config.codebook_loss_weight * codebook_loss
        with torch.no_grad():
            target_logit = flat_logits.gather(1, flat_tokens.unsqueeze(1))
            rank = (flat_logits > target_logit).sum(dim=1)
            hit_rate = (rank == 0).float().mean()
            ndcg = torch.where(rank < 10, 1.0 / torch.log2(rank.float() + 2.0), torch.zeros_like(target_logit[:, 0]))
            ndcg = ndcg.mean()
        output = BrainVisMaskedModelingOutput(
            loss=loss,
            regression_loss=regression_loss,
            codebook_loss=codebook_loss,
            codebook_hit_rate=hit_rate,
            codebook_ndcg_at_10=ndcg,
            predicted_representations=prediction,
            target_representations=rep_masked,
            codebook_logits=codebook_logits,
            target_tokens=target_tokens,
            masked_indices=masked_idx,
            visible_indices=visible_idx,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
            cross_attentions=cross_attentions,
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "BrainVisTimeEncoderPreTrainedModel",
    "BrainVisTimeEncoderModel",
    "BrainVisTimeEncoderForEEGClassification",
    "BrainVisTimeEncoderForMaskedModeling",
    "BrainVisEEGClassifierOutput",
    "BrainVisMaskedModelingOutput",
    "check_eeg_values",
    "check_model_outputs",
    "classification_loss",
    "NonFiniteEEGError",
    "normalize_recordings",
    "pool_units",
]

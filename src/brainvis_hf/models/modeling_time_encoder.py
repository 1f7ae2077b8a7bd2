"""BrainVis time encoder: patch projection + learned positions + post-norm transformer blocks.

`BrainVisTimeEncoderModel` is the shared base; `BrainVisTimeEncoderForMaskedModeling` adds the
Latent Masked Modeling objective (momentum encoder, codebook tokenizer, cross-attention
regressor) and `BrainVisTimeEncoderForEEGClassification` a linear class head on the pooled
feature. Inputs are channels-first EEG, `eeg_values` of shape B x C x T.
"""

from __future__ import annotations

import math
import os
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling
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
# CPU inference kernels
# ----------------------------------------------------------------------------------------------

_ONEDNN_LINEAR = {"enabled": os.environ.get("BRAINVIS_DISABLE_ONEDNN_LINEAR", "0") in ("", "0")}


def set_onednn_linear(enabled: bool) -> None:
    """Turn the oneDNN packed-weight Linear kernels for CPU inference on or off (on by default).

    When on, Linear layers of the encoders that run in eval mode without autograd on the CPU
    (fp32 or bf16 weights) use oneDNN with a cached, pre-packed copy of their weight (repacked
    when the weight changes): about 1.4x faster GEMMs here, the feed-forward GELU fused, results
    equal to float32 round-off. It costs one extra copy of those weights in memory. Can also be
    switched off with the environment variable `BRAINVIS_DISABLE_ONEDNN_LINEAR=1`.
    """
    _ONEDNN_LINEAR["enabled"] = bool(enabled)


def _onednn_usable(module: nn.Linear, inputs: torch.Tensor) -> torch.dtype | None:
    """The dtype to run `module` in with oneDNN, or None when the plain path must be taken.

    Without autograd in any mode (eval, or the momentum encoder in train mode), and with autograd
    in fp32 without autocast (see `_OneDNNLinearFunction`).
    """
    if not _ONEDNN_LINEAR["enabled"]:
        return None
    if type(module) is not nn.Linear:  # wrappers (PEFT LoRA, quantised layers) need their own forward
        return None
    if inputs.device.type != "cpu" or torch.compiler.is_compiling() or not torch.backends.mkldnn.is_available():
        return None
    dtype = module.weight.dtype
    if torch.is_autocast_enabled("cpu"):
        if torch.is_grad_enabled():
            return None
        dtype = torch.get_autocast_dtype("cpu")
    elif inputs.dtype != dtype or (torch.is_grad_enabled() and dtype != torch.float32):
        return None
    if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return None
    return dtype if dtype in (torch.float32, torch.bfloat16) else None


# packed weights live outside the modules (so that deepcopy / pickling of a model never meets
# an opaque oneDNN tensor) and go away with their module
_PACKED_WEIGHTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def packed_weight_cache(module: nn.Linear) -> tuple | None:
    """`((data_ptr, version, dtype, shape), packed)` of `module`'s cached oneDNN weight, or None."""
    return _PACKED_WEIGHTS.get(module)


def _packed_weight(module: nn.Linear) -> torch.Tensor:
    weight = module.weight
    key = (weight.data_ptr(), weight._version, weight.dtype, tuple(weight.shape))
    cached = _PACKED_WEIGHTS.get(module)
    if cached is None or cached[0] != key:
        cached = (key, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), 1024))
        _PACKED_WEIGHTS[module] = cached
    return cached[1]


class _OneDNNLinearFunction(torch.autograd.Function):
    """fp32 Linear for training: oneDNN forward GEMM, the input gradient as a oneDNN GEMM with the
    transposed weight (a strided view, no copy), the weight gradient by the ordinary `mm` (the same
    math as `F.linear`; about 10 % faster GEMMs on this CPU)."""

    @staticmethod
    def forward(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(inputs, weight, bias, "none", [], "none")

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias = inputs
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_output = grad_output.contiguous()
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = torch.ops.mkldnn._linear_pointwise(grad_output, weight.t(), None, "none", [], "none")
        flat_grad = grad_output.reshape(-1, grad_output.shape[-1])
        if ctx.needs_input_grad[1]:
            grad_weight = flat_grad.t().mm(x.reshape(-1, x.shape[-1]))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = flat_grad.sum(0)
        return grad_input, grad_weight, grad_bias


def linear(module: nn.Linear, inputs: torch.Tensor, activation: str | None = None) -> torch.Tensor:
    """`module(inputs)` (then exact GELU when `activation == "gelu"`), with the oneDNN CPU paths.

    Eval mode without autograd: cached pre-packed weights and a fused GELU. Train mode without
    autograd (the LMM momentum encoder, whose weights change every step): the plain weight.
    With autograd (fp32, no autocast): `_OneDNNLinearFunction`.
    """
    dtype = _onednn_usable(module, inputs)
    if dtype is not None:
        try:
            if torch.is_grad_enabled():
                outputs = _OneDNNLinearFunction.apply(inputs, module.weight, module.bias)
                return F.gelu(outputs) if activation == "gelu" else outputs
            if module.training or module.weight.dtype != dtype:
                weight = module.weight.to(dtype)
                bias = None if module.bias is None else module.bias.to(dtype)
            else:
                weight, bias = _packed_weight(module), module.bias
            return torch.ops.mkldnn._linear_pointwise(inputs.to(dtype), weight, bias, activation or "none", [], "none")
        except RuntimeError:  # an unsupported build / shape: use the plain kernels from now on
            set_onednn_linear(False)
    outputs = module(inputs)
    return F.gelu(outputs) if activation == "gelu" else outputs


def dropout(inputs: torch.Tensor, module: nn.Dropout) -> torch.Tensor:
    """`module(inputs)` (inverted dropout: keep each element with probability 1 - p, scale by 1 / (1 - p)).

    On the CPU in training the keep-mask comes from one float32 uniform draw per element
    (`u >= p`), about twice as fast as `F.dropout`'s `bernoulli_` here; same distribution.
    """
    p = module.p
    if not module.training or p == 0.0 or p == 1.0 or inputs.device.type != "cpu" or torch.compiler.is_compiling():
        return module(inputs)
    keep = torch.rand(inputs.shape, device=inputs.device) >= p
    return inputs * keep * (1.0 / (1.0 - p))


# ----------------------------------------------------------------------------------------------
# Building blocks (shared with the regressor)
# ----------------------------------------------------------------------------------------------


class BrainVisAttention(nn.Module):
    """Multi-head attention with separate query, key, value and output projections (SDPA kernel)."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.dropout = dropout
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.output = nn.Linear(hidden_size, hidden_size)

    def _heads(self, states: torch.Tensor) -> torch.Tensor:
        batch, length, _ = states.shape
        return states.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, hidden_states: torch.Tensor, key_value_states: torch.Tensor | None = None) -> torch.Tensor:
        """Self-attention over `hidden_states`, or cross-attention to `key_value_states` when given."""
        source = hidden_states if key_value_states is None else key_value_states
        query = self._heads(linear(self.query, hidden_states))
        key = self._heads(linear(self.key, source))
        value = self._heads(linear(self.value, source))
        context = F.scaled_dot_product_attention(
            query, key, value, dropout_p=self.dropout if self.training else 0.0
        )
        batch, _, length, _ = context.shape
        context = context.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim)
        return linear(self.output, context)


class BrainVisFeedForward(nn.Module):
    """Linear -> GELU -> Linear -> Dropout."""

    def __init__(self, hidden_size: int, intermediate_size: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.fc2 = nn.Linear(intermediate_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return dropout(linear(self.fc2, linear(self.fc1, hidden_states, activation="gelu")), self.dropout)


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
        return self.layer_norm(residual + dropout(update, self.dropout))


class BrainVisTransformerLayer(GradientCheckpointingLayer):
    """One post-norm block: (self- or cross-) attention sub-layer, then a GELU feed-forward sub-layer."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        dropout: float,
        attention_dropout: float,
        layer_norm_eps: float,
        learnable_scale: bool,
        scale_init: float,
    ):
        super().__init__()
        self.attention = BrainVisAttention(hidden_size, num_heads, attention_dropout)
        self.attention_residual = BrainVisResidualLayerNorm(
            hidden_size, layer_norm_eps, dropout, learnable_scale, scale_init
        )
        self.feed_forward = BrainVisFeedForward(hidden_size, intermediate_size, dropout)
        self.feed_forward_residual = BrainVisResidualLayerNorm(
            hidden_size, layer_norm_eps, dropout, learnable_scale, scale_init
        )

    @classmethod
    def encoder_layer(cls, config: BrainVisTimeEncoderConfig) -> BrainVisTransformerLayer:
        """A self-attention block of the encoder."""
        return cls(
            config.hidden_size, config.num_attention_heads, config.intermediate_size, config.hidden_dropout_prob,
            config.attention_probs_dropout_prob, config.layer_norm_eps, config.enable_res_parameter,
            config.residual_scale_init,
        )  # fmt: skip

    @classmethod
    def regressor_layer(cls, config: BrainVisTimeEncoderConfig) -> BrainVisTransformerLayer:
        """A cross-attention block of the LMM regressor (learnable residual scale always on, as in the original)."""
        return cls(
            config.hidden_size, config.num_attention_heads, config.intermediate_size, config.regressor_dropout_prob,
            config.regressor_dropout_prob, config.layer_norm_eps, True, config.residual_scale_init,
        )  # fmt: skip

    def forward(self, hidden_states: torch.Tensor, key_value_states: torch.Tensor | None = None) -> torch.Tensor:
        attended = self.attention(hidden_states, key_value_states)
        hidden_states = self.attention_residual(hidden_states, attended)
        return self.feed_forward_residual(hidden_states, self.feed_forward(hidden_states))


class BrainVisTimeTransformer(nn.Module):
    """A stack of self-attention blocks (no final norm: each block ends with its own LayerNorm)."""

    def __init__(self, config: BrainVisTimeEncoderConfig):
        super().__init__()
        self.layers = nn.ModuleList(
            [BrainVisTransformerLayer.encoder_layer(config) for _ in range(config.num_hidden_layers)]
        )

    def forward(
        self, hidden_states: torch.Tensor, output_hidden_states: bool = False
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        all_states = (hidden_states,) if output_hidden_states else None
        for layer in self.layers:
            hidden_states = layer(hidden_states)
            if output_hidden_states:
                all_states = all_states + (hidden_states,)
        return hidden_states, all_states


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
        loss: cross-entropy with `labels`, when they are given.
        logits: B x num_labels class scores.
        pooler_output: the pooled feature the head read (B x d, B x 128 or B x (d+128)).
        hidden_states: per-layer token states of the time encoder when requested.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


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


class BrainVisTimeEncoderPreTrainedModel(PreTrainedModel):
    config_class = BrainVisTimeEncoderConfig
    config: BrainVisTimeEncoderConfig
    base_model_prefix = "time_encoder"
    main_input_name = "eeg_values"
    input_modalities = ("time",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["BrainVisTransformerLayer"]
    _supports_sdpa = True

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
        elif isinstance(module, BrainVisResidualLayerNorm) and module.scale is not None:
            init.constant_(module.scale, module.scale_init)
        elif isinstance(module, BrainVisTimeEncoderForMaskedModeling):
            init.normal_(module.mask_token, mean=0.0, std=1.0)


class BrainVisTimeEncoderModel(BrainVisTimeEncoderPreTrainedModel):
    """The time encoder: `last_hidden_state` (B x n x d) and its mean over units, `pooler_output` (B x d)."""

    def __init__(self, config: BrainVisTimeEncoderConfig):
        super().__init__(config)
        self.embeddings = BrainVisTimeEmbeddings(config)
        self.encoder = BrainVisTimeTransformer(config)
        self.post_init()

    def forward(
        self,
        eeg_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        """Encode `eeg_values` (B x C x T). Extra keyword arguments (e.g. `labels`) are ignored."""
        config = self.config
        check_eeg_values(eeg_values, config.num_channels, config.num_samples, dtype=self.dtype)
        hidden_states = self.embeddings(eeg_values)
        hidden_states, all_states = self.encoder(hidden_states, bool(output_hidden_states))
        if not self.training:
            check_model_outputs(hidden_states, "time-encoder states")
        output = BaseModelOutputWithPooling(
            last_hidden_state=hidden_states, pooler_output=hidden_states.mean(dim=1), hidden_states=all_states
        )
        return output if return_dict is not False else output.to_tuple()


class BrainVisTimeEncoderForEEGClassification(BrainVisTimeEncoderPreTrainedModel):
    """Time encoder + Linear(d -> num_labels) on the pooled feature (supervised fine-tuning stage)."""

    def __init__(self, config: BrainVisTimeEncoderConfig):
        super().__init__(config)
        self.time_encoder = BrainVisTimeEncoderModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        eeg_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BrainVisEEGClassifierOutput | tuple:
        encoded = self.time_encoder(eeg_values, output_hidden_states=output_hidden_states)
        logits = self.classifier(encoded.pooler_output)
        if not self.training:
            check_model_outputs(logits, "logits")
        loss = F.cross_entropy(logits.float(), labels.view(-1).long()) if labels is not None else None
        output = BrainVisEEGClassifierOutput(
            loss=loss, logits=logits, pooler_output=encoded.pooler_output, hidden_states=encoded.hidden_states
        )
        return output if return_dict is not False else output.to_tuple()


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
        self, batch_size: int, device: torch.device, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Visible and masked unit indices (B x (n - m), B x m) from random permutations.

        With `noise` (B x n or n), the units are ordered by ascending noise instead (the last m are
        masked), which makes the split reproducible.
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
            order = torch.rand(batch_size, num_units, device=device).argsort(dim=1)
        else:
            order = torch.randperm(num_units, device=device).unsqueeze(0).expand(batch_size, -1)
        return order[:, : num_units - num_masked], order[:, num_units - num_masked :]

    @staticmethod
    def _gather_units(states: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return states.gather(1, indices.unsqueeze(-1).expand(-1, -1, states.shape[-1]))

    @torch.no_grad()
    def sample_tokens(self, units: torch.Tensor) -> torch.Tensor:
        """Target tokens: one draw per unit from softmax(tokenizer(units)) (no gradient)."""
        logits = self.tokenizer(units).float()
        probs = logits.softmax(dim=-1).reshape(-1, logits.shape[-1])
        return torch.multinomial(probs, 1).view(logits.shape[:-1])

    # -- forward ----------------------------------------------------------------------------

    def forward(
        self,
        eeg_values: torch.Tensor,
        noise: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BrainVisMaskedModelingOutput | tuple:
        """One LMM pass over `eeg_values` (B x C x T); `labels` and other extra arguments are ignored.

        `noise` (optional, B x n or n) fixes the visible/masked split (see `random_split`).
        """
        config = self.config
        check_eeg_values(eeg_values, config.num_channels, config.num_samples, dtype=self.dtype)
        embeddings = self.time_encoder.embeddings
        units = embeddings.project(eeg_values)
        target_tokens = self.sample_tokens(units)
        units = embeddings.add_positions(units)
        queries = self.mask_token.to(units.dtype) + embeddings.position_embeddings.weight.to(units.dtype)

        batch = units.shape[0]
        visible_idx, masked_idx = self.random_split(batch, units.device, noise)
        visible = self._gather_units(units, visible_idx)
        masked = self._gather_units(units, masked_idx)
        queries = self._gather_units(queries.unsqueeze(0).expand(batch, -1, -1), masked_idx)
        target_tokens = target_tokens.gather(1, masked_idx)

        rep_visible, _ = self.time_encoder.encoder(visible)
        with torch.no_grad():
            rep_masked, _ = self.momentum_encoder(masked)
        prediction = queries
        for layer in self.regressor:
            prediction = layer(prediction, rep_visible)
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
        )
        return output if return_dict is not False else output.to_tuple()


__all__ = [
    "BrainVisTimeEncoderPreTrainedModel",
    "BrainVisTimeEncoderModel",
    "BrainVisTimeEncoderForEEGClassification",
    "BrainVisTimeEncoderForMaskedModeling",
    "BrainVisEEGClassifierOutput",
    "BrainVisMaskedModelingOutput",
    "check_eeg_values",
    "check_model_outputs",
    "NonFiniteEEGError",
    "set_onednn_linear",
]

"""Opt-in oneDNN CPU kernels for the BrainVis models.

The modeling files are plain PyTorch (`nn.Linear`, `nn.Dropout`, attention through transformers'
attention interface). This module speeds them up on the CPU, for those who ask:

    model.enable_cpu_kernels()          # or: with cpu_kernels(model): ...
    model.disable_cpu_kernels()

It replaces the `forward` of the model's own modules *on the instances* (the classes, the weights
and the state dict are untouched), so:

* `Linear` layers (only plain `nn.Linear`: PEFT LoRA wrappers and quantised layers keep their own
  forward, which calls the plain base layer) use oneDNN: in eval mode without autograd with a
  cached, pre-packed copy of the weight (about 1.4x faster GEMMs here, repacked when the weight
  changes, one extra copy of those weights in memory), in fp32 training through
  `_OneDNNLinearFunction`; the feed-forward GELU is fused into the first GEMM;
* `Dropout` draws its keep-mask with one float32 uniform per element (about twice as fast as
  `bernoulli_` here; the same distribution, a different random stream than `nn.Dropout`);
* the huge output layer of the prompt projector streams its weight as the left operand of `addmm`
  (much faster for small fp32 batches).

Results equal the plain path to float32 round-off. Everything falls back to the plain kernels off
the CPU, under `torch.compile`, with autocast + autograd, or in dtypes oneDNN does not cover.

This module uses private `torch.ops.mkldnn` operators, so it is *never* shipped as remote code:
the modeling files do not import it (a saved folder's `auto_map` code runs without it), and the
model methods load it by absolute name from the installed `brainvis_hf` package.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

# set when a oneDNN call fails at run time (an unsupported build or shape): plain kernels from then on
_BROKEN = {"onednn": False}


def _onednn_usable(module: nn.Linear, inputs: torch.Tensor) -> torch.dtype | None:
    """The dtype to run `module` in with oneDNN, or None when the plain path must be taken.

    Without autograd in any mode (eval, or the momentum encoder in train mode), and with autograd
    in fp32 without autocast (see `_OneDNNLinearFunction`).
    """
    if _BROKEN["onednn"]:
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
    """`F.linear` with `module`'s weights (then exact GELU when `activation == "gelu"`), on oneDNN when usable.

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
            _BROKEN["onednn"] = True
    outputs = F.linear(inputs, module.weight, module.bias)
    return F.gelu(outputs) if activation == "gelu" else outputs


def dropout(module: nn.Dropout, inputs: torch.Tensor) -> torch.Tensor:
    """Inverted dropout (keep each element with probability 1 - p, scale by 1 / (1 - p)).

    On the CPU in training the keep-mask comes from one float32 uniform draw per element
    (`u >= p`), about twice as fast as `F.dropout`'s `bernoulli_` here; same distribution.
    """
    p = module.p
    if not module.training or p == 0.0 or p == 1.0 or inputs.device.type != "cpu" or torch.compiler.is_compiling():
        return F.dropout(inputs, p, module.training, module.inplace)
    keep = torch.rand(inputs.shape, device=inputs.device) >= p
    return inputs * keep * (1.0 / (1.0 - p))


def feed_forward(module: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    """`BrainVisFeedForward` with the GELU fused into the first GEMM (when `fc1` is a plain Linear)."""
    if type(module.fc1) is nn.Linear:
        hidden_states = linear(module.fc1, hidden_states, activation="gelu")
    else:  # a wrapper (PEFT LoRA): its own forward, then GELU
        hidden_states = F.gelu(module.fc1(hidden_states))
    return module.dropout(module.fc2(hidden_states))


def wide_output(module: nn.Linear, hidden: torch.Tensor) -> torch.Tensor:
    """The prompt projector's output layer (4d x 59136 at paper size, read once per call).

    On the CPU in fp32, streaming the weight as the left operand (`W @ h^T`) is much faster than
    `h @ W^T` for small batches.
    """
    if (
        hidden.device.type == "cpu"
        and hidden.ndim == 2
        and hidden.dtype == module.weight.dtype == torch.float32
        and module.bias is not None
        and not torch.is_autocast_enabled("cpu")
        and hidden.shape[0] <= 64
        and not torch.compiler.is_compiling()
    ):
        return torch.addmm(module.bias.unsqueeze(1), module.weight, hidden.t()).t()
    return linear(module, hidden)


_PATCHES = (linear, dropout, feed_forward, wide_output)


def _patch(module: nn.Module, function) -> None:
    # a partial (not a bound method) so that deepcopy rebinds it to the copy and pickle can store it
    module.forward = functools.partial(function, module)


def _patched(module: nn.Module) -> bool:
    forward = module.__dict__.get("forward")
    return isinstance(forward, functools.partial) and forward.func in _PATCHES


def enable_cpu_kernels(model: nn.Module) -> nn.Module:
    """Switch `model`'s modules to the oneDNN CPU kernels (see the module docstring); returns `model`.

    Only plain `nn.Linear` / `nn.Dropout` and the BrainVis feed-forward / prompt-projector modules
    are switched; modules added later (e.g. by PEFT after this call) are not, call it again.
    """
    for module in model.modules():
        if _patched(module):
            continue
        kind = type(module)
        if kind is nn.Linear:
            _patch(module, linear)
        elif kind is nn.Dropout:
            _patch(module, dropout)
        elif kind.__name__ == "BrainVisFeedForward":
            _patch(module, feed_forward)
        elif kind.__name__ == "BrainVisPromptProjector" and type(module.output) is nn.Linear:
            _patch(module.output, wide_output)
    return model


def disable_cpu_kernels(model: nn.Module) -> nn.Module:
    """Back to the plain PyTorch kernels (and drop the packed weight copies); returns `model`."""
    for module in model.modules():
        if _patched(module):
            del module.forward
        _PACKED_WEIGHTS.pop(module, None)
    return model


def cpu_kernels_enabled(model: nn.Module) -> bool:
    """Whether any module of `model` runs on the oneDNN CPU kernels."""
    return any(_patched(module) for module in model.modules())


@contextlib.contextmanager
def cpu_kernels(model: nn.Module) -> Iterator[nn.Module]:
    """`with cpu_kernels(model): ...` runs `model` on the CPU kernels, and restores the previous state after."""
    was_enabled = cpu_kernels_enabled(model)
    enable_cpu_kernels(model)
    try:
        yield model
    finally:
        if not was_enabled:
            disable_cpu_kernels(model)


__all__ = [
    "cpu_kernels",
    "cpu_kernels_enabled",
    "disable_cpu_kernels",
    "enable_cpu_kernels",
    "packed_weight_cache",
]

"""Convert the original BrainVis checkpoints into `from_pretrained` folders.

The original code saves `torch.save(model.state_dict())` files for the time encoder, the
time-frequency model and the alignment model, and the whole pickled module for the stand-alone
frequency encoder. State dicts are read with `torch.load(..., weights_only=True)`; a pickled
module is read with `RestrictedUnpickler`, which admits only tensor rebuild functions, plain
containers and the known layer classes (mapped to inert placeholders: no constructor or
`__setstate__` of any library class runs, and nothing is imported). Every size is inferred from
tensor shapes; the number of attention heads cannot be and is an argument (16 in the paper).
"""

from __future__ import annotations

import collections
import logging
import os
import pickle
import re
import types
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from .configuration_brainvis import BrainVisConfig, BrainVisFreqEncoderConfig, BrainVisTimeEncoderConfig
from .modeling_brainvis import BrainVisForCLIPAlignment, BrainVisForEEGClassification
from .modeling_freq_encoder import BrainVisFreqEncoderForEEGClassification
from .modeling_time_encoder import BrainVisTimeEncoderForEEGClassification, BrainVisTimeEncoderForMaskedModeling

logger = logging.getLogger(__name__)

TIME_TASKS = ("masked_modeling", "classification")

# ---------------------------------------------------------------------------------------------
# Safe reading
# ---------------------------------------------------------------------------------------------


class _PlaceholderModule:
    """Inert stand-in for a pickled `nn.Module`: keeps the pickled attributes, runs no code."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"Unexpected pickled module state of type {type(state).__name__}.")
        self.__dict__.update(state)


def _rebuild_parameter(data, requires_grad, backward_hooks, *args):
    return data  # a Parameter is only its tensor here


# (module, name) -> object, for everything a pickled frequency encoder may reference
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): getattr(torch._utils, "_rebuild_tensor_v3", None),
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "float32"): torch.float32,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("copyreg", "_reconstructor"): None,  # handled in find_class (objects of admitted classes only)
}
# layer classes the frequency encoder is made of (mapped to the placeholder)
_SAFE_MODULE_CLASSES = {
    ("torch.nn.modules.rnn", "LSTM"),
    ("torch.nn.modules.linear", "Linear"),
    ("torch.nn.modules.activation", "ReLU"),
    ("torch.nn.modules.module", "Module"),
    ("torch.nn.modules.container", "ModuleList"),
    ("torch.nn.modules.container", "Sequential"),
    ("torch.nn.modules.dropout", "Dropout"),
}
# class names the original frequency encoder was saved under (any module: it is never imported)
ORIGINAL_FREQ_CLASS_NAMES = ("FreqEncoder", "Model")


def _safe_reconstructor(cls, base, state):
    if cls is not _PlaceholderModule or base is not object:
        raise pickle.UnpicklingError("copyreg._reconstructor is only admitted for the known layer classes.")
    return _PlaceholderModule()


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only tensor rebuilders, containers and the known layer classes."""

    def find_class(self, module: str, name: str) -> Any:
        module = "builtins" if module == "__builtin__" else module  # protocol-2 spelling
        if (module, name) == ("copyreg", "_reconstructor"):
            return _safe_reconstructor
        if (module, name) in _SAFE_GLOBALS and _SAFE_GLOBALS[(module, name)] is not None:
            return _SAFE_GLOBALS[(module, name)]
        if (module, name) in _SAFE_MODULE_CLASSES or name in ORIGINAL_FREQ_CLASS_NAMES:
            return _PlaceholderModule
        raise pickle.UnpicklingError(
            f"Refusing to load global {module}.{name}: only tensors and the BrainVis frequency-encoder layers "
            "(LSTM, Linear, ReLU) are allowed in a pickled module."
        )


# torch.load(pickle_module=...) wants a module-like object with Unpickler and load
restricted_pickle = types.SimpleNamespace(
    Unpickler=RestrictedUnpickler,
    load=lambda file, **kwargs: RestrictedUnpickler(file, **kwargs).load(),
    __name__="restricted_pickle",
)


def _module_state_dict(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """State dict of a placeholder tree (parameters, persistent buffers, sub-modules)."""
    if not isinstance(obj, _PlaceholderModule):
        raise ValueError(f"Expected a pickled module, got {type(obj).__name__}.")
    state: dict[str, torch.Tensor] = {}
    non_persistent = set(getattr(obj, "_non_persistent_buffers_set", ()) or ())
    for group in ("_parameters", "_buffers"):
        for key, value in (getattr(obj, group, None) or {}).items():
            if value is None or (group == "_buffers" and key in non_persistent):
                continue
            if not isinstance(value, torch.Tensor):
                raise ValueError(f"Pickled module entry {prefix}{key} is not a tensor ({type(value).__name__}).")
            state[prefix + key] = value
    for key, child in (getattr(obj, "_modules", None) or {}).items():
        if child is not None:
            state.update(_module_state_dict(child, f"{prefix}{key}."))
    return state


def _torch_load_reason(err: BaseException) -> str:
    """The gist of a ``torch.load`` error, without torch's advice to retry with ``weights_only=False``
    (that would run arbitrary code from an untrusted file)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    match = re.search(r"WeightsUnpickler error: (.*?)(?: Please use| Check the documentation|\n|$)", text)
    if match:
        return match.group(1).strip()
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return first.split(". This is an internal")[0].split(". If you")[0].rstrip(".")


def load_original_state_dict(path: str | os.PathLike, allow_pickled_module: bool = False) -> dict[str, torch.Tensor]:
    """Read an original checkpoint as a flat name -> tensor dict.

    State dicts are read with `weights_only=True`. With `allow_pickled_module=True` (the
    frequency encoder), a file that is a whole pickled module is read with `RestrictedUnpickler`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is neither a state dict nor an admissible pickled module.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Original checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as weights_only_error:
        if not allow_pickled_module:
            raise ValueError(
                f"{path} is not a plain state dict (weights-only loading refused it: {_torch_load_reason(weights_only_error)})."
            ) from None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=restricted_pickle)
        except pickle.UnpicklingError as err:
            raise ValueError(f"{path}: unsafe or unknown content in the pickled module: {_torch_load_reason(err)}") from None
        except (RuntimeError, EOFError, OSError) as err:
            raise ValueError(f"{path} is not a readable PyTorch checkpoint ({_torch_load_reason(err)}); is it truncated?") from None
        obj = _module_state_dict(obj)
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"{path} is not a readable PyTorch checkpoint ({_torch_load_reason(err)}); is it truncated?") from None
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors (got {type(obj).__name__}).")
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


# ---------------------------------------------------------------------------------------------
# Key mapping
# ---------------------------------------------------------------------------------------------

_BLOCK_RENAMES = (
    ("attn.linear_layers.0.", "attention.query."),
    ("attn.linear_layers.1.", "attention.key."),
    ("attn.linear_layers.2.", "attention.value."),
    ("attn.output_linear.", "attention.output."),
    ("ffn.linear1.", "feed_forward.fc1."),
    ("ffn.linear2.", "feed_forward.fc2."),
    ("skipconnect1.norm.", "attention_residual.layer_norm."),
    ("skipconnect2.norm.", "feed_forward_residual.layer_norm."),
)
_BLOCK_SCALES = {"skipconnect1.a": "attention_residual.scale", "skipconnect2.a": "feed_forward_residual.scale"}
_UNUSED_TIME_PREFIXES = ("channelmapping.", "dimmapping.")
_LMM_ONLY_PREFIXES = ("mask_token", "momentum_encoder.", "tokenizer.", "reg.")


def _rename_block_key(rest: str) -> str | None:
    if rest in _BLOCK_SCALES:
        return _BLOCK_SCALES[rest]
    for old, new in _BLOCK_RENAMES:
        if rest.startswith(old):
            suffix = rest[len(old) :]
            return new + suffix if suffix in ("weight", "bias") else None
    return None


def _map_time_key(key: str) -> str | None:
    """Original time-encoder key -> our key relative to a ForMaskedModeling / classification model."""
    if key in ("input_projection.weight", "input_projection.bias"):
        return "time_encoder.embeddings.patch_projection." + key.rsplit(".", 1)[1]
    if key == "position.pe.weight":
        return "time_encoder.embeddings.position_embeddings.weight"
    if key == "mask_token":
        return "mask_token"
    if key in ("tokenizer.center.weight", "tokenizer.center.bias"):
        return "tokenizer." + key.rsplit(".", 1)[1]
    if key in ("predict_head.weight", "predict_head.bias"):
        return "classifier." + key.rsplit(".", 1)[1]
    for pattern, target in (
        (r"encoder\.TRMs\.(\d+)\.(.+)", "time_encoder.encoder.layers.{}.{}"),
        (r"momentum_encoder\.TRMs\.(\d+)\.(.+)", "momentum_encoder.layers.{}.{}"),
        (r"reg\.layers\.(\d+)\.(.+)", "regressor.{}.{}"),
    ):
        match = re.fullmatch(pattern, key)
        if match:
            renamed = _rename_block_key(match.group(2))
            return None if renamed is None else target.format(match.group(1), renamed)
    return None


def _split(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _count_layers(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    indices = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    if indices and indices != set(range(len(indices))):
        raise ValueError(f"Layer indices matching {pattern!r} are not contiguous: {sorted(indices)}.")
    return len(indices)


def _require(state: Mapping[str, torch.Tensor], key: str, what: str) -> torch.Tensor:
    if key not in state:
        raise ValueError(f"Missing key {key!r} in the {what} checkpoint (is this an original BrainVis file?).")
    return state[key]


# ---------------------------------------------------------------------------------------------
# Config inference
# ---------------------------------------------------------------------------------------------


def infer_time_config(state: Mapping[str, torch.Tensor], num_heads: int = 16, **overrides) -> BrainVisTimeEncoderConfig:
    """A `BrainVisTimeEncoderConfig` whose sizes are read from an original time-encoder state dict."""
    projection = _require(state, "input_projection.weight", "time encoder")
    positions = _require(state, "position.pe.weight", "time encoder")
    hidden, channels, wave_length = projection.shape
    num_units = positions.shape[0]
    layers = _count_layers(state, r"encoder\.TRMs\.(\d+)\.")
    if layers == 0:
        raise ValueError("No encoder.TRMs.* keys in the time encoder checkpoint.")
    values: dict[str, Any] = dict(
        num_channels=int(channels),
        num_samples=int(num_units * wave_length),
        wave_length=int(wave_length),
        hidden_size=int(hidden),
        num_hidden_layers=layers,
        num_attention_heads=int(num_heads),
        intermediate_size=int(_require(state, "encoder.TRMs.0.ffn.linear1.weight", "time encoder").shape[0]),
        enable_res_parameter="encoder.TRMs.0.skipconnect1.a" in state,
    )
    if "tokenizer.center.weight" in state:
        values["codebook_size"] = int(state["tokenizer.center.weight"].shape[0])
    regressor_layers = _count_layers(state, r"reg\.layers\.(\d+)\.")
    if regressor_layers:
        values["num_regressor_layers"] = regressor_layers
    if "predict_head.weight" in state:
        values["num_labels"] = int(state["predict_head.weight"].shape[0])
    values.update(overrides)
    return BrainVisTimeEncoderConfig(**values)


def infer_freq_config(state: Mapping[str, torch.Tensor], num_samples: int = 440, **overrides) -> BrainVisFreqEncoderConfig:
    """A `BrainVisFreqEncoderConfig` from an original frequency-encoder state dict (T is not in the weights)."""
    weight_ih = _require(state, "lstm.weight_ih_l0", "frequency encoder")
    output = _require(state, "output.weight", "frequency encoder")
    values: dict[str, Any] = dict(
        num_channels=int(weight_ih.shape[1]),
        num_samples=int(num_samples),
        lstm_hidden_size=int(weight_ih.shape[0] // 4),
        num_lstm_layers=_count_layers(state, r"lstm\.weight_ih_l(\d+)$"),
        feature_size=int(output.shape[0]),
    )
    if "classifier.weight" in state:
        values["num_labels"] = int(state["classifier.weight"].shape[0])
    values.update(overrides)
    return BrainVisFreqEncoderConfig(**values)


# ---------------------------------------------------------------------------------------------
# State-dict conversion
# ---------------------------------------------------------------------------------------------


def convert_time_state_dict(
    state: Mapping[str, torch.Tensor], task: str = "masked_modeling"
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Original time-encoder keys -> ours for `task` ("masked_modeling" or "classification").

    Returns the converted dict and the original keys that were dropped (unused heads, and the
    parts the chosen task does not have). Raises `ValueError` on keys of unknown layout.
    """
    if task not in TIME_TASKS:
        raise ValueError(f"task must be one of {TIME_TASKS}, got {task!r}.")
    converted, dropped, unknown = {}, [], []
    for key, value in state.items():
        if key.startswith(_UNUSED_TIME_PREFIXES):
            dropped.append(key)
            continue
        target = _map_time_key(key)
        if target is None:
            unknown.append(key)
        elif task == "classification" and key.startswith(_LMM_ONLY_PREFIXES):
            dropped.append(key)
        elif task == "masked_modeling" and key.startswith("predict_head."):
            dropped.append(key)
        else:
            converted[target] = value
    if unknown:
        raise ValueError(f"Unexpected keys in the time encoder checkpoint: {sorted(unknown)}")
    return converted, dropped


def convert_freq_state_dict(
    state: Mapping[str, torch.Tensor], with_classifier: bool = True
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Original frequency-encoder keys -> ours (`freq_encoder.lstm.*`, `freq_encoder.projection.*`, `classifier.*`)."""
    converted, dropped, unknown = {}, [], []
    for key, value in state.items():
        if key.startswith("lstm.") and re.fullmatch(r"lstm\.(weight|bias)_(ih|hh)_l\d+", key):
            converted["freq_encoder." + key] = value
        elif key in ("output.weight", "output.bias"):
            converted["freq_encoder.projection." + key.split(".")[1]] = value
        elif key in ("classifier.weight", "classifier.bias"):
            if with_classifier:
                converted[key] = value
            else:
                dropped.append(key)
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"Unexpected keys in the frequency encoder checkpoint: {sorted(unknown)}")
    return converted, dropped


def convert_timefreq_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Original `TimeFreqEncoder` keys -> `BrainVisForEEGClassification` keys."""
    time_state = _split(state, "pretrained_model_time.")
    freq_state = _split(state, "pretrained_model_freq.")
    known = {f"pretrained_model_time.{k}" for k in time_state} | {f"pretrained_model_freq.{k}" for k in freq_state}
    unknown = [k for k in state if k not in known and k not in ("fc01.weight", "fc01.bias")]
    if unknown:
        raise ValueError(f"Unexpected keys in the time-frequency checkpoint: {sorted(unknown)}")
    time_converted, time_dropped = convert_time_state_dict(time_state, task="classification")
    time_dropped += ["predict_head.weight", "predict_head.bias"] if "classifier.weight" in time_converted else []
    freq_converted, freq_dropped = convert_freq_state_dict(freq_state, with_classifier=False)
    converted = {
        "brainvis." + k: v for k, v in {**time_converted, **freq_converted}.items() if not k.startswith("classifier.")
    }
    converted["classifier.weight"] = _require(state, "fc01.weight", "time-frequency")
    converted["classifier.bias"] = _require(state, "fc01.bias", "time-frequency")
    dropped = [f"pretrained_model_time.{k}" for k in time_dropped] + [
        f"pretrained_model_freq.{k}" for k in freq_dropped
    ]
    return converted, sorted(set(dropped))


_ALIGN_LAYERS = {"fc01": "fc1", "fc02": "fc2", "fc03": "fc3", "fc04": "fc4", "fc05": "fc5", "fc6": "output"}


def convert_align_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Original `AlignNet` keys -> `BrainVisForCLIPAlignment` keys."""
    inner = _split(state, "pretrained_model.")
    converted, dropped = convert_timefreq_state_dict(inner)
    dropped = [f"pretrained_model.{k}" for k in dropped]
    unknown = []
    for key, value in state.items():
        if key.startswith("pretrained_model."):
            continue
        layer, _, kind = key.partition(".")
        if layer in _ALIGN_LAYERS and kind in ("weight", "bias"):
            converted[f"prompt_projector.{_ALIGN_LAYERS[layer]}.{kind}"] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"Unexpected keys in the alignment checkpoint: {sorted(unknown)}")
    return converted, dropped


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def _load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"Converted {what} checkpoint does not fit: missing {missing}, unexpected {unexpected}.")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ValueError(
                f"Converted {what} checkpoint: {key} has shape {tuple(tensor.shape)}, expected {tuple(expected[key].shape)}."
            )
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)


def _brainvis_config(state: Mapping[str, torch.Tensor], prefix: str, num_heads: int, **extra) -> BrainVisConfig:
    time_state = _split(state, prefix + "pretrained_model_time.")
    freq_state = _split(state, prefix + "pretrained_model_freq.")
    time_config = infer_time_config(time_state, num_heads)
    freq_config = infer_freq_config(freq_state, num_samples=time_config.num_samples)
    head = _require(state, prefix + "fc01.weight", "time-frequency")
    return BrainVisConfig(time_config=time_config, freq_config=freq_config, num_labels=int(head.shape[0]), **extra)


def convert_original_checkpoints(
    time: str | os.PathLike | None = None,
    freq: str | os.PathLike | None = None,
    timefreq: str | os.PathLike | None = None,
    align: str | os.PathLike | None = None,
    output_dir: str | os.PathLike = "converted",
    num_heads: int = 16,
    *,
    time_task: str = "masked_modeling",
    num_samples: int | None = None,
    prompt_sequence_length: int = 77,
    on_dropped: Callable[[str, list[str]], None] | None = None,
) -> dict[str, Path]:
    """Convert whichever original BrainVis checkpoints are given into `from_pretrained` folders.

    Args:
        time: original time encoder state dict (`TimeEncoder`) -> `output_dir/time_encoder`
            (`BrainVisTimeEncoderForMaskedModeling`, or `...ForEEGClassification` with
            `time_task="classification"`, which keeps `predict_head` as the classifier).
        freq: original frequency encoder (state dict or whole pickled module) ->
            `output_dir/freq_encoder` (`BrainVisFreqEncoderForEEGClassification`).
        timefreq: original `TimeFreqEncoder` state dict -> `output_dir/timefreq` (`BrainVisForEEGClassification`).
        align: original `AlignNet` state dict -> `output_dir/align` (`BrainVisForCLIPAlignment`).
        output_dir: where the folders are written.
        num_heads: attention heads (not recoverable from the weights; 16 in the paper).
        num_samples: EEG length T for the frequency encoder when no time checkpoint tells it (440).
        prompt_sequence_length: tokens of the prompt embedding (77); its width is inferred.
        on_dropped: called as `on_dropped(folder_name, original_keys)` with the keys that were
            dropped (unused heads, parts the target class does not have); by default they are logged.

    Returns:
        `{"time_encoder": path, ...}` for the folders written.

    Raises:
        ValueError: nothing to convert, unknown/missing keys, unsafe pickle content, bad shapes.
        FileNotFoundError: a given file does not exist.
    """
    if not any((time, freq, timefreq, align)):
        raise ValueError("Nothing to convert: pass at least one of time, freq, timefreq, align.")
    output_dir = Path(output_dir)
    written: dict[str, Path] = {}

    def save(name: str, model, dropped: list[str]) -> None:
        folder = output_dir / name
        model.save_pretrained(folder)
        written[name] = folder
        if on_dropped is not None:
            on_dropped(name, dropped)
        elif dropped:
            logger.warning("%s: dropped %d original key(s) not used by %s: %s", name, len(dropped),
                           type(model).__name__, ", ".join(_summarise(dropped)))  # fmt: skip

    time_samples = num_samples
    if time is not None:
        state = load_original_state_dict(time)
        config = infer_time_config(state, num_heads)
        time_samples = time_samples or config.num_samples
        converted, dropped = convert_time_state_dict(state, task=time_task)
        model_class = (
            BrainVisTimeEncoderForMaskedModeling if time_task == "masked_modeling" else BrainVisTimeEncoderForEEGClassification
        )
        model = model_class(config)
        _load_strict(model, converted, "time encoder")
        save("time_encoder", model, dropped)
    if freq is not None:
        state = load_original_state_dict(freq, allow_pickled_module=True)
        config = infer_freq_config(state, num_samples=time_samples or 440)
        converted, dropped = convert_freq_state_dict(state)
        model = BrainVisFreqEncoderForEEGClassification(config)
        _load_strict(model, converted, "frequency encoder")
        save("freq_encoder", model, dropped)
    if timefreq is not None:
        state = load_original_state_dict(timefreq)
        config = _brainvis_config(state, "", num_heads)
        converted, dropped = convert_timefreq_state_dict(state)
        model = BrainVisForEEGClassification(config)
        _load_strict(model, converted, "time-frequency")
        save("timefreq", model, dropped)
    if align is not None:
        state = load_original_state_dict(align)
        out_features = _require(state, "fc6.weight", "alignment").shape[0]
        if out_features % prompt_sequence_length:
            raise ValueError(
                f"fc6 has {out_features} outputs, not a multiple of prompt_sequence_length={prompt_sequence_length}."
            )
        config = _brainvis_config(
            state, "pretrained_model.", num_heads,
            prompt_sequence_length=prompt_sequence_length, prompt_embed_dim=out_features // prompt_sequence_length,
        )  # fmt: skip
        converted, dropped = convert_align_state_dict(state)
        model = BrainVisForCLIPAlignment(config)
        _load_strict(model, converted, "alignment")
        save("align", model, dropped)
    return written


def _summarise(keys: list[str]) -> list[str]:
    """Group dropped keys by their leading module path for a short report."""
    groups: dict[str, int] = collections.Counter()
    for key in keys:
        parts = key.split(".")
        depth = 2 if parts[0] in ("pretrained_model", "pretrained_model_time", "pretrained_model_freq") else 1
        groups[".".join(parts[:depth]) + (".*" if len(parts) > depth else "")] += 1
    return [f"{name} ({count})" for name, count in sorted(groups.items())]


__all__ = [
    "RestrictedUnpickler",
    "convert_align_state_dict",
    "convert_freq_state_dict",
    "convert_original_checkpoints",
    "convert_time_state_dict",
    "convert_timefreq_state_dict",
    "infer_freq_config",
    "infer_time_config",
    "load_original_state_dict",
]

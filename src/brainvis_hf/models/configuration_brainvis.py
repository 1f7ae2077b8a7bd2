"""Configurations of the BrainVis EEG encoders (time branch, frequency branch, unified model).

Defaults are the paper-size hyper-parameters of BrainVis (Fu et al., ICASSP 2025). This module
imports only ``transformers`` so that it can be shipped as remote code next to saved weights.
"""

from __future__ import annotations

from transformers import PreTrainedConfig

# The 40 EEG-ImageNet classes as words (the refinement prompts), in the order of the reference
# table / the published signals files. Copied here so that the configuration is self-contained;
# training code overwrites ``id2label`` with the order of the dataset it trains on.
EEG_IMAGENET_CLASS_WORDS: tuple[str, ...] = (
    "sorrel horse", "parachute", "iron", "anemone fish", "espresso maker", "coffee mug",
    "mountain bike", "revolver", "giant panda", "daisy", "canoe", "lycaenid butterfly",
    "German shepherd dog", "running shoe", "jack-o'-lantern", "cellular telephone", "golf ball",
    "desktop computer", "broom", "pizza", "missile", "capuchin monkey", "pool table", "mailbag",
    "convertible car", "folding chair", "pajama", "mitten", "electric guitar", "reflex camera",
    "grand piano", "mountain tent", "banana", "bolete", "digital watch", "African elephant",
    "airliner", "electric locomotive", "radio telescope", "cat",
)  # fmt: skip

PADDING_POLICIES = ("error", "zeros", "truncate")
MASK_MODES = ("per_batch", "per_sample")
INPUT_NORMALIZATIONS = (None, "recording")
SPECTRUM_SCALINGS = (None, "log")
SPECTRUM_NORMALIZATIONS = (None, "batch")
POOLER_NORMALIZATIONS = (None, "batch")
FREQ_READOUTS = ("last", "mean", "flatten")


def _check_choice(config: PreTrainedConfig, name: str, choices: tuple) -> None:
    if getattr(config, name) not in choices:
        raise ValueError(f"{type(config).__name__}.{name} must be one of {choices}, got {getattr(config, name)!r}.")


def _check_positive(config: PreTrainedConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{type(config).__name__}.{name} must be a positive integer, got {value!r}.")


def _check_probability(config: PreTrainedConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not 0.0 <= float(value) < 1.0:
            raise ValueError(f"{type(config).__name__}.{name} must be in [0, 1), got {value!r}.")


def _json_safe(value):
    """NumPy arrays / scalars (as in ``mne.Info["chs"]``) -> plain JSON values."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN (unknown electrode position) -> null
        return None
    return value


def _check_signal_info(config: PreTrainedConfig, num_channels: int) -> None:
    """Validate and normalise ``sfreq``, ``ch_names`` and ``chs_info`` (braindecode's signal metadata)."""
    name = type(config).__name__
    if config.sfreq is not None:
        if isinstance(config.sfreq, bool) or not isinstance(config.sfreq, (int, float)) or not 0 < float(config.sfreq) < float("inf"):
            raise ValueError(f"{name}.sfreq must be a positive sampling rate in Hz or None, got {config.sfreq!r}.")
        config.sfreq = float(config.sfreq)
    if config.chs_info is not None:
        chs = _json_safe(list(config.chs_info))
        if not all(isinstance(ch, dict) and isinstance(ch.get("ch_name"), str) for ch in chs):
            raise ValueError(f"{name}.chs_info must be a list of dicts with a 'ch_name' string (like mne.Info['chs']).")
        config.chs_info = chs
        from_chs = [ch["ch_name"] for ch in chs]
        if config.ch_names is None:
            config.ch_names = from_chs
        elif list(config.ch_names) != from_chs:
            raise ValueError(f"{name}.ch_names and the names in {name}.chs_info differ.")
    if config.ch_names is not None:
        names = list(config.ch_names)
        if not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"{name}.ch_names must be a list of non-empty strings or None.")
        if len(names) != num_channels:
            raise ValueError(f"{name}.ch_names has {len(names)} names but the model has num_channels={num_channels}.")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"{name}.ch_names has duplicate channel names: {duplicates[:10]}.")
        config.ch_names = names


def set_signal_info(
    config: PreTrainedConfig,
    sfreq: float | None = None,
    ch_names: list[str] | None = None,
    chs_info: list[dict] | None = None,
) -> None:
    """Record the input's sampling rate and channels in ``config`` (and, for a ``BrainVisConfig``,
    in both branches' configurations, which describe the same input).

    ``None`` leaves a field as it is. A value that disagrees with what a configuration already
    records raises a ``ValueError`` naming both: a model trained at one rate or montage must not be
    silently relabelled.
    """
    configs = {type(config).__name__: config}
    for sub in ("time_config", "freq_config"):
        if isinstance(getattr(config, sub, None), PreTrainedConfig):
            configs[f"{type(config).__name__}.{sub}"] = getattr(config, sub)
    for field, value in (("sfreq", sfreq), ("ch_names", ch_names), ("chs_info", chs_info)):
        known = {f"{k}.{field}": getattr(c, field) for k, c in configs.items() if getattr(c, field, None) is not None}
        if value is not None:
            known["new value"] = float(value) if field == "sfreq" else _json_safe(list(value))
        values = list(known.values())
        if any(v != values[0] for v in values[1:]):
            shown = "; ".join(f"{k}={v!r}"[:160] for k, v in known.items())
            raise ValueError(f"Conflicting {field}: {shown}.")
        if values:
            for c in configs.values():
                setattr(c, field, values[0])
    for c in configs.values():
        _check_signal_info(c, int(getattr(config, "num_channels")))


def _set_default_num_labels(config: PreTrainedConfig, kwargs: dict, default: int) -> None:
    if config.id2label is None and kwargs.get("num_labels") is None:
        kwargs["num_labels"] = default


class BrainVisTimeEncoderConfig(PreTrainedConfig):
    r"""Configuration of the BrainVis time encoder and its Latent Masked Modeling (LMM) objective.

    Args:
        num_channels (`int`, defaults to 128): EEG channels C of the input (B x C x T).
        num_samples (`int`, defaults to 440): time samples T of the input.
        wave_length (`int`, defaults to 4): samples per unit; the patch projection is a Conv1d with
            kernel = stride = `wave_length`, giving `num_units` tokens.
        padding (`str`, defaults to `"error"`): what to do when `num_samples` is not a multiple of
            `wave_length`. `"error"` refuses such a configuration; `"zeros"` right-pads every input
            with zeros to the next multiple (`num_units = ceil(T / wave_length)`); `"truncate"`
            drops the trailing `T % wave_length` samples (`num_units = T // wave_length`, what a
            strided Conv1d does silently in the original code).
        hidden_size (`int`, defaults to 1024): model width d.
        num_hidden_layers (`int`, defaults to 8): transformer blocks of the encoder.
        num_attention_heads (`int`, defaults to 16): attention heads (encoder and regressor).
        intermediate_size (`int`, defaults to 4096): width of the GELU feed-forward layer.
        hidden_dropout_prob (`float`, defaults to 0.2): dropout on the residual branches and the
            feed-forward output of the encoder blocks.
        attention_probs_dropout_prob (`float`, defaults to 0.2): dropout on the attention
            probabilities of the encoder blocks.
        enable_res_parameter (`bool`, defaults to `True`): scale every residual branch of the
            encoder by a learnable scalar (`x = LayerNorm(x + Dropout(a * sublayer(x)))`).
        residual_scale_init (`float`, defaults to 1e-8): initial value of those scalars.
        layer_norm_eps (`float`, defaults to 1e-5): epsilon of the (post-)LayerNorms.
        initializer_bias_value (`float`, defaults to 0.1): every Linear layer of the time encoder
            is initialised with xavier-normal weights and this constant bias (as in the original).
        mask_ratio (`float`, defaults to 0.75): share of units that are masked in LMM
            (`int(mask_ratio * num_units)` units).
        mask_mode (`str`, defaults to `"per_batch"`): `"per_batch"` draws one random permutation of
            the units for the whole batch (the original); `"per_sample"` draws one per recording.
        codebook_size (`int`, defaults to 660): size of the codebook of the LMM tokenizer.
        num_regressor_layers (`int`, defaults to 4): cross-attention blocks of the LMM regressor.
        regressor_dropout_prob (`float`, defaults to 0.1): dropout of the regressor blocks
            (attention probabilities, residual branches, feed-forward output); 0.1 in the original.
        momentum (`float`, defaults to 0.99): momentum m of the momentum encoder update
            `theta_m <- m * theta_m + (1 - m) * theta_online`.
        regression_loss_weight (`float`, defaults to 4.0): alpha, weight of the MSE regression loss.
        codebook_loss_weight (`float`, defaults to 2.0): beta, weight of the codebook cross-entropy.
        label_smoothing (`float`, defaults to 0.2): label smoothing of the codebook cross-entropy.
        num_labels (`int`, defaults to 40): classes of `BrainVisTimeEncoderForEEGClassification`.
        input_normalization (`str`, *optional*, defaults to `None`): opt-in. `"recording"` z-scores
            every channel of every recording over time before the patch projection (removes
            offsets and slow amplitude differences between recordings; unnormalised raw EEG
            otherwise stalls training). `None` feeds the input as it is (the paper).
        pooling_segments (`int`, defaults to 1): the pooled feature is the mean of the unit states
            over this many contiguous segments of time, concatenated (`pooled_size = segments x
            hidden_size`). 1 is the paper's mean over all units; more segments keep *when*
            things happen, which a mean over phase-locked oscillations averages away
            (`num_units` keeps every unit). See docs/training.md, "Why the chain did not learn".
        lmm_freeze_embeddings (`bool`, defaults to `False`): opt-in. Keep the patch projection and the
            position table fixed during LMM pretraining. The regression targets are the momentum
            encoder's states of the *same* projection, so training it chases its own targets and
            can wash out the per-unit features (the linear probe falls below a random encoder's);
            frozen, LMM trains the transformer only. `False` trains them (the paper).
        pooler_normalization (`str`, *optional*, defaults to `None`): opt-in. `"batch"` standardises
            every value of the pooled feature with running statistics of the training data (a
            `BatchNorm1d` without affine parameters, buffers saved with the weights), as a linear
            decoder's StandardScaler does: the pooled states share a large constant part (the
            position table through the LayerNorms) and recordings differ by a few percent of it.
            `None`: the paper. See docs/training.md for what it changed in the benchmark.
        time_shift_augmentation (`int`, defaults to 0): opt-in. In training mode the encoder shifts
            every recording by a random whole number of samples in `[-k, k]` before the patch
            projection (the vacated end repeats the edge sample), as Wav2Vec2's SpecAugment
            masks in its forward. A readout that keeps *when* things happen (`pooling_segments`
            > 1) otherwise ties a class to the exact samples of its response, whose latency
            varies between subjects and trials. Eval mode never shifts. 0 is off (the paper).
        sfreq (`float`, *optional*): sampling rate in Hz of the EEG the model expects (EEG-ImageNet:
            1000). `None` when unknown (configurations saved before this field); MNE input then
            assumes EEG-ImageNet's 1000 Hz.
        ch_names (`list[str]`, *optional*): the channel names in input order (`num_channels` of
            them), as braindecode models record them; MNE input is picked and reordered by them.
        chs_info (`list[dict]`, *optional*): per-channel information like `mne.Info["chs"]`
            (JSON-safe: arrays stored as lists); its `ch_name`s give `ch_names` when those are unset.
    """

    model_type = "brainvis_time_encoder"

    num_channels: int = 128
    num_samples: int = 440
    wave_length: int = 4
    padding: str = "error"
    hidden_size: int = 1024
    num_hidden_layers: int = 8
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    hidden_dropout_prob: float = 0.2
    attention_probs_dropout_prob: float = 0.2
    enable_res_parameter: bool = True
    residual_scale_init: float = 1e-8
    layer_norm_eps: float = 1e-5
    initializer_bias_value: float = 0.1
    mask_ratio: float = 0.75
    mask_mode: str = "per_batch"
    codebook_size: int = 660
    num_regressor_layers: int = 4
    regressor_dropout_prob: float = 0.1
    momentum: float = 0.99
    regression_loss_weight: float = 4.0
    codebook_loss_weight: float = 2.0
    label_smoothing: float = 0.2
    input_normalization: str | None = None
    pooling_segments: int = 1
    lmm_freeze_embeddings: bool = False
    pooler_normalization: str | None = None
    time_shift_augmentation: int = 0
    sfreq: float | None = None
    ch_names: list[str] | None = None
    chs_info: list[dict] | None = None

    def __post_init__(self, **kwargs):
        _set_default_num_labels(self, kwargs, 40)
        self.enable_res_parameter = bool(self.enable_res_parameter)
        self.lmm_freeze_embeddings = bool(self.lmm_freeze_embeddings)
        _check_choice(self, "input_normalization", INPUT_NORMALIZATIONS)
        _check_choice(self, "pooler_normalization", POOLER_NORMALIZATIONS)
        _check_positive(
            self, "num_channels", "num_samples", "wave_length", "hidden_size", "num_hidden_layers",
            "num_attention_heads", "intermediate_size", "codebook_size", "num_regressor_layers",
        )  # fmt: skip
        _check_probability(
            self, "hidden_dropout_prob", "attention_probs_dropout_prob", "regressor_dropout_prob", "label_smoothing"
        )
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads})."
            )
        if self.padding not in PADDING_POLICIES:
            raise ValueError(f"padding must be one of {PADDING_POLICIES}, got {self.padding!r}.")
        if self.padding == "error" and self.num_samples % self.wave_length != 0:
            raise ValueError(
                f"num_samples ({self.num_samples}) is not a multiple of wave_length ({self.wave_length}); "
                "set padding='zeros' (right-pad with zeros) or padding='truncate' (drop the trailing samples)."
            )
        if self.num_units < 1:
            raise ValueError(f"num_samples ({self.num_samples}) is shorter than one unit ({self.wave_length}).")
        if self.mask_mode not in MASK_MODES:
            raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {self.mask_mode!r}.")
        if not 0.0 < float(self.mask_ratio) < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio!r}.")
        if self.num_units >= 2 and not 1 <= self.num_masked_units < self.num_units:
            raise ValueError(
                f"mask_ratio={self.mask_ratio} masks {self.num_masked_units} of {self.num_units} units; "
                "at least one unit must be masked and one visible."
            )
        if not 0.0 <= float(self.momentum) <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {self.momentum!r}.")
        _check_positive(self, "pooling_segments")
        if not 0 <= self.time_shift_augmentation < self.num_samples:
            raise ValueError(
                f"time_shift_augmentation must be in [0, num_samples), got {self.time_shift_augmentation!r}."
            )
        if self.pooling_segments > self.num_units:
            raise ValueError(
                f"pooling_segments ({self.pooling_segments}) cannot exceed the number of units ({self.num_units})."
            )
        _check_signal_info(self, self.num_channels)
        super().__post_init__(**kwargs)

    @property
    def num_units(self) -> int:
        """Number of tokens n the patch projection makes of `num_samples` samples."""
        if self.padding == "zeros":
            return -(-self.num_samples // self.wave_length)
        return self.num_samples // self.wave_length

    @property
    def pooled_size(self) -> int:
        """Width of the pooled feature (`pooler_output`): `pooling_segments * hidden_size`."""
        return self.pooling_segments * self.hidden_size

    @property
    def num_masked_units(self) -> int:
        """Units masked in LMM: `int(mask_ratio * num_units)` (82 of 110 at paper size)."""
        return int(self.mask_ratio * self.num_units)


class BrainVisFreqEncoderConfig(PreTrainedConfig):
    r"""Configuration of the BrainVis frequency encoder (|FFT| -> LSTM -> Linear -> ReLU).

    Args:
        num_channels (`int`, defaults to 128): EEG channels C (the LSTM input size).
        num_samples (`int`, defaults to 440): time samples T; the FFT is taken over them and the
            bins `1 .. T // 2` are kept (DC dropped).
        lstm_hidden_size (`int`, defaults to 128): hidden size of the one-layer LSTM.
        num_lstm_layers (`int`, defaults to 1): LSTM layers (1 in the paper).
        feature_size (`int`, defaults to 128): width of the frequency feature (Linear + ReLU).
        num_labels (`int`, defaults to 40): classes of `BrainVisFreqEncoderForEEGClassification`.
        spectrum_scaling (`str`, *optional*, defaults to `None`): opt-in. `"log"` feeds
            `log(|FFT| + 1e-6)` instead of `|FFT|`: band power then reads on one scale across the
            1/f spectrum. `None`: the paper's `|FFT|`.
        spectrum_normalization (`str`, *optional*, defaults to `None`): opt-in. `"batch"`
            standardises every (frequency bin, channel) value with running statistics of the
            training data (a `BatchNorm1d` without affine parameters, whose buffers are saved with
            the weights). Class differences in band power are small against the spectrum's
            shape; without this the LSTM sees nearly the same input for every recording.
        readout (`str`, defaults to `"last"`): `"last"` reads the LSTM's last state (the paper),
            which sees the highest frequencies last and forgets the low ones; `"mean"` averages
            the states over all frequency steps; `"flatten"` feeds the states of every frequency
            step to the projection (it then knows *which* band carries power; the projection
            reads `num_frequency_bins x lstm_hidden_size` values).
        sfreq (`float`, *optional*): sampling rate in Hz of the EEG the model expects (EEG-ImageNet:
            1000). `None` when unknown (configurations saved before this field); MNE input then
            assumes EEG-ImageNet's 1000 Hz.
        ch_names (`list[str]`, *optional*): the channel names in input order (`num_channels` of
            them), as braindecode models record them; MNE input is picked and reordered by them.
        chs_info (`list[dict]`, *optional*): per-channel information like `mne.Info["chs"]`
            (JSON-safe: arrays stored as lists); its `ch_name`s give `ch_names` when those are unset.
    """

    model_type = "brainvis_freq_encoder"

    num_channels: int = 128
    num_samples: int = 440
    lstm_hidden_size: int = 128
    num_lstm_layers: int = 1
    feature_size: int = 128
    spectrum_scaling: str | None = None
    spectrum_normalization: str | None = None
    readout: str = "last"
    sfreq: float | None = None
    ch_names: list[str] | None = None
    chs_info: list[dict] | None = None

    def __post_init__(self, **kwargs):
        _set_default_num_labels(self, kwargs, 40)
        _check_choice(self, "spectrum_scaling", SPECTRUM_SCALINGS)
        _check_choice(self, "spectrum_normalization", SPECTRUM_NORMALIZATIONS)
        _check_choice(self, "readout", FREQ_READOUTS)
        _check_positive(self, "num_channels", "num_samples", "lstm_hidden_size", "num_lstm_layers", "feature_size")
        if self.num_samples < 2:
            raise ValueError(f"num_samples must be at least 2 to have a frequency bin, got {self.num_samples}.")
        _check_signal_info(self, self.num_channels)
        super().__post_init__(**kwargs)

    @property
    def num_frequency_bins(self) -> int:
        """Frequency steps the LSTM reads: bins 1 .. T // 2 of the FFT (220 at paper size)."""
        return self.num_samples // 2


class BrainVisConfig(PreTrainedConfig):
    r"""Configuration of the unified time-frequency model, its classifier and the CLIP alignment head.

    Args:
        time_config (`dict` or `BrainVisTimeEncoderConfig`, *optional*): the time branch.
        freq_config (`dict` or `BrainVisFreqEncoderConfig`, *optional*): the frequency branch.
            Both branches must agree on `num_channels` and `num_samples`.
        num_labels (`int`, defaults to 40): classes of the unified classifier. `id2label`
            defaults to the 40 EEG-ImageNet class words (e.g. `"sorrel horse"`) in the order of
            the reference table; set it to your dataset's class order (the words are the
            refinement prompts of the pipeline). With another `num_labels` and no `id2label`
            the labels are `LABEL_i`.
        prompt_sequence_length (`int`, defaults to 77): tokens of the predicted prompt embedding.
        prompt_embed_dim (`int`, defaults to 768): width of the predicted prompt embedding (the
            hidden size of the Stable Diffusion text encoder it stands in for).
        eeg_time_window (`tuple[int, int]`, defaults to `(20, 460)`): samples of the raw
            recording the model was trained on (informative, used by data preparation).
        alignment_classification_loss_weight (`float`, defaults to 0.0): weight of the class
            cross-entropy added to the alignment loss when `labels` are given (0 in the paper:
            the alignment stage trains on the CLIP loss only; the CE is still reported).
        alignment_centred_loss_weight (`float`, defaults to 0.0): weight of a cosine-embedding
            loss between the batch-centred prediction and the batch-centred target (each minus
            its mean over the batch), added per target kind (0 in the paper). The prompt
            embeddings of different classes share most of their energy (96% with the demo's tiny
            text encoder), so the paper's MSE and cosine on the whole vector are nearly satisfied
            by the shared part; this term measures only the part that differs between samples,
            the class-specific one that a diffusion model draws. Needs batches of 2 or more.
        sfreq (`float`, *optional*): sampling rate in Hz of the EEG the model expects (EEG-ImageNet:
            1000). `None` when unknown (configurations saved before this field); MNE input then
            assumes EEG-ImageNet's 1000 Hz.
        ch_names (`list[str]`, *optional*): the channel names in input order (`num_channels` of
            them), as braindecode models record them; MNE input is picked and reordered by them.
        chs_info (`list[dict]`, *optional*): per-channel information like `mne.Info["chs"]`
            (JSON-safe: arrays stored as lists); its `ch_name`s give `ch_names` when those are unset.
            The unified model's values and its branches' are kept equal: a value set on either
            is copied to the others (different values are refused).
    """

    model_type = "brainvis"
    sub_configs_defaults = {"time_config": BrainVisTimeEncoderConfig, "freq_config": BrainVisFreqEncoderConfig}

    time_config: dict | BrainVisTimeEncoderConfig | None = None
    freq_config: dict | BrainVisFreqEncoderConfig | None = None
    prompt_sequence_length: int = 77
    prompt_embed_dim: int = 768
    eeg_time_window: tuple[int, int] | list[int] = (20, 460)
    alignment_classification_loss_weight: float = 0.0
    alignment_centred_loss_weight: float = 0.0
    sfreq: float | None = None
    ch_names: list[str] | None = None
    chs_info: list[dict] | None = None

    def __post_init__(self, **kwargs):
        if self.id2label is None and kwargs.get("num_labels") in (None, len(EEG_IMAGENET_CLASS_WORDS)):
            kwargs.pop("num_labels", None)
            self.id2label = dict(enumerate(EEG_IMAGENET_CLASS_WORDS))
            self.label2id = {word: i for i, word in self.id2label.items()}
        _check_positive(self, "prompt_sequence_length", "prompt_embed_dim")
        if not self.alignment_centred_loss_weight >= 0:
            raise ValueError(f"alignment_centred_loss_weight must be >= 0, got {self.alignment_centred_loss_weight!r}.")
        self.eeg_time_window = tuple(int(v) for v in self.eeg_time_window)
        if len(self.eeg_time_window) != 2 or self.eeg_time_window[0] >= self.eeg_time_window[1]:
            raise ValueError(f"eeg_time_window must be (start, end) with start < end, got {self.eeg_time_window!r}.")
        super().__post_init__(**kwargs)
        for name in ("num_channels", "num_samples"):
            time_value, freq_value = getattr(self.time_config, name), getattr(self.freq_config, name)
            if time_value != freq_value:
                raise ValueError(
                    f"time_config.{name} ({time_value}) and freq_config.{name} ({freq_value}) must be equal."
                )
        _check_signal_info(self, self.num_channels)
        set_signal_info(self)

    @property
    def num_channels(self) -> int:
        """EEG channels C of the input."""
        return self.time_config.num_channels

    @property
    def num_samples(self) -> int:
        """Time samples T of the input."""
        return self.time_config.num_samples

    @property
    def feature_size(self) -> int:
        """Width of the joint time-frequency feature, pooled time size (d) + frequency feature size."""
        return self.time_config.pooled_size + self.freq_config.feature_size


__all__ = [
    "BrainVisConfig",
    "BrainVisFreqEncoderConfig",
    "BrainVisTimeEncoderConfig",
    "EEG_IMAGENET_CLASS_WORDS",
    "set_signal_info",
]

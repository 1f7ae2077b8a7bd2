"""BrainVis frequency encoder: |FFT| spectrum -> one-layer LSTM -> Linear -> ReLU (128-d feature)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .configuration_brainvis import BrainVisFreqEncoderConfig
from .modeling_time_encoder import (
    BrainVisEEGClassifierOutput,
    BrainVisModelMixin,
    check_eeg_values,
    check_model_outputs,
    classification_loss,
    init_linear_like_torch,
    init_running_stats,
)


def amplitude_spectrum(eeg_values: torch.Tensor) -> torch.Tensor:
    """|FFT| of every channel over time, bins 1 .. T // 2 (DC dropped): B x C x T -> B x (T // 2) x C.

    Computed in float32 on the input's device, whatever autocast is active.
    """
    num_samples = eeg_values.shape[-1]
    with torch.autocast(device_type=eeg_values.device.type, enabled=False):
        spectrum = torch.fft.rfft(eeg_values.float(), n=num_samples, dim=-1)
        amplitude = spectrum[..., 1 : num_samples // 2 + 1].abs()
    return amplitude.transpose(1, 2)


def log_spectrum(amplitude: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """`log(|FFT| + eps)`: the 1/f spectrum of EEG spans orders of magnitude; on a log scale a band
    power change reads alike at every frequency."""
    return (amplitude.float() + eps).log().to(amplitude.dtype)


class BrainVisFreqEncoderPreTrainedModel(BrainVisModelMixin, PreTrainedModel):
    config_class = BrainVisFreqEncoderConfig
    config: BrainVisFreqEncoderConfig
    base_model_prefix = "freq_encoder"
    main_input_name = "eeg_values"
    input_modalities = ("time",)
    _no_split_modules = ["BrainVisFreqEncoderModel"]
    # no attention: every implementation is fine (so that the unified model can pick any)
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """PyTorch's default initialisation (what the original frequency encoder used)."""
        if isinstance(module, nn.Linear):
            init_linear_like_torch(module)
        elif isinstance(module, nn.LSTM):
            bound = 1.0 / math.sqrt(module.hidden_size)
            for param in module.parameters(recurse=False):
                init.uniform_(param, -bound, bound)
        elif isinstance(module, nn.BatchNorm1d):
            init_running_stats(module)


class BrainVisFreqEncoderModel(BrainVisFreqEncoderPreTrainedModel):
    """Frequency branch: `pooler_output` is the B x feature_size feature (ReLU(Linear(last LSTM state)))."""

    def __init__(self, config: BrainVisFreqEncoderConfig):
        super().__init__(config)
        # opt-in: each (frequency bin, channel) standardised with running statistics of the
        # training data (buffers, saved with the weights), like a linear decoder's StandardScaler
        self.spectrum_norm = (
            nn.BatchNorm1d(config.num_frequency_bins * config.num_channels, affine=False)
            if config.spectrum_normalization == "batch" else None
        )
        self.lstm = nn.LSTM(
            config.num_channels, config.lstm_hidden_size, num_layers=config.num_lstm_layers, batch_first=True
        )
        readout_size = config.lstm_hidden_size * (config.num_frequency_bins if config.readout == "flatten" else 1)
        self.projection = nn.Linear(readout_size, config.feature_size)
        self.post_init()

    def forward(
        self,
        eeg_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        """`last_hidden_state`: B x (T // 2) x lstm_hidden LSTM states; `pooler_output`: the feature.

        `hidden_states` (when requested, or `config.output_hidden_states`): the LSTM's input, the
        B x (T // 2) x C amplitude spectrum, and its output states (of the top layer: `nn.LSTM`
        does not expose the lower layers' sequences).
        """
        config = self.config
        _, output_hidden_states, return_dict = self._output_flags(False, output_hidden_states, return_dict)
        check_eeg_values(eeg_values, config.num_channels, config.num_samples, dtype=self.dtype)
        spectrum = amplitude_spectrum(eeg_values)
        if config.spectrum_scaling == "log":
            spectrum = log_spectrum(spectrum)
        if self.spectrum_norm is not None:
            spectrum = spectrum.to(self.spectrum_norm.running_mean.dtype)
            spectrum = self.spectrum_norm(spectrum.flatten(1)).view_as(spectrum)
        spectrum = spectrum.to(self.projection.weight.dtype)
        # zero initial state (nn.LSTM's default); the paper's feature reads the last step
        states, _ = self.lstm(spectrum)
        if config.readout == "flatten":
            readout = states.flatten(1)
        else:
            readout = states.mean(dim=1) if config.readout == "mean" else states[:, -1]
        feature = F.relu(self.projection(readout))
        if not self.training:
            check_model_outputs(feature, "frequency features")
        output = BaseModelOutputWithPooling(
            last_hidden_state=states,
            pooler_output=feature,
            hidden_states=(spectrum, states) if output_hidden_states else None,
        )
        return output if return_dict else output.to_tuple()


class BrainVisFreqEncoderForEEGClassification(BrainVisFreqEncoderPreTrainedModel):
    """Frequency encoder + Linear(feature_size -> num_labels), trained alone first with cross-entropy."""

    def __init__(self, config: BrainVisFreqEncoderConfig):
        super().__init__(config)
        self.freq_encoder = BrainVisFreqEncoderModel(config)
        self.classifier = nn.Linear(config.feature_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        eeg_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BrainVisEEGClassifierOutput | tuple:
        """Class scores of `eeg_values`; with `labels`, the loss after `config.problem_type`."""
        _, output_hidden_states, return_dict = self._output_flags(False, output_hidden_states, return_dict)
        encoded = self.freq_encoder(eeg_values, output_hidden_states=output_hidden_states, return_dict=True)
        feature = encoded.pooler_output
        logits = self.classifier(feature)
        if not self.training:
            check_model_outputs(logits, "logits")
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        output = BrainVisEEGClassifierOutput(
            loss=loss, logits=logits, pooler_output=feature, hidden_states=encoded.hidden_states
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "BrainVisFreqEncoderPreTrainedModel",
    "BrainVisFreqEncoderModel",
    "BrainVisFreqEncoderForEEGClassification",
    "amplitude_spectrum",
    "log_spectrum",
]

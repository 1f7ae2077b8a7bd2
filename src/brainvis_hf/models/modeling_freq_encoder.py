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
from .modeling_time_encoder import BrainVisEEGClassifierOutput, check_eeg_values, check_model_outputs, init_linear_like_torch


def amplitude_spectrum(eeg_values: torch.Tensor) -> torch.Tensor:
    """|FFT| of every channel over time, bins 1 .. T // 2 (DC dropped): B x C x T -> B x (T // 2) x C.

    Computed in float32 on the input's device, whatever autocast is active.
    """
    num_samples = eeg_values.shape[-1]
    with torch.autocast(device_type=eeg_values.device.type, enabled=False):
        spectrum = torch.fft.rfft(eeg_values.float(), n=num_samples, dim=-1)
        amplitude = spectrum[..., 1 : num_samples // 2 + 1].abs()
    return amplitude.transpose(1, 2)


class BrainVisFreqEncoderPreTrainedModel(PreTrainedModel):
    config_class = BrainVisFreqEncoderConfig
    config: BrainVisFreqEncoderConfig
    base_model_prefix = "freq_encoder"
    main_input_name = "eeg_values"
    input_modalities = ("time",)
    _no_split_modules = ["BrainVisFreqEncoderModel"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """PyTorch's default initialisation (what the original frequency encoder used)."""
        if isinstance(module, nn.Linear):
            init_linear_like_torch(module)
        elif isinstance(module, nn.LSTM):
            bound = 1.0 / math.sqrt(module.hidden_size)
            for param in module.parameters(recurse=False):
                init.uniform_(param, -bound, bound)


class BrainVisFreqEncoderModel(BrainVisFreqEncoderPreTrainedModel):
    """Frequency branch: `pooler_output` is the B x feature_size feature (ReLU(Linear(last LSTM state)))."""

    def __init__(self, config: BrainVisFreqEncoderConfig):
        super().__init__(config)
        self.lstm = nn.LSTM(
            config.num_channels, config.lstm_hidden_size, num_layers=config.num_lstm_layers, batch_first=True
        )
        self.projection = nn.Linear(config.lstm_hidden_size, config.feature_size)
        self.post_init()

    def forward(
        self,
        eeg_values: torch.Tensor,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        """`last_hidden_state`: B x (T // 2) x lstm_hidden LSTM states; `pooler_output`: the feature."""
        config = self.config
        check_eeg_values(eeg_values, config.num_channels, config.num_samples, dtype=self.dtype)
        spectrum = amplitude_spectrum(eeg_values).to(self.projection.weight.dtype)
        # zero initial state (nn.LSTM's default); the feature reads the last step
        states, _ = self.lstm(spectrum)
        feature = F.relu(self.projection(states[:, -1]))
        if not self.training:
            check_model_outputs(feature, "frequency features")
        output = BaseModelOutputWithPooling(last_hidden_state=states, pooler_output=feature)
        return output if return_dict is not False else output.to_tuple()


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
        return_dict: bool | None = None,
        **kwargs,
    ) -> BrainVisEEGClassifierOutput | tuple:
        feature = self.freq_encoder(eeg_values).pooler_output
        logits = self.classifier(feature)
        if not self.training:
            check_model_outputs(logits, "logits")
        loss = F.cross_entropy(logits.float(), labels.view(-1).long()) if labels is not None else None
        output = BrainVisEEGClassifierOutput(loss=loss, logits=logits, pooler_output=feature)
        return output if return_dict is not False else output.to_tuple()


__all__ = [
    "BrainVisFreqEncoderPreTrainedModel",
    "BrainVisFreqEncoderModel",
    "BrainVisFreqEncoderForEEGClassification",
    "amplitude_spectrum",
]

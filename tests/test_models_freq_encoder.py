"""Frequency encoder: the |FFT| spectrum, the LSTM feature, the class head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from brainvis_hf.models import BrainVisFreqEncoderForEEGClassification, BrainVisFreqEncoderModel
from brainvis_hf.models.modeling_freq_encoder import amplitude_spectrum


def test_amplitude_spectrum_matches_numpy():
    x = torch.randn(2, 5, 440, dtype=torch.float64)
    expected = np.abs(np.fft.fft(x.numpy(), axis=2)[:, :, 1:221]).transpose(0, 2, 1)
    got = amplitude_spectrum(x)
    assert got.shape == (2, 220, 5) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_odd_length_keeps_bins_up_to_half():
    x = torch.randn(1, 3, 11)
    expected = np.abs(np.fft.fft(x.numpy(), axis=2)[:, :, 1:6]).transpose(0, 2, 1)
    np.testing.assert_allclose(amplitude_spectrum(x).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_spectrum_is_float32_under_autocast():
    x = torch.randn(2, 4, 440)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = amplitude_spectrum(x)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, amplitude_spectrum(x))


def test_feature_is_relu_of_projected_last_lstm_state(tiny_freq_config):
    torch.manual_seed(0)
    model = BrainVisFreqEncoderModel(tiny_freq_config).eval()
    x = torch.randn(3, 128, 440)
    out = model(x)
    assert out.pooler_output.shape == (3, 16) and out.last_hidden_state.shape == (3, 220, 16)
    # an LSTM written out step by step, zero initial state
    lstm = model.lstm
    h = c = torch.zeros(3, 16)
    for step in amplitude_spectrum(x).unbind(1):
        gates = step @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + h @ lstm.weight_hh_l0.T + lstm.bias_hh_l0
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
    torch.testing.assert_close(out.pooler_output, F.relu(model.projection(h)), rtol=1e-4, atol=1e-5)
    assert (out.pooler_output >= 0).all()


def test_classifier_and_loss(tiny_freq_config):
    torch.manual_seed(0)
    model = BrainVisFreqEncoderForEEGClassification(tiny_freq_config).eval()
    x, labels = torch.randn(2, 128, 440), torch.tensor([3, 7])
    out = model(x, labels=labels)
    assert out.logits.shape == (2, 40) and out.pooler_output.shape == (2, 16)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))


def test_bad_input_is_refused(tiny_freq_config):
    model = BrainVisFreqEncoderModel(tiny_freq_config)
    with pytest.raises(ValueError, match="eeg_values must have 440 time samples"):
        model(torch.randn(1, 128, 100))

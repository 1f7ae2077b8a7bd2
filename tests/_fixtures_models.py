"""Session fixtures for the models tests (imported by conftest.py); other areas use them too.

* ``tiny_time_config`` / ``tiny_freq_config`` / ``tiny_brainvis_config``: the tiny presets of
  ``hub_configs/tiny`` (hidden 32, 2 layers, 2 heads, 1 regressor layer, codebook 16, LSTM 16,
  feature 16, 128 channels x 440 samples, prompt 77 x 32). Treat them as read-only (deep-copy
  before changing a field).
* ``tiny_align_model``: a seeded ``BrainVisForCLIPAlignment`` of that config in eval mode.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_time_config():
    from brainvis_hf.models import BrainVisTimeEncoderConfig
    from brainvis_hf.presets import preset_dir

    return BrainVisTimeEncoderConfig.from_pretrained(preset_dir("time_encoder", "tiny"))


@pytest.fixture(scope="session")
def tiny_freq_config():
    from brainvis_hf.models import BrainVisFreqEncoderConfig
    from brainvis_hf.presets import preset_dir

    return BrainVisFreqEncoderConfig.from_pretrained(preset_dir("freq_encoder", "tiny"))


@pytest.fixture(scope="session")
def tiny_brainvis_config():
    from brainvis_hf.models import BrainVisConfig
    from brainvis_hf.presets import preset_dir

    return BrainVisConfig.from_pretrained(preset_dir("align", "tiny"))


@pytest.fixture(scope="session")
def tiny_align_model(tiny_brainvis_config):
    import copy

    import torch

    from brainvis_hf.models import BrainVisForCLIPAlignment

    torch.manual_seed(0)
    return BrainVisForCLIPAlignment(copy.deepcopy(tiny_brainvis_config)).eval()


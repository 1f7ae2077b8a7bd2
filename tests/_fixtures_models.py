"""Session fixtures for the models tests (imported by conftest.py); other areas use them too.

* ``tiny_time_config`` / ``tiny_freq_config`` / ``tiny_brainvis_config``: the tiny presets of
  ``hub_configs/tiny`` (hidden 32, 2 layers, 2 heads, 1 regressor layer, codebook 16, LSTM 16,
  feature 16, 128 channels x 440 samples, prompt 77 x 32) with the learning-recipe options
  switched back to the paper's behaviour (:data:`PAPER_BEHAVIOUR`), so that the architecture
  tests test the paper's network. Treat them as read-only (deep-copy before changing a field).
* ``tiny_align_model``: a seeded ``BrainVisForCLIPAlignment`` of that config in eval mode.
"""

from __future__ import annotations

import pytest

# the opt-in recipe fields of the tiny presets, at the paper's values
PAPER_TIME_BEHAVIOUR = {"input_normalization": None, "pooling_segments": 1, "lmm_freeze_embeddings": False}
PAPER_FREQ_BEHAVIOUR = {"spectrum_scaling": None, "spectrum_normalization": None, "readout": "last"}


def paper_behaviour(config):
    """`config` (time, frequency or unified; changed in place and returned) with the paper's behaviour."""
    from brainvis_hf.models import BrainVisConfig, BrainVisTimeEncoderConfig

    if isinstance(config, BrainVisConfig):
        paper_behaviour(config.time_config)
        paper_behaviour(config.freq_config)
        return config
    fields = PAPER_TIME_BEHAVIOUR if isinstance(config, BrainVisTimeEncoderConfig) else PAPER_FREQ_BEHAVIOUR
    for name, value in fields.items():
        setattr(config, name, value)
    return config


@pytest.fixture(scope="session")
def tiny_time_config():
    from brainvis_hf.models import BrainVisTimeEncoderConfig
    from brainvis_hf.presets import preset_dir

    return paper_behaviour(BrainVisTimeEncoderConfig.from_pretrained(preset_dir("time_encoder", "tiny")))


@pytest.fixture(scope="session")
def tiny_freq_config():
    from brainvis_hf.models import BrainVisFreqEncoderConfig
    from brainvis_hf.presets import preset_dir

    return paper_behaviour(BrainVisFreqEncoderConfig.from_pretrained(preset_dir("freq_encoder", "tiny")))


@pytest.fixture(scope="session")
def tiny_brainvis_config():
    from brainvis_hf.models import BrainVisConfig
    from brainvis_hf.presets import preset_dir

    return paper_behaviour(BrainVisConfig.from_pretrained(preset_dir("align", "tiny")))


@pytest.fixture(scope="session")
def tiny_align_model(tiny_brainvis_config):
    import copy

    import torch

    from brainvis_hf.models import BrainVisForCLIPAlignment

    torch.manual_seed(0)
    return BrainVisForCLIPAlignment(copy.deepcopy(tiny_brainvis_config)).eval()


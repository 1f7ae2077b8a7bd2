"""BrainVis configurations: paper defaults, validation messages, nesting, round trips, presets."""

from __future__ import annotations

import json

import pytest
from transformers import AutoConfig

from brainvis_hf.models import (
    EEG_IMAGENET_CLASS_WORDS,
    BrainVisConfig,
    BrainVisFreqEncoderConfig,
    BrainVisTimeEncoderConfig,
)
from brainvis_hf.presets import preset_dir


def test_time_config_paper_defaults():
    config = BrainVisTimeEncoderConfig()
    assert (config.num_channels, config.num_samples, config.wave_length) == (128, 440, 4)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (1024, 8, 16)
    assert config.intermediate_size == 4096
    assert config.hidden_dropout_prob == config.attention_probs_dropout_prob == 0.2
    assert config.enable_res_parameter is True and config.residual_scale_init == 1e-8
    assert (config.mask_ratio, config.codebook_size, config.num_regressor_layers) == (0.75, 660, 4)
    assert (config.momentum, config.regression_loss_weight, config.codebook_loss_weight) == (0.99, 4.0, 2.0)
    assert config.label_smoothing == 0.2 and config.num_labels == 40
    assert config.num_units == 110 and config.num_masked_units == 82
    assert config.mask_mode == "per_batch" and config.padding == "error"


def test_freq_and_unified_defaults():
    freq = BrainVisFreqEncoderConfig()
    assert (freq.num_channels, freq.num_samples, freq.lstm_hidden_size, freq.feature_size) == (128, 440, 128, 128)
    assert freq.num_frequency_bins == 220 and freq.num_labels == 40
    config = BrainVisConfig()
    assert isinstance(config.time_config, BrainVisTimeEncoderConfig)
    assert isinstance(config.freq_config, BrainVisFreqEncoderConfig)
    assert config.num_labels == 40 and config.id2label[0] == "sorrel horse" and config.id2label[39] == "cat"
    assert config.label2id["coffee mug"] == 5
    assert (config.prompt_sequence_length, config.prompt_embed_dim) == (77, 768)
    assert config.eeg_time_window == (20, 460)
    assert config.feature_size == 1024 + 128
    assert len(EEG_IMAGENET_CLASS_WORDS) == 40


def test_class_words_match_the_reference_table():
    from brainvis_hf.data.labels import EEG_IMAGENET_CLASSES

    assert EEG_IMAGENET_CLASS_WORDS == tuple(words for _, words in EEG_IMAGENET_CLASSES)


def test_other_num_labels_gets_generic_names():
    config = BrainVisConfig(num_labels=3)
    assert config.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden_size": 30, "num_attention_heads": 4}, "hidden_size (30) must be a multiple of num_attention_heads (4)"),
        ({"num_samples": 441}, "num_samples (441) is not a multiple of wave_length (4)"),
        ({"padding": "reflect"}, "padding must be one of ('error', 'zeros', 'truncate'), got 'reflect'"),
        ({"mask_mode": "random"}, "mask_mode must be one of ('per_batch', 'per_sample'), got 'random'"),
        ({"mask_ratio": 1.0}, "mask_ratio must be in (0, 1), got 1.0"),
        ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob must be in [0, 1), got 1.5"),
        ({"num_hidden_layers": 0}, "num_hidden_layers must be a positive integer, got 0"),
    ],
)
def test_time_config_validation(kwargs, message):
    with pytest.raises(ValueError) as err:
        BrainVisTimeEncoderConfig(**kwargs)
    assert message in str(err.value)


def test_padding_policies_define_the_number_of_units():
    assert BrainVisTimeEncoderConfig(num_samples=441, padding="zeros").num_units == 111
    assert BrainVisTimeEncoderConfig(num_samples=441, padding="truncate").num_units == 110


def test_branches_must_agree_on_the_input_shape():
    with pytest.raises(ValueError, match=r"time_config.num_channels \(128\) and freq_config.num_channels \(64\)"):
        BrainVisConfig(freq_config={"num_channels": 64})


def test_nested_round_trip(tmp_path):
    config = BrainVisConfig(
        time_config={"hidden_size": 64, "num_attention_heads": 4, "mask_mode": "per_sample"},
        freq_config={"feature_size": 32},
        prompt_embed_dim=32,
        id2label={0: "a", 1: "b"},
    )
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "brainvis" and saved["time_config"]["hidden_size"] == 64
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, BrainVisConfig)
    assert loaded.time_config.hidden_size == 64 and loaded.time_config.mask_mode == "per_sample"
    assert loaded.freq_config.feature_size == 32 and loaded.feature_size == 96
    assert loaded.id2label == {0: "a", 1: "b"} and loaded.num_labels == 2
    assert loaded.prompt_embed_dim == 32 and loaded.eeg_time_window == (20, 460)


@pytest.mark.parametrize("preset", ["paper", "tiny"])
@pytest.mark.parametrize(
    ("name", "config_class", "architecture"),
    [
        ("time_encoder", BrainVisTimeEncoderConfig, "BrainVisTimeEncoderForMaskedModeling"),
        ("freq_encoder", BrainVisFreqEncoderConfig, "BrainVisFreqEncoderForEEGClassification"),
        ("timefreq", BrainVisConfig, "BrainVisForEEGClassification"),
        ("align", BrainVisConfig, "BrainVisForCLIPAlignment"),
    ],
)
def test_hub_config_presets(preset, name, config_class, architecture):
    folder = preset_dir(name, preset)
    config = AutoConfig.from_pretrained(folder)
    assert type(config) is config_class and config.architectures == [architecture]
    if preset == "paper":
        assert (folder / "README.md").is_file()
        expected = config_class().to_dict() | {"architectures": [architecture]}
        got = config.to_dict()
        for key in ("_name_or_path", "transformers_version"):
            got.pop(key, None), expected.pop(key, None)
        assert got == expected


def test_tiny_alignment_preset_matches_the_tiny_text_encoder_width(tiny_brainvis_config):
    config = tiny_brainvis_config
    assert (config.prompt_sequence_length, config.prompt_embed_dim) == (77, 32)
    assert (config.num_channels, config.num_samples) == (128, 440)
    time = config.time_config
    assert (time.hidden_size, time.num_hidden_layers, time.num_attention_heads) == (32, 2, 2)
    assert (time.num_regressor_layers, time.codebook_size) == (1, 16)

"""Folders saved by an earlier release still load, and compute what they computed then.

``tests/fixtures/saved_v1/`` holds tiny time-encoder, frequency-encoder, timefreq and align
folders written by ``tests/fixtures/make_saved_v1.py`` (the code of v0.1.0), a fixed EEG input
and the outputs that code returned. A refactor that renames a weight, a configuration field or
a module an ``auto_map`` entry names fails here. Do not regenerate the fixture to make this pass.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoModelForPreTraining

import brainvis_hf.models as models

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "saved_v1"
EXPECTED = load_file(str(FIXTURE / "expected.safetensors"))
EEG = load_file(str(FIXTURE / "inputs.safetensors"))["eeg_values"]
MANIFEST = json.loads((FIXTURE / "manifest.json").read_text())

# folder -> (config class, the class AutoModel returns, the class it was saved as)
FOLDERS = {
    "time_encoder": ("BrainVisTimeEncoderConfig", "BrainVisTimeEncoderModel", "BrainVisTimeEncoderForMaskedModeling"),
    "freq_encoder": ("BrainVisFreqEncoderConfig", "BrainVisFreqEncoderModel", "BrainVisFreqEncoderForEEGClassification"),
    "timefreq": ("BrainVisConfig", "BrainVisModel", "BrainVisForEEGClassification"),
    "align": ("BrainVisConfig", "BrainVisModel", "BrainVisForCLIPAlignment"),
}
LOADS = [(folder, cls) for folder, classes in MANIFEST["folders"].items() for cls in classes]


def test_the_fixture_is_complete():
    assert set(MANIFEST["folders"]) == set(FOLDERS)
    assert len(EXPECTED) == 8 and EEG.shape == (2, 8, 40)
    for folder in FOLDERS:
        assert {p.name for p in (FIXTURE / folder).iterdir()} == {"config.json", "model.safetensors"}


@pytest.mark.parametrize("folder", FOLDERS)
def test_the_saved_class_loads_every_weight(folder):
    saved_class = getattr(models, FOLDERS[folder][2])
    model, info = saved_class.from_pretrained(FIXTURE / folder, output_loading_info=True)
    assert type(model) is saved_class
    assert not info["missing_keys"], info["missing_keys"]
    assert not info["unexpected_keys"], info["unexpected_keys"]
    assert not info["mismatched_keys"], info["mismatched_keys"]


@pytest.mark.parametrize("folder,class_name", LOADS, ids=[f"{f}-{c}" for f, c in LOADS])
@torch.no_grad()
def test_outputs_match_the_release_that_saved_them(folder, class_name):
    model = getattr(models, class_name).from_pretrained(FIXTURE / folder).eval()
    output = model(eeg_values=EEG.clone())
    prefix = f"{folder}/{class_name}/"
    keys = [k for k in EXPECTED if k.startswith(prefix)]
    assert keys, f"no expected outputs for {prefix}"
    for key in keys:
        got = output[key[len(prefix):]].float()
        torch.testing.assert_close(got, EXPECTED[key], rtol=1e-4, atol=1e-5, msg=lambda m: f"{key}: {m}")


@pytest.mark.parametrize("folder", FOLDERS)
@torch.no_grad()
def test_auto_classes_load_the_folders(folder):
    config_name, base_name, _ = FOLDERS[folder]
    assert type(AutoConfig.from_pretrained(FIXTURE / folder)).__name__ == config_name
    model = AutoModel.from_pretrained(FIXTURE / folder).eval()
    assert type(model).__name__ == base_name
    key = f"{folder}/{base_name}/pooler_output"
    if key in EXPECTED:  # the base model of a classifier folder computes the classifier's features
        torch.testing.assert_close(model(eeg_values=EEG.clone()).pooler_output, EXPECTED[key], rtol=1e-4, atol=1e-5)


def test_pretraining_auto_class_loads_the_lmm_folder():
    model, info = AutoModelForPreTraining.from_pretrained(FIXTURE / "time_encoder", output_loading_info=True)
    assert type(model).__name__ == "BrainVisTimeEncoderForMaskedModeling"
    assert not info["missing_keys"] and not info["unexpected_keys"]


@pytest.mark.parametrize("folder", FOLDERS)
def test_auto_map_entries_name_modules_that_exist(folder):
    """``trust_remote_code`` users resolve ``auto_map`` by module name: the modules must keep them."""
    auto_map = json.loads((FIXTURE / folder / "config.json").read_text())["auto_map"]
    assert set(auto_map) == {"AutoConfig", "AutoModel"}
    for reference in auto_map.values():
        module, name = reference.rsplit(".", 1)
        assert hasattr(importlib.import_module(f"brainvis_hf.models.{module}"), name), reference

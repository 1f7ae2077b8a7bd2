"""The package's public surface: every exported name resolves, and `brainvis` lists every job."""

import subprocess
import sys

import pytest

import brainvis_hf


@pytest.mark.parametrize("name", sorted(set(brainvis_hf.__all__) - {"__version__"}))
def test_every_public_name_resolves(name):
    assert getattr(brainvis_hf, name) is not None
    assert name in dir(brainvis_hf)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        brainvis_hf.NoSuchThing  # noqa: B018


def test_import_does_not_pull_in_diffusers_or_datasets():
    code = "import sys, brainvis_hf; print('diffusers' in sys.modules, 'datasets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_auto_classes_are_registered_on_import():
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model("brainvis_time_encoder", hidden_size=16, num_attention_heads=2,
                                  intermediate_size=32, num_hidden_layers=1)
    assert type(AutoModel.from_config(config)).__name__ == "BrainVisTimeEncoderModel"


def test_cli_lists_every_subcommand(capsys):
    from brainvis_hf.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for command in ("data", "train", "generate", "evaluate", "convert-original", "demo"):
        assert command in text

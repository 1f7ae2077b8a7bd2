"""Converting the original BrainVis checkpoints (section 7 layout) reproduces the original outputs."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from brainvis_hf.cli import main as cli_main
from brainvis_hf.models import (
    BrainVisForCLIPAlignment,
    BrainVisForEEGClassification,
    BrainVisFreqEncoderForEEGClassification,
    BrainVisTimeEncoderForEEGClassification,
    BrainVisTimeEncoderForMaskedModeling,
)
from brainvis_hf.models.convert_original import convert_original_checkpoints, load_original_state_dict
from original_brainvis import FreqEncoder, OriginalArgs, TimeEncoder, build_original_align


ARGS = OriginalArgs(d_model=32, attn_heads=2, layers=2, vocab_size=16, reg_layers=1)


def _randomise_scales(module: torch.nn.Module) -> None:
    """Give the learnable residual scales trained-looking values so that every block matters."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith(".a"):
                param.uniform_(0.5, 1.5)


@pytest.fixture(scope="module")
def original_align():
    torch.manual_seed(0)
    model = build_original_align(ARGS, lstm_size=16, output_size=16, prompt_size=77 * 32)
    _randomise_scales(model)
    return model.eval()


@pytest.fixture(scope="module")
def eeg():
    return torch.randn(3, 128, 440, generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope="module")
def checkpoints(original_align, tmp_path_factory):
    """The four original files: state dicts, and the frequency encoder as a whole pickled module."""
    root = tmp_path_factory.mktemp("original")
    timefreq = original_align.pretrained_model
    paths = {
        "time": root / "pretrain_model.pkl",
        "freq": root / "lstm_subject0.pth",
        "timefreq": root / "timefreqmodel.pkl",
        "align": root / "alignmodel.pkl",
    }
    torch.save(timefreq.pretrained_model_time.state_dict(), paths["time"])
    torch.save(timefreq.pretrained_model_freq, paths["freq"])  # whole module, as the original does
    torch.save(timefreq.state_dict(), paths["timefreq"])
    torch.save(original_align.state_dict(), paths["align"])
    return paths


@pytest.fixture(scope="module")
def converted(checkpoints, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted")
    dropped = {}
    written = convert_original_checkpoints(
        **{k: str(v) for k, v in checkpoints.items()}, output_dir=out, num_heads=2,
        on_dropped=lambda name, keys: dropped.setdefault(name, keys),
    )  # fmt: skip
    return written, dropped


def test_state_dict_layout_is_section_7(original_align):
    keys = set(original_align.state_dict())
    for key in (
        "pretrained_model.pretrained_model_time.input_projection.weight",
        "pretrained_model.pretrained_model_time.position.pe.weight",
        "pretrained_model.pretrained_model_time.mask_token",
        "pretrained_model.pretrained_model_time.encoder.TRMs.1.attn.linear_layers.2.bias",
        "pretrained_model.pretrained_model_time.encoder.TRMs.0.attn.output_linear.weight",
        "pretrained_model.pretrained_model_time.encoder.TRMs.0.ffn.linear1.weight",
        "pretrained_model.pretrained_model_time.encoder.TRMs.0.skipconnect1.a",
        "pretrained_model.pretrained_model_time.momentum_encoder.TRMs.1.skipconnect2.norm.bias",
        "pretrained_model.pretrained_model_time.tokenizer.center.weight",
        "pretrained_model.pretrained_model_time.reg.layers.0.attn.linear_layers.0.weight",
        "pretrained_model.pretrained_model_time.predict_head.weight",
        "pretrained_model.pretrained_model_time.channelmapping.conv1.weight",
        "pretrained_model.pretrained_model_time.dimmapping.weight",
        "pretrained_model.pretrained_model_freq.lstm.weight_ih_l0",
        "pretrained_model.pretrained_model_freq.output.weight",
        "pretrained_model.pretrained_model_freq.classifier.weight",
        "pretrained_model.fc01.weight",
        "fc01.weight", "fc05.bias", "fc6.weight",
    ):  # fmt: skip
        assert key in keys, key
    assert original_align.state_dict()["pretrained_model.pretrained_model_time.encoder.TRMs.0.skipconnect1.a"].shape == ()


def test_written_folders(converted):
    written, dropped = converted
    assert sorted(written) == ["align", "freq_encoder", "time_encoder", "timefreq"]
    for folder in written.values():
        assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert sorted(dropped["time_encoder"]) == [
        "channelmapping.conv1.bias", "channelmapping.conv1.weight", "channelmapping.conv2.bias",
        "channelmapping.conv2.weight", "dimmapping.bias", "dimmapping.weight",
        "predict_head.bias", "predict_head.weight",
    ]  # fmt: skip
    assert dropped["freq_encoder"] == []
    assert "pretrained_model_freq.classifier.weight" in dropped["timefreq"]
    assert "pretrained_model_time.momentum_encoder.TRMs.0.attn.output_linear.weight" in dropped["timefreq"]
    assert "pretrained_model.pretrained_model_time.dimmapping.weight" in dropped["align"]


def test_time_encoder_reproduces_the_pooled_feature(converted, original_align, eeg):
    original_time = original_align.pretrained_model.pretrained_model_time
    model = BrainVisTimeEncoderForMaskedModeling.from_pretrained(converted[0]["time_encoder"]).eval()
    assert model.config.hidden_size == 32 and model.config.num_attention_heads == 2
    assert model.config.num_units == 110 and model.config.codebook_size == 16
    with torch.no_grad():
        _, pooled, _ = original_time(eeg.transpose(1, 2))
        ours = model.time_encoder(eeg)
    torch.testing.assert_close(ours.pooler_output, pooled, rtol=1e-5, atol=1e-5)


def test_lmm_pieces_reproduce_the_original_pretraining_pass(converted, original_align, eeg):
    original_time = original_align.pretrained_model.pretrained_model_time
    model = BrainVisTimeEncoderForMaskedModeling.from_pretrained(converted[0]["time_encoder"]).eval()
    permutation = np.random.default_rng(0).permutation(110)
    with torch.no_grad():
        (rep_masked, prediction), (logits, _) = original_time.pretrain_forward(eeg.transpose(1, 2), permutation)
        emb = model.time_encoder.embeddings
        units = emb.add_positions(emb.project(eeg))
        visible_idx, masked_idx = torch.as_tensor(permutation[:28]), torch.as_tensor(permutation[28:])
        ours_masked = model.momentum_encoder(units[:, masked_idx])[0]
        rep_visible = model.time_encoder.encoder(units[:, visible_idx])[0]
        queries = (model.mask_token + emb.position_embeddings.weight)[masked_idx].expand(3, -1, -1)
        for layer in model.regressor:
            queries = layer(queries, rep_visible)[0]
    torch.testing.assert_close(ours_masked, rep_masked, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(queries, prediction, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.tokenizer(queries), logits, rtol=1e-5, atol=1e-5)


def test_time_encoder_as_classifier_keeps_predict_head(checkpoints, original_align, eeg, tmp_path):
    written = convert_original_checkpoints(time=checkpoints["time"], output_dir=tmp_path, num_heads=2,
                                           time_task="classification", on_dropped=lambda *a: None)  # fmt: skip
    model = BrainVisTimeEncoderForEEGClassification.from_pretrained(written["time_encoder"]).eval()
    with torch.no_grad():
        _, _, scores = original_align.pretrained_model.pretrained_model_time(eeg.transpose(1, 2))
    torch.testing.assert_close(model(eeg).logits, scores, rtol=1e-5, atol=1e-5)


def test_freq_encoder_from_a_pickled_module(converted, original_align, eeg):
    original_freq = original_align.pretrained_model.pretrained_model_freq
    model = BrainVisFreqEncoderForEEGClassification.from_pretrained(converted[0]["freq_encoder"]).eval()
    assert (model.config.lstm_hidden_size, model.config.feature_size, model.config.num_samples) == (16, 16, 440)
    with torch.no_grad():
        scores, feature = original_freq(eeg.transpose(1, 2))
        ours = model(eeg)
    torch.testing.assert_close(ours.pooler_output, feature, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.logits, scores, rtol=1e-5, atol=1e-5)


def test_unified_logits(converted, original_align, eeg):
    model = BrainVisForEEGClassification.from_pretrained(converted[0]["timefreq"]).eval()
    with torch.no_grad():
        _, joint, scores = original_align.pretrained_model(eeg.transpose(1, 2))
        ours = model(eeg)
    torch.testing.assert_close(ours.pooler_output, joint, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.logits, scores, rtol=1e-5, atol=1e-5)


def test_alignment_output(converted, original_align, eeg):
    model = BrainVisForCLIPAlignment.from_pretrained(converted[0]["align"]).eval()
    assert (model.config.prompt_sequence_length, model.config.prompt_embed_dim) == (77, 32)
    with torch.no_grad():
        expected = original_align(eeg.transpose(1, 2))
        ours = model(eeg)
    torch.testing.assert_close(ours.prompt_embeds.reshape(3, -1), expected, rtol=1e-5, atol=1e-5)


def test_unexpected_and_missing_keys_fail_loudly(checkpoints, tmp_path):
    state = torch.load(checkpoints["align"], weights_only=True)
    state["fc07.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "extra.pkl")
    with pytest.raises(ValueError, match=r"Unexpected keys in the alignment checkpoint: \['fc07.weight'\]"):
        convert_original_checkpoints(align=tmp_path / "extra.pkl", output_dir=tmp_path / "out", num_heads=2)
    state = torch.load(checkpoints["align"], weights_only=True)
    del state["fc03.bias"]
    torch.save(state, tmp_path / "missing.pkl")
    with pytest.raises(ValueError, match=r"missing \['prompt_projector.fc3.bias'\]"):
        convert_original_checkpoints(align=tmp_path / "missing.pkl", output_dir=tmp_path / "out", num_heads=2)
    state = torch.load(checkpoints["time"], weights_only=True)
    state["encoder.TRMs.0.attn.rotary.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "odd_time.pkl")
    with pytest.raises(ValueError, match=r"Unexpected keys in the time encoder checkpoint"):
        convert_original_checkpoints(time=tmp_path / "odd_time.pkl", output_dir=tmp_path / "out", num_heads=2)


def test_wrong_head_count_and_nothing_to_do(checkpoints, tmp_path):
    with pytest.raises(ValueError, match=r"hidden_size \(32\) must be a multiple of num_attention_heads \(3\)"):
        convert_original_checkpoints(time=checkpoints["time"], output_dir=tmp_path, num_heads=3)
    with pytest.raises(ValueError, match="Nothing to convert"):
        convert_original_checkpoints(output_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="Original checkpoint not found"):
        convert_original_checkpoints(time=tmp_path / "nope.pkl", output_dir=tmp_path)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"lstm.weight_ih_l0": _Exploit(marker)}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match=r"Refusing to load global (posix|os|nt)\.system"):
        convert_original_checkpoints(freq=tmp_path / "evil.pth", output_dir=tmp_path / "out")
    assert not marker.exists()
    # a state-dict position (time/timefreq/align) never tries the restricted path at all
    with pytest.raises(ValueError, match="is not a plain state dict"):
        load_original_state_dict(tmp_path / "evil.pth")
    assert not marker.exists()


class Gadget(torch.nn.Module):
    """A module class the restricted unpickler does not know."""


def test_restricted_unpickler_refuses_unknown_classes(tmp_path):
    module = torch.nn.Sequential(torch.nn.Linear(2, 2))
    module.extra = Gadget()
    path = tmp_path / "gadget.pth"
    with open(path, "wb") as handle:
        pickle.dump({"x": 1}, handle, protocol=2)  # not a torch file: refused as a state dict and as a module
    with pytest.raises(ValueError):
        load_original_state_dict(path, allow_pickled_module=True)
    torch.save(module, path)
    with pytest.raises(ValueError, match=r"Refusing to load global .*Gadget"):
        load_original_state_dict(path, allow_pickled_module=True)


def test_cli(checkpoints, tmp_path, capsys):
    code = cli_main(["convert-original", "--align", str(checkpoints["align"]), "--freq", str(checkpoints["freq"]),
                     "--output", str(tmp_path), "--num-heads", "2"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert f"wrote align: {tmp_path / 'align'}" in printed
    assert "pretrained_model.pretrained_model_time.channelmapping.conv1.weight" in printed
    assert (tmp_path / "align" / "model.safetensors").is_file()
    assert cli_main(["convert-original", "--output", str(tmp_path)]) == 2
    assert "Nothing to convert" in capsys.readouterr().err


def test_reference_time_encoder_momentum_helpers():
    torch.manual_seed(0)
    model = TimeEncoder(ARGS)
    model.copy_weight()
    assert all(torch.equal(a, b) for a, b in zip(model.encoder.parameters(), model.momentum_encoder.parameters()))
    assert isinstance(FreqEncoder(128, 16, 1, 16), torch.nn.Module)

"""Unified model, classifier and CLIP alignment: outputs, losses, Auto classes, stage-to-stage loading."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForPreTraining

from brainvis_hf.models import (
    BrainVisConfig,
    BrainVisForCLIPAlignment,
    BrainVisForEEGClassification,
    BrainVisFreqEncoderForEEGClassification,
    BrainVisFreqEncoderModel,
    BrainVisModel,
    BrainVisTimeEncoderForEEGClassification,
    BrainVisTimeEncoderForMaskedModeling,
    BrainVisTimeEncoderModel,
)


@pytest.fixture(scope="module")
def eeg():
    return torch.randn(2, 128, 440, generator=torch.Generator().manual_seed(2))


def test_joint_feature_is_the_concatenation(tiny_brainvis_config, eeg):
    torch.manual_seed(0)
    model = BrainVisModel(copy.deepcopy(tiny_brainvis_config)).eval()
    out = model(eeg)
    assert out.pooler_output.shape == (2, 48)
    expected = torch.cat([model.time_encoder(eeg).pooler_output, model.freq_encoder(eeg).pooler_output], dim=1)
    torch.testing.assert_close(out.pooler_output, expected)


def test_alignment_outputs_and_loss_parts(tiny_align_model, eeg):
    model = tiny_align_model
    coarse, fine = torch.randn(2, 77, 32), torch.randn(2, 77, 32)
    labels = torch.tensor([4, 9])
    out = model(eeg, labels=labels, coarse_embeds=coarse, fine_embeds=fine)
    assert out.prompt_embeds.shape == (2, 77, 32) and out.logits.shape == (2, 40)

    feature = model.brainvis(eeg).pooler_output
    logits = model.classifier(feature)
    torch.testing.assert_close(out.logits, logits)
    p = model.prompt_projector
    h1 = torch.tanh(p.fc1(torch.cat([feature, logits], 1)))
    h2 = torch.tanh(p.fc2(h1))
    h3 = torch.tanh(p.fc3(h2) + h1)
    h4 = torch.tanh(p.fc4(h3) + h2)
    h5 = torch.tanh(p.fc5(h4) + h3)
    torch.testing.assert_close(out.prompt_embeds, p.output(h5).view(2, 77, 32))

    flat = out.prompt_embeds.reshape(2, -1)
    cos_loss = torch.nn.CosineEmbeddingLoss()
    ones = torch.ones(2)
    torch.testing.assert_close(out.mse_coarse_loss, F.mse_loss(flat, coarse.reshape(2, -1)))
    torch.testing.assert_close(out.mse_fine_loss, F.mse_loss(flat, fine.reshape(2, -1)))
    torch.testing.assert_close(out.cosine_coarse_loss, cos_loss(flat, coarse.reshape(2, -1), ones))
    torch.testing.assert_close(out.cosine_fine_loss, cos_loss(flat, fine.reshape(2, -1), ones))
    torch.testing.assert_close(
        out.loss, out.mse_coarse_loss + out.mse_fine_loss + out.cosine_coarse_loss + out.cosine_fine_loss
    )
    torch.testing.assert_close(out.classification_loss, F.cross_entropy(logits, labels))


def test_alignment_without_targets_has_no_loss(tiny_align_model, eeg):
    out = tiny_align_model(eeg)
    assert out.loss is None and out.mse_coarse_loss is None and out.classification_loss is None


def test_optional_classification_term(tiny_brainvis_config, eeg):
    torch.manual_seed(0)
    config = copy.deepcopy(tiny_brainvis_config)
    config.alignment_classification_loss_weight = 0.5
    model = BrainVisForCLIPAlignment(config).eval()
    coarse = fine = torch.randn(2, 77, 32)
    out = model(eeg, labels=torch.tensor([0, 1]), coarse_embeds=coarse, fine_embeds=fine)
    clip = out.mse_coarse_loss + out.mse_fine_loss + out.cosine_coarse_loss + out.cosine_fine_loss
    torch.testing.assert_close(out.loss, clip + 0.5 * out.classification_loss)


def test_optional_centred_term_sees_only_what_differs_between_samples(tiny_brainvis_config, eeg):
    torch.manual_seed(0)
    config = copy.deepcopy(tiny_brainvis_config)
    assert config.alignment_centred_loss_weight == 0.0  # the paper's loss by default
    config.alignment_centred_loss_weight = 2.0
    model = BrainVisForCLIPAlignment(config).eval()
    coarse, fine = torch.randn(2, 77, 32), torch.randn(2, 77, 32)
    out = model(eeg, coarse_embeds=coarse, fine_embeds=fine)
    pred = out.prompt_embeds.reshape(2, -1)
    for kind, target in (("coarse", coarse), ("fine", fine)):
        target = target.reshape(2, -1)
        expected = 1 - F.cosine_similarity(pred - pred.mean(0), target - target.mean(0), dim=1).mean()
        torch.testing.assert_close(getattr(out, f"cosine_centred_{kind}_loss"), expected)
    paper = out.mse_coarse_loss + out.mse_fine_loss + out.cosine_coarse_loss + out.cosine_fine_loss
    torch.testing.assert_close(out.loss, paper + 2.0 * (out.cosine_centred_coarse_loss + out.cosine_centred_fine_loss))
    # a part shared by every sample of the batch changes the paper's terms, not the centred one
    shared = 10 * torch.randn(1, 77, 32)
    shifted = model(eeg, coarse_embeds=coarse + shared, fine_embeds=fine + shared)
    torch.testing.assert_close(shifted.cosine_centred_coarse_loss, out.cosine_centred_coarse_loss)
    assert shifted.mse_coarse_loss > out.mse_coarse_loss + 10
    # one sample has nothing to centre on: the term is left out
    single = model(eeg[:1], coarse_embeds=coarse[:1])
    assert single.cosine_centred_coarse_loss is None
    torch.testing.assert_close(single.loss, single.mse_coarse_loss + single.cosine_coarse_loss)


def test_centred_weight_must_not_be_negative():
    with pytest.raises(ValueError, match="alignment_centred_loss_weight must be >= 0, got -1.0"):
        BrainVisConfig(alignment_centred_loss_weight=-1.0)


def test_target_shape_is_checked(tiny_align_model, eeg):
    with pytest.raises(ValueError, match=r"coarse_embeds must have shape \(2, 77, 32\), got \(2, 77, 768\)"):
        tiny_align_model(eeg, coarse_embeds=torch.zeros(2, 77, 768))


def test_save_load_round_trip_and_auto_classes(tiny_align_model, eeg, tmp_path):
    tiny_align_model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = BrainVisForCLIPAlignment.from_pretrained(tmp_path)
    for key, value in tiny_align_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    torch.testing.assert_close(loaded(eeg).prompt_embeds, tiny_align_model(eeg).prompt_embeds)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), BrainVisConfig)
    base = AutoModel.from_pretrained(tmp_path)  # local registration: the base model, no remote code
    assert type(base) is BrainVisModel
    torch.testing.assert_close(base(eeg).pooler_output, tiny_align_model.brainvis(eeg).pooler_output)


def test_auto_classes_for_the_branches(tiny_time_config, tiny_freq_config, tmp_path):
    torch.manual_seed(0)
    BrainVisTimeEncoderForMaskedModeling(tiny_time_config).save_pretrained(tmp_path / "lmm")
    BrainVisFreqEncoderForEEGClassification(tiny_freq_config).save_pretrained(tmp_path / "freq")
    assert type(AutoModelForPreTraining.from_pretrained(tmp_path / "lmm")) is BrainVisTimeEncoderForMaskedModeling
    assert type(AutoModel.from_pretrained(tmp_path / "lmm")) is BrainVisTimeEncoderModel
    assert type(AutoModel.from_pretrained(tmp_path / "freq")) is BrainVisFreqEncoderModel


def test_stage_to_stage_initialisation(tiny_time_config, tiny_freq_config, eeg, tmp_path):
    torch.manual_seed(0)
    lmm = BrainVisTimeEncoderForMaskedModeling(tiny_time_config).eval()
    lmm.save_pretrained(tmp_path / "lmm")

    # LMM folder -> supervised time classifier: encoder kept, LMM parts unused, head new
    time_clf, info = BrainVisTimeEncoderForEEGClassification.from_pretrained(tmp_path / "lmm", output_loading_info=True)
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias"}
    assert any(k.startswith("momentum_encoder.") for k in info["unexpected_keys"])
    assert "mask_token" in info["unexpected_keys"]
    torch.testing.assert_close(time_clf.time_encoder(eeg).pooler_output, lmm.time_encoder(eeg).pooler_output)
    time_clf.save_pretrained(tmp_path / "time")

    freq = BrainVisFreqEncoderForEEGClassification(tiny_freq_config).eval()
    freq.save_pretrained(tmp_path / "freq")

    # time + freq folders -> unified classifier
    unified = BrainVisForEEGClassification.from_encoders(tmp_path / "time", tmp_path / "freq", prompt_embed_dim=32)
    unified.eval()
    expected = torch.cat([time_clf.time_encoder(eeg).pooler_output, freq.freq_encoder(eeg).pooler_output], 1)
    torch.testing.assert_close(unified.brainvis(eeg).pooler_output, expected)
    assert unified.config.prompt_embed_dim == 32 and unified.config.id2label[0] == "sorrel horse"
    # from models in memory too
    again = BrainVisForEEGClassification.from_encoders(time_clf, freq.freq_encoder, prompt_embed_dim=32).eval()
    torch.testing.assert_close(again.brainvis(eeg).pooler_output, expected)
    unified.save_pretrained(tmp_path / "unified")

    # unified folder -> alignment model: the projector is new, the rest identical
    align, info = BrainVisForCLIPAlignment.from_pretrained(tmp_path / "unified", output_loading_info=True)
    assert info["unexpected_keys"] == [] or set(info["unexpected_keys"]) == set()
    assert info["missing_keys"] and all(k.startswith("prompt_projector.") for k in info["missing_keys"])
    torch.testing.assert_close(align(eeg).logits, unified(eeg).logits)
    assert align(eeg).prompt_embeds.shape == (2, 77, 32)


def test_from_encoders_refuses_other_objects(tiny_freq_config):
    with pytest.raises(ValueError, match="Expected a folder, a BrainVisTimeEncoderModel"):
        BrainVisForEEGClassification.from_encoders(object(), BrainVisFreqEncoderModel(tiny_freq_config))


def test_bf16_weights_with_autocast(tiny_align_model, eeg):
    model = copy.deepcopy(tiny_align_model).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(eeg)
    reference = tiny_align_model(eeg)
    cosine = F.cosine_similarity(out.prompt_embeds.float().flatten(1), reference.prompt_embeds.flatten(1), dim=1)
    assert cosine.min() > 0.99
    assert torch.isfinite(out.logits.float()).all()


def test_gradient_checkpointing_on_the_alignment_model(tiny_brainvis_config, eeg):
    torch.manual_seed(0)
    model = BrainVisForCLIPAlignment(copy.deepcopy(tiny_brainvis_config)).train()
    target = torch.randn(2, 77, 32)

    def gradients():
        model.zero_grad()
        torch.manual_seed(4)
        model(eeg, coarse_embeds=target, fine_embeds=target).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = gradients()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    checkpointed = gradients()
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)

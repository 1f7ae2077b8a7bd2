"""The opt-in oneDNN CPU kernels (`brainvis_hf.models.cpu_kernels`): off by default, equal to the
plain path, safe with PEFT LoRA and deepcopy, and never part of the remote code of a saved folder."""

from __future__ import annotations

import copy
import functools
import json
import re
import subprocess
import sys

import pytest
import torch

from brainvis_hf.models import BrainVisForCLIPAlignment, BrainVisTimeEncoderConfig
from brainvis_hf.models.cpu_kernels import (
    cpu_kernels,
    cpu_kernels_enabled,
    disable_cpu_kernels,
    dropout,
    packed_weight_cache,
)

onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")


@pytest.fixture(scope="module")
def eeg():
    return torch.randn(2, 128, 440, generator=torch.Generator().manual_seed(2))


@pytest.fixture()
def align_model(tiny_brainvis_config):
    torch.manual_seed(0)
    return BrainVisForCLIPAlignment(copy.deepcopy(tiny_brainvis_config)).eval()


def _query(model):
    return model.brainvis.time_encoder.encoder.layers[0].attention.query


def test_models_run_plain_pytorch_by_default(align_model, tmp_path):
    assert not cpu_kernels_enabled(align_model)
    align_model.save_pretrained(tmp_path)
    assert not cpu_kernels_enabled(BrainVisForCLIPAlignment.from_pretrained(tmp_path))
    # the remote code of a saved folder neither holds nor imports the kernels
    assert not (tmp_path / "cpu_kernels.py").exists()
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    for reference in auto_map.values():
        source = (tmp_path / (reference.rpartition(".")[0] + ".py")).read_text()
        assert not re.search(r"^\s*(from|import)\s+\S*cpu_kernels", source, flags=re.MULTILINE)


def test_importing_the_models_does_not_load_the_kernels():
    code = "import sys, brainvis_hf.models; print('brainvis_hf.models.cpu_kernels' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@onednn
def test_inference_path_matches_the_plain_kernels_and_caches_packed_weights(align_model, eeg):
    with torch.no_grad():
        plain = align_model(eeg)
        assert align_model.enable_cpu_kernels() is align_model
        assert cpu_kernels_enabled(align_model)
        fast = align_model(eeg)
    torch.testing.assert_close(fast.prompt_embeds, plain.prompt_embeds, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.logits, plain.logits, rtol=1e-5, atol=1e-6)
    query = _query(align_model)
    assert packed_weight_cache(query) is not None  # the packed path was taken
    with torch.no_grad():
        query.weight.mul_(1.0)  # an in-place change invalidates the packed copy
        align_model(eeg)
    assert packed_weight_cache(query)[0][1] == query.weight._version
    align_model.disable_cpu_kernels()
    assert not cpu_kernels_enabled(align_model) and packed_weight_cache(query) is None
    with torch.no_grad():
        torch.testing.assert_close(align_model(eeg).prompt_embeds, plain.prompt_embeds)


@onednn
def test_deepcopy_rebinds_the_kernels_to_the_copy(align_model, eeg):
    align_model.enable_cpu_kernels()
    with torch.no_grad():
        align_model(eeg)
    clone = copy.deepcopy(align_model)  # the packed cache never travels with the model
    forward = _query(clone).__dict__["forward"]
    assert isinstance(forward, functools.partial) and forward.args[0] is _query(clone)
    with torch.no_grad():
        _query(clone).weight.add_(1.0)
        changed = clone(eeg).prompt_embeds
        torch.testing.assert_close(changed, disable_cpu_kernels(clone)(eeg).prompt_embeds, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(changed, align_model(eeg).prompt_embeds)


def test_context_manager_restores_the_plain_kernels(align_model, eeg):
    with cpu_kernels(align_model) as model:
        assert model is align_model and cpu_kernels_enabled(align_model)
    assert not cpu_kernels_enabled(align_model)
    align_model.enable_cpu_kernels()
    with cpu_kernels(align_model):
        pass
    assert cpu_kernels_enabled(align_model)  # it was on before: stays on


@onednn
def test_training_mode_never_uses_the_inference_cache(align_model, eeg):
    align_model.enable_cpu_kernels().train()
    with torch.no_grad():
        align_model(eeg)
    assert packed_weight_cache(_query(align_model)) is None


@onednn
def test_gradients_equal_the_plain_kernels(align_model, eeg):
    """fp32 autograd through `_OneDNNLinearFunction` (eval mode: no dropout) gives the plain gradients."""

    def gradients():
        align_model.zero_grad(set_to_none=True)
        target = torch.ones(2, 77, align_model.config.prompt_embed_dim)
        align_model(eeg, coarse_embeds=target, fine_embeds=target).loss.backward()
        return {n: p.grad.clone() for n, p in align_model.named_parameters() if p.grad is not None}

    plain = gradients()
    align_model.enable_cpu_kernels()
    fast = gradients()
    assert plain.keys() == fast.keys() and len(plain) > 10
    for name in plain:
        torch.testing.assert_close(fast[name], plain[name], rtol=1e-4, atol=1e-6, msg=name)


def test_fast_dropout_keeps_the_distribution():
    module = torch.nn.Dropout(0.25).train()
    torch.manual_seed(0)
    out = dropout(module, torch.ones(200_000))
    torch.testing.assert_close(out.unique(), torch.tensor([0.0, 4.0 / 3.0]))
    assert abs((out == 0).float().mean().item() - 0.25) < 0.01
    assert torch.equal(dropout(module.eval(), torch.ones(5)), torch.ones(5))


def test_kernels_respect_peft_lora_wrappers():
    """PEFT replaces nn.Linear with a LoRA wrapper: the fast paths must not bypass its forward."""
    from peft import LoraConfig, get_peft_model

    from brainvis_hf.models import BrainVisTimeEncoderForEEGClassification

    torch.manual_seed(0)
    config = BrainVisTimeEncoderConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, residual_scale_init=1.0
    )
    model = get_peft_model(
        BrainVisTimeEncoderForEEGClassification(config), LoraConfig(r=2, target_modules=["query", "value", "fc1"])
    )
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)  # a non-zero adapter
    eeg = torch.randn(2, config.num_channels, config.num_samples)
    labels = torch.tensor([0, 1])

    def lora_gradients():
        model.zero_grad(set_to_none=True)
        model(eeg_values=eeg, labels=labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if "lora_" in n}

    model.eval()
    with torch.no_grad():
        plain = model(eeg_values=eeg).logits
    plain_grads = lora_gradients()
    model.enable_cpu_kernels()  # through PeftModel to the wrapped model
    assert cpu_kernels_enabled(model)
    with torch.no_grad():
        fast = model(eeg_values=eeg).logits
        model.base_model.disable_adapter_layers()
        without_adapters = model(eeg_values=eeg).logits
        model.base_model.enable_adapter_layers()
    torch.testing.assert_close(fast, plain)
    assert not torch.allclose(fast, without_adapters)
    fast_grads = lora_gradients()
    assert plain_grads and all(g.abs().sum() > 0 for g in fast_grads.values())
    for name in plain_grads:
        torch.testing.assert_close(fast_grads[name], plain_grads[name], rtol=1e-4, atol=1e-6, msg=name)

    model.train()
    model(eeg_values=eeg, labels=labels).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora_A" in n)

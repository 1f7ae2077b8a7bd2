"""Time encoder and Latent Masked Modeling: shapes, input checks, masking, losses, momentum, checkpointing."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from brainvis_hf.models import (
    BrainVisTimeEncoderConfig,
    BrainVisTimeEncoderForEEGClassification,
    BrainVisTimeEncoderForMaskedModeling,
    BrainVisTimeEncoderModel,
)


def _config(base, **changes):
    config = copy.deepcopy(base)
    for key, value in changes.items():
        setattr(config, key, value)
    return config


@pytest.fixture(scope="module")
def eeg():
    return torch.randn(3, 128, 440, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def time_model(tiny_time_config):
    torch.manual_seed(0)
    return BrainVisTimeEncoderModel(tiny_time_config).eval()


def test_base_model_shapes_and_pooling(time_model, eeg):
    out = time_model(eeg, output_hidden_states=True)
    assert out.last_hidden_state.shape == (3, 110, 32)
    assert out.pooler_output.shape == (3, 32)
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state.mean(dim=1))
    assert len(out.hidden_states) == 3  # embeddings + 2 layers
    as_tuple = time_model(eeg, return_dict=False)
    torch.testing.assert_close(as_tuple[0], out.last_hidden_state)


def test_post_norm_blocks_with_learnable_scales(time_model):
    layer = time_model.encoder.layers[0]
    assert layer.attention_residual.scale.shape == () and float(layer.attention_residual.scale.detach()) == pytest.approx(1e-8)
    # original initialisation: xavier-normal Linear weights, bias 0.1
    assert torch.all(layer.attention.query.bias == 0.1) and torch.all(layer.feed_forward.fc2.bias == 0.1)
    fan_in, fan_out = 32, 128
    std = math.sqrt(2.0 / (fan_in + fan_out))
    assert layer.feed_forward.fc1.weight.std().item() == pytest.approx(std, rel=0.15)


def test_block_matches_a_hand_written_post_norm_transformer(time_model):
    layer = time_model.encoder.layers[0]
    with torch.no_grad():
        layer.attention_residual.scale.fill_(0.7)
        layer.feed_forward_residual.scale.fill_(1.3)
    x = torch.randn(2, 10, 32)
    att = layer.attention
    q, k, v = (lin(x).view(2, 10, 2, 16).transpose(1, 2) for lin in (att.query, att.key, att.value))
    probs = torch.softmax(q @ k.transpose(-1, -2) / 4.0, dim=-1)
    mixed = att.output((probs @ v).transpose(1, 2).reshape(2, 10, 32))
    h = F.layer_norm(x + 0.7 * mixed, (32,), layer.attention_residual.layer_norm.weight,
                     layer.attention_residual.layer_norm.bias, 1e-5)  # fmt: skip
    ffn = layer.feed_forward.fc2(F.gelu(layer.feed_forward.fc1(h)))
    expected = F.layer_norm(h + 1.3 * ffn, (32,), layer.feed_forward_residual.layer_norm.weight,
                            layer.feed_forward_residual.layer_norm.bias, 1e-5)  # fmt: skip
    try:
        torch.testing.assert_close(layer(x)[0], expected, rtol=1e-5, atol=1e-5)
    finally:
        with torch.no_grad():
            layer.attention_residual.scale.fill_(1e-8)
            layer.feed_forward_residual.scale.fill_(1e-8)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.randn(128, 440), "eeg_values must have 3 dimensions (batch, channels=128, samples=440), got shape (128, 440)"),
        (torch.randn(2, 64, 440), "eeg_values must have 128 channels (dim 1, channels first: batch x channels x samples), got 64"),
        (torch.randn(2, 440, 128), "eeg_values must have 128 channels (dim 1, channels first: batch x channels x samples), got 440"),
        (torch.randn(2, 128, 400), "eeg_values must have 440 time samples (dim 2), got 400"),
        (torch.zeros(2, 128, 440, dtype=torch.int64), "eeg_values must be a floating-point tensor (float32, float16, bfloat16 or float64), got torch.int64"),
        (torch.full((2, 128, 440), float("nan")), "eeg_values must be finite, got 112640 NaN/Inf value(s)"),
        ([[0.0]], "eeg_values must be a torch.Tensor of shape (batch, 128, 440), got list"),
    ],
)  # fmt: skip
def test_bad_inputs_name_expected_and_got(time_model, bad, message):
    with pytest.raises(ValueError) as err:
        time_model(bad)
    assert message in str(err.value)


def test_padding_policies(tiny_time_config):
    x = torch.randn(2, 128, 442)
    torch.manual_seed(0)
    padded = BrainVisTimeEncoderModel(_config(tiny_time_config, num_samples=442, padding="zeros")).eval()
    out = padded(x).last_hidden_state
    assert out.shape == (2, 111, 32)
    manual = padded.embeddings.patch_projection(F.pad(x, (0, 2))).transpose(1, 2)
    torch.testing.assert_close(padded.embeddings.project(x), manual)
    truncated = BrainVisTimeEncoderModel(_config(tiny_time_config, num_samples=442, padding="truncate")).eval()
    assert truncated(x).last_hidden_state.shape == (2, 110, 32)
    torch.testing.assert_close(
        truncated.embeddings.project(x), truncated.embeddings.patch_projection(x[..., :440]).transpose(1, 2)
    )


def test_float64_and_bf16_inputs_are_cast_to_the_weights(time_model, eeg):
    reference = time_model(eeg).pooler_output
    torch.testing.assert_close(time_model(eeg.double()).pooler_output, reference)
    assert time_model(eeg.bfloat16()).pooler_output.dtype == torch.float32


def test_autocast_bf16(time_model, eeg):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = time_model(eeg).pooler_output
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    cosine = F.cosine_similarity(out.float(), time_model(eeg).pooler_output, dim=1)
    assert cosine.min() > 0.99


# ---------------------------------------------------------------------------------------------
# Latent Masked Modeling
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lmm(tiny_time_config):
    torch.manual_seed(0)
    return BrainVisTimeEncoderForMaskedModeling(tiny_time_config)


def test_mask_ratio_and_per_batch_permutation(lmm, eeg):
    torch.manual_seed(3)
    out = lmm(eeg)
    assert out.masked_indices.shape == (3, 82) and out.visible_indices.shape == (3, 28)
    for row in range(3):
        together = torch.cat([out.masked_indices[row], out.visible_indices[row]]).sort().values
        assert torch.equal(together, torch.arange(110))
    assert torch.equal(out.masked_indices[0], out.masked_indices[1])  # one permutation per batch
    assert out.predicted_representations.shape == out.target_representations.shape == (3, 82, 32)
    assert out.codebook_logits.shape == (3, 82, 16) and out.target_tokens.shape == (3, 82)


def test_per_sample_masking_is_a_config_choice(tiny_time_config, eeg):
    torch.manual_seed(0)
    model = BrainVisTimeEncoderForMaskedModeling(_config(tiny_time_config, mask_mode="per_sample"))
    out = model(eeg)
    assert out.masked_indices.shape == (3, 82)
    assert not torch.equal(out.masked_indices[0], out.masked_indices[1])
    for row in range(3):
        assert len(set(out.masked_indices[row].tolist()) | set(out.visible_indices[row].tolist())) == 110


def test_noise_fixes_the_split(lmm, eeg):
    noise = torch.rand(110)
    out = lmm(eeg, noise=noise)
    order = noise.argsort()
    assert torch.equal(out.masked_indices[2], order[28:]) and torch.equal(out.visible_indices[0], order[:28])
    with pytest.raises(ValueError, match=r"noise must have shape \(3, 110\) or \(110,\), got \(3, 7\)"):
        lmm(eeg, noise=torch.rand(3, 7))


def test_loss_parts_recomputed_independently(lmm, eeg):
    lmm.eval()  # no dropout, so that the pieces can be recomputed
    try:
        torch.manual_seed(5)
        out = lmm(eeg)
        emb = lmm.time_encoder.embeddings
        units = emb.project(eeg) + emb.position_embeddings.weight
        masked_units = units[torch.arange(3)[:, None], out.masked_indices]
        visible_units = units[torch.arange(3)[:, None], out.visible_indices]
        target = lmm.momentum_encoder(masked_units)[0]
        torch.testing.assert_close(out.target_representations, target)
        rep_visible = lmm.time_encoder.encoder(visible_units)[0]
        queries = (lmm.mask_token + emb.position_embeddings.weight)[out.masked_indices]
        for layer in lmm.regressor:
            queries = layer(queries, rep_visible)[0]
        torch.testing.assert_close(out.predicted_representations, queries)
        mse = ((queries - target) ** 2).mean()
        logits = lmm.tokenizer(queries).reshape(-1, 16)
        tokens = out.target_tokens.reshape(-1)
        log_probs = logits.log_softmax(-1)
        ce = (0.8 * -log_probs.gather(1, tokens[:, None]).squeeze(1) - 0.2 * log_probs.mean(-1)).mean()
        torch.testing.assert_close(out.regression_loss, mse)
        torch.testing.assert_close(out.codebook_loss, ce)
        torch.testing.assert_close(out.loss, 4.0 * mse + 2.0 * ce)
        hits = (logits.argmax(-1) == tokens).float().mean()
        torch.testing.assert_close(out.codebook_hit_rate, hits)
        ranks = (logits > logits.gather(1, tokens[:, None])).sum(1)
        ndcg = torch.tensor([1 / math.log2(r + 2) if r < 10 else 0.0 for r in ranks.tolist()]).mean()
        torch.testing.assert_close(out.codebook_ndcg_at_10, ndcg)
    finally:
        lmm.train()


def test_target_tokens_are_samples_of_the_tokenizer_softmax(lmm):
    units = torch.zeros(1, 20000, 32)
    with torch.no_grad():
        lmm.tokenizer.weight.zero_()
        saved_bias = lmm.tokenizer.bias.clone()
        lmm.tokenizer.bias.copy_(torch.log(torch.arange(1.0, 17.0)))
        try:
            torch.manual_seed(0)
            tokens = lmm.sample_tokens(units)
        finally:
            lmm.tokenizer.bias.copy_(saved_bias)
    assert not tokens.requires_grad
    frequencies = torch.bincount(tokens.flatten(), minlength=16).float() / tokens.numel()
    expected = torch.arange(1.0, 17.0) / torch.arange(1.0, 17.0).sum()
    torch.testing.assert_close(frequencies, expected, atol=0.01, rtol=0)


def test_gradients_reach_the_online_side_only(tiny_time_config, eeg):
    torch.manual_seed(0)
    model = BrainVisTimeEncoderForMaskedModeling(tiny_time_config)
    model(eeg).loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in model.momentum_encoder.parameters())
    for name in ("mask_token", "tokenizer.weight", "regressor.0.attention.query.weight",
                 "time_encoder.encoder.layers.0.attention.key.weight",
                 "time_encoder.embeddings.patch_projection.weight"):  # fmt: skip
        assert model.get_parameter(name).grad is not None, name


def test_momentum_encoder_init_and_update_arithmetic(tiny_time_config):
    torch.manual_seed(0)
    model = BrainVisTimeEncoderForMaskedModeling(tiny_time_config)
    online = list(model.time_encoder.encoder.parameters())
    momentum = list(model.momentum_encoder.parameters())
    assert all(torch.equal(a, b) for a, b in zip(online, momentum))  # copied at construction
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(online, momentum))
    with torch.no_grad():
        for p in momentum:
            p.normal_()
    before_m = [p.clone() for p in momentum]
    with torch.no_grad():
        for p in online:
            p.add_(torch.randn_like(p))
    model.momentum_update()
    for old, new, theta in zip(before_m, momentum, online):
        torch.testing.assert_close(new, 0.99 * old + 0.01 * theta)
    model.momentum_update(momentum=0.5)
    model.init_momentum_encoder()
    assert all(torch.equal(a, b) for a, b in zip(online, momentum))


def test_lmm_loss_falls_on_structured_data(tiny_time_config):
    torch.manual_seed(0)
    config = _config(tiny_time_config, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BrainVisTimeEncoderForMaskedModeling(config)
    t = torch.linspace(0, 1, 440)
    freqs = torch.rand(8, 128, 1) * 20 + 2  # per-channel sinusoids + noise
    data = torch.sin(2 * math.pi * freqs * t) + 0.1 * torch.randn(8, 128, 440)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses, regression = [], []
    for _ in range(15):
        out = model(data)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        model.momentum_update()
        losses.append(out.loss.item())
        regression.append(out.regression_loss.item())
    assert sum(losses[-3:]) < 0.95 * sum(losses[:3]), losses
    assert sum(regression[-3:]) < 0.95 * sum(regression[:3]), regression


def test_gradient_checkpointing_gives_the_same_gradients(tiny_time_config, eeg):
    torch.manual_seed(0)
    model = BrainVisTimeEncoderForEEGClassification(tiny_time_config).train()
    with torch.no_grad():  # make the blocks matter for the gradients
        for module in model.modules():
            if getattr(module, "scale", None) is not None:
                module.scale.fill_(0.5)
    labels = torch.tensor([0, 5, 39])

    def gradients():
        model.zero_grad()
        torch.manual_seed(11)  # same dropout masks
        model(eeg, labels=labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = gradients()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    assert all(layer.gradient_checkpointing for layer in model.time_encoder.encoder.layers)
    checkpointed = gradients()
    model.activation_checkpointing_disable()
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)


def test_lmm_gradient_checkpointing_keeps_the_momentum_encoder_plain(tiny_time_config, eeg):
    torch.manual_seed(0)
    model = BrainVisTimeEncoderForMaskedModeling(tiny_time_config)
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    assert all(layer.gradient_checkpointing for layer in model.regressor)
    assert not any(layer.gradient_checkpointing for layer in model.momentum_encoder.layers)
    model(eeg).loss.backward()


def test_classification_head_and_loss(tiny_time_config, eeg):
    torch.manual_seed(0)
    model = BrainVisTimeEncoderForEEGClassification(tiny_time_config).eval()
    labels = torch.tensor([1, 2, 3])
    out = model(eeg, labels=labels)
    assert out.logits.shape == (3, 40)
    torch.testing.assert_close(out.logits, model.classifier(model.time_encoder(eeg).pooler_output))
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))


def test_torch_compile_matches_eager(time_model, eeg):
    compiled = torch.compile(time_model, backend="aot_eager")
    torch.testing.assert_close(compiled(eeg).pooler_output, time_model(eeg).pooler_output, rtol=1e-5, atol=1e-6)


def test_config_object_is_the_documented_class(tiny_time_config):
    assert isinstance(tiny_time_config, BrainVisTimeEncoderConfig)

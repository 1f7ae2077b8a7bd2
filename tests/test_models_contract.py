"""The transformers model contract, checked on every BrainVis model class with tiny configs.

What a transformers user relies on: the output flags follow the config unless the forward
arguments say otherwise, hidden states and attention weights come back when asked, attention
goes through transformers' attention interface (eager and SDPA agree), classification heads obey
`config.problem_type`, eval mode is deterministic, folders round-trip in a chosen dtype, and a
misspelt keyword argument is an error rather than silently ignored.
"""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AttentionInterface, Trainer, TrainingArguments
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.utils import ModelOutput

from brainvis_hf.models import (
    BrainVisConfig,
    BrainVisForCLIPAlignment,
    BrainVisForEEGClassification,
    BrainVisFreqEncoderConfig,
    BrainVisFreqEncoderForEEGClassification,
    BrainVisFreqEncoderModel,
    BrainVisModel,
    BrainVisTimeEncoderConfig,
    BrainVisTimeEncoderForEEGClassification,
    BrainVisTimeEncoderForMaskedModeling,
    BrainVisTimeEncoderModel,
)

CHANNELS, SAMPLES, BATCH, LABELS = 8, 64, 3, 3
HIDDEN, LAYERS, HEADS, UNITS = 16, 2, 2, 16  # 64 samples / wave_length 4 = 16 units
LSTM, FEATURE = 8, 8
MASKED = 12  # int(0.75 * 16)


def time_config(**overrides) -> BrainVisTimeEncoderConfig:
    # residual_scale_init=1: the attention output counts (at the paper's 1e-8 it would vanish)
    values = dict(
        num_channels=CHANNELS, num_samples=SAMPLES, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, intermediate_size=32, codebook_size=8, num_regressor_layers=1,
        residual_scale_init=1.0, num_labels=LABELS,
    )  # fmt: skip
    return BrainVisTimeEncoderConfig(**{**values, **overrides})


def freq_config(**overrides) -> BrainVisFreqEncoderConfig:
    values = dict(num_channels=CHANNELS, num_samples=SAMPLES, lstm_hidden_size=LSTM, feature_size=FEATURE)
    return BrainVisFreqEncoderConfig(**{**values, "num_labels": LABELS, **overrides})


def brainvis_config(**overrides) -> BrainVisConfig:
    return BrainVisConfig(
        time_config=time_config().to_dict(), freq_config=freq_config().to_dict(), prompt_sequence_length=4,
        prompt_embed_dim=8, **{"num_labels": LABELS, **overrides},
    )  # fmt: skip


CONFIGS = {"time": time_config, "freq": freq_config, "unified": brainvis_config}
MODELS = {
    BrainVisTimeEncoderModel: "time",
    BrainVisTimeEncoderForMaskedModeling: "time",
    BrainVisTimeEncoderForEEGClassification: "time",
    BrainVisFreqEncoderModel: "freq",
    BrainVisFreqEncoderForEEGClassification: "freq",
    BrainVisModel: "unified",
    BrainVisForEEGClassification: "unified",
    BrainVisForCLIPAlignment: "unified",
}
WITH_ATTENTION = [cls for cls, kind in MODELS.items() if kind != "freq"]
HEADS_WITH_LABELS = [
    BrainVisTimeEncoderForEEGClassification,
    BrainVisFreqEncoderForEEGClassification,
    BrainVisForEEGClassification,
    BrainVisForCLIPAlignment,
]
NOISE = torch.rand(UNITS, generator=torch.Generator().manual_seed(7))  # fixes the LMM split


def ids(classes):
    return [cls.__name__ for cls in classes]


def build(cls, seed: int = 0, **config_overrides):
    torch.manual_seed(seed)
    return cls(CONFIGS[MODELS[cls]](**config_overrides)).eval()


@pytest.fixture(scope="module")
def eeg():
    return torch.randn(BATCH, CHANNELS, SAMPLES, generator=torch.Generator().manual_seed(3))


def run(model, eeg, **kwargs):
    """Forward with the LMM split and token sampling fixed (LMM draws from the global RNG)."""
    if isinstance(model, BrainVisTimeEncoderForMaskedModeling):
        kwargs.setdefault("noise", NOISE)
    torch.manual_seed(11)
    return model(eeg, **kwargs)


def main_tensor(output) -> torch.Tensor:
    """The tensor every class returns first-hand (for comparisons)."""
    for key in ("prompt_embeds", "logits", "predicted_representations", "pooler_output"):
        if output.get(key) is not None:
            return output[key]
    raise AssertionError(f"no main tensor in {list(output.keys())}")


def expected_hidden_shapes(cls) -> list[tuple[int, ...]]:
    if MODELS[cls] == "freq":
        return [(BATCH, SAMPLES // 2, CHANNELS), (BATCH, SAMPLES // 2, LSTM)]
    tokens = UNITS - MASKED if cls is BrainVisTimeEncoderForMaskedModeling else UNITS
    return [(BATCH, tokens, HIDDEN)] * (LAYERS + 1)


# ---------------------------------------------------------------------------------------------
# output flags
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", list(MODELS), ids=ids(MODELS))
def test_config_return_dict_false_returns_the_tuple(cls, eeg):
    model = build(cls)
    with torch.no_grad():
        as_dict = run(model, eeg)
        model.config.return_dict = False
        as_tuple = run(model, eeg)
        overridden = run(model, eeg, return_dict=True)
    assert isinstance(as_dict, ModelOutput) and type(as_tuple) is tuple
    assert isinstance(overridden, ModelOutput)
    assert len(as_tuple) == len(as_dict.to_tuple())
    for got, expected in zip(as_tuple, as_dict.to_tuple()):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("cls", list(MODELS), ids=ids(MODELS))
def test_hidden_states_from_the_config_or_the_argument(cls, eeg):
    model = build(cls, output_hidden_states=True)
    with torch.no_grad():
        from_config = run(model, eeg)
        switched_off = run(model, eeg, output_hidden_states=False)
        model.config.output_hidden_states = False
        plain = run(model, eeg)
        from_argument = run(model, eeg, output_hidden_states=True)
    for output in (switched_off, plain):
        assert output.hidden_states is None
    for output in (from_config, from_argument):
        assert [tuple(h.shape) for h in output.hidden_states] == expected_hidden_shapes(cls)
        if MODELS[cls] == "unified":
            shapes = [tuple(h.shape) for h in output.freq_hidden_states]
            assert shapes == expected_hidden_shapes(BrainVisFreqEncoderModel)
    torch.testing.assert_close(main_tensor(from_config), main_tensor(plain), rtol=0, atol=0)


def test_hidden_states_are_the_encoder_stages(eeg):
    """The first entry is the encoder's input, the last its output (time and frequency encoders)."""
    time_model, freq_model = build(BrainVisTimeEncoderModel), build(BrainVisFreqEncoderModel)
    with torch.no_grad():
        out = time_model(eeg, output_hidden_states=True)
        torch.testing.assert_close(out.hidden_states[0], time_model.embeddings(eeg))
        torch.testing.assert_close(out.hidden_states[-1], out.last_hidden_state)
        state = out.hidden_states[0]
        for layer, expected in zip(time_model.encoder.layers, out.hidden_states[1:]):
            state = layer(state)[0]
            torch.testing.assert_close(expected, state)
        lmm = build(BrainVisTimeEncoderForMaskedModeling)
        masked = run(lmm, eeg, output_hidden_states=True)
        units = lmm.time_encoder.embeddings(eeg)
        visible = units[torch.arange(BATCH)[:, None], masked.visible_indices]
        torch.testing.assert_close(masked.hidden_states[0], visible)  # the online encoder's input
        torch.testing.assert_close(masked.hidden_states[-1], lmm.time_encoder.encoder(visible).last_hidden_state)
        freq = freq_model(eeg, output_hidden_states=True)
        spectrum = torch.fft.rfft(eeg, dim=-1)[..., 1 : SAMPLES // 2 + 1].abs().transpose(1, 2)
        torch.testing.assert_close(freq.hidden_states[0], spectrum)
        torch.testing.assert_close(freq.hidden_states[1], freq.last_hidden_state)


@pytest.mark.parametrize("cls", WITH_ATTENTION, ids=ids(WITH_ATTENTION))
def test_attention_weights_from_the_config_or_the_argument(cls, eeg):
    model = build(cls, output_attentions=True)
    with torch.no_grad():
        from_config = run(model, eeg)
        model.config.output_attentions = False
        plain = run(model, eeg)
        from_argument = run(model, eeg, output_attentions=True)
    assert plain.attentions is None
    tokens = UNITS - MASKED if cls is BrainVisTimeEncoderForMaskedModeling else UNITS
    for output in (from_config, from_argument):
        assert [tuple(a.shape) for a in output.attentions] == [(BATCH, HEADS, tokens, tokens)] * LAYERS
        for weights in output.attentions:
            torch.testing.assert_close(weights.sum(-1), torch.ones(BATCH, HEADS, tokens))
    if cls is BrainVisTimeEncoderForMaskedModeling:
        assert plain.cross_attentions is None
        assert [tuple(a.shape) for a in from_argument.cross_attentions] == [(BATCH, HEADS, MASKED, tokens)]
    # asking for the weights (eager kernel) does not change the result of the SDPA default
    torch.testing.assert_close(main_tensor(from_argument), main_tensor(plain), rtol=1e-5, atol=1e-6)


def test_attention_weights_are_the_softmax_of_scaled_scores(eeg):
    model = build(BrainVisTimeEncoderModel)
    with torch.no_grad():
        out = model(eeg, output_attentions=True, output_hidden_states=True)
        attention = model.encoder.layers[1].attention
        states = out.hidden_states[1]  # the input of layer 1
        q = attention.query(states).view(BATCH, UNITS, HEADS, HIDDEN // HEADS).transpose(1, 2)
        k = attention.key(states).view(BATCH, UNITS, HEADS, HIDDEN // HEADS).transpose(1, 2)
        expected = torch.softmax(q @ k.transpose(-1, -2) / (HIDDEN // HEADS) ** 0.5, dim=-1)
    torch.testing.assert_close(out.attentions[1], expected)


# ---------------------------------------------------------------------------------------------
# attention implementations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", WITH_ATTENTION, ids=ids(WITH_ATTENTION))
def test_eager_and_sdpa_agree(cls, eeg):
    sdpa = build(cls)
    eager = build(cls)
    eager.set_attn_implementation("eager")
    assert sdpa.config._attn_implementation == "sdpa" and eager.config._attn_implementation == "eager"
    with torch.no_grad():
        expected, got = run(sdpa, eeg), run(eager, eeg)
    torch.testing.assert_close(main_tensor(got), main_tensor(expected), rtol=1e-5, atol=1e-6)
    if cls is BrainVisTimeEncoderForMaskedModeling:
        torch.testing.assert_close(got.loss, expected.loss, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", WITH_ATTENTION, ids=ids(WITH_ATTENTION))
def test_attention_goes_through_the_attention_interface(cls, eeg, tmp_path):
    """A kernel registered with transformers' `AttentionInterface` is the one every block calls."""
    calls = []

    def spy(module, query, key, value, attention_mask, **kwargs):
        calls.append((tuple(query.shape), tuple(key.shape)))
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register("brainvis_spy", spy)
    model = build(cls)
    model.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path, attn_implementation="brainvis_spy").eval()
    with torch.no_grad():
        expected, got = run(model, eeg), run(loaded, eeg)
    torch.testing.assert_close(main_tensor(got), main_tensor(expected))
    head_dim = HIDDEN // HEADS
    if cls is BrainVisTimeEncoderForMaskedModeling:
        visible = UNITS - MASKED
        assert calls == [((BATCH, HEADS, visible, head_dim),) * 2] * LAYERS + [  # online encoder
            ((BATCH, HEADS, MASKED, head_dim),) * 2
        ] * LAYERS + [((BATCH, HEADS, MASKED, head_dim), (BATCH, HEADS, visible, head_dim))]  # momentum, regressor
    else:
        assert calls == [((BATCH, HEADS, UNITS, head_dim),) * 2] * LAYERS


# ---------------------------------------------------------------------------------------------
# problem_type
# ---------------------------------------------------------------------------------------------


def _loss(model, output):
    return output.classification_loss if isinstance(model, BrainVisForCLIPAlignment) else output.loss


@pytest.mark.parametrize("cls", HEADS_WITH_LABELS, ids=ids(HEADS_WITH_LABELS))
def test_single_label_classification(cls, eeg):
    model = build(cls)
    labels = torch.tensor([2, 0, 1])
    output = run(model, eeg, labels=labels)
    assert model.config.problem_type == "single_label_classification"  # inferred from integer labels
    log_probs = output.logits.double().log_softmax(-1)
    expected = -log_probs[torch.arange(BATCH), labels].mean()
    torch.testing.assert_close(_loss(model, output).double(), expected, rtol=1e-5, atol=1e-6)
    _loss(model, output).backward()
    with pytest.raises(ValueError, match=r"one class id per recording \(3\)"):
        run(model, eeg, labels=torch.zeros(BATCH, LABELS, dtype=torch.long))


@pytest.mark.parametrize("cls", HEADS_WITH_LABELS, ids=ids(HEADS_WITH_LABELS))
def test_multi_label_classification(cls, eeg):
    model = build(cls)
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    output = run(model, eeg, labels=labels)
    assert model.config.problem_type == "multi_label_classification"  # inferred from float multi-hot labels
    x = output.logits.double()
    expected = (torch.log1p(torch.exp(-x.abs())) + x.clamp(min=0) - x * labels.double()).mean()
    torch.testing.assert_close(_loss(model, output).double(), expected, rtol=1e-5, atol=1e-6)
    _loss(model, output).backward()
    with pytest.raises(ValueError, match=r"multi-hot of shape \(3, 3\)"):
        run(model, eeg, labels=torch.ones(BATCH))


@pytest.mark.parametrize("num_labels", [1, 2])
@pytest.mark.parametrize("cls", HEADS_WITH_LABELS, ids=ids(HEADS_WITH_LABELS))
def test_regression(cls, num_labels, eeg):
    """Float targets, e.g. reaction times: inferred for one output, set explicitly for several."""
    problem_type = None if num_labels == 1 else "regression"
    model = build(cls, num_labels=num_labels, problem_type=problem_type)
    targets = torch.tensor([0.35, 0.52, 0.41]) if num_labels == 1 else torch.randn(BATCH, num_labels)
    output = run(model, eeg, labels=targets)
    assert model.config.problem_type == "regression"
    expected = ((output.logits.double() - targets.double().reshape(BATCH, num_labels)) ** 2).mean()
    torch.testing.assert_close(_loss(model, output).double(), expected, rtol=1e-5, atol=1e-6)
    _loss(model, output).backward()
    with pytest.raises(ValueError, match="for regression"):
        run(model, eeg, labels=torch.ones(BATCH + 1, num_labels))


def test_unknown_problem_type_is_refused(eeg):
    model = build(BrainVisTimeEncoderForEEGClassification)
    model.config.problem_type = "ordinal"
    with pytest.raises(ValueError, match="problem_type must be one of"):
        model(eeg, labels=torch.tensor([0, 1, 2]))


# ---------------------------------------------------------------------------------------------
# determinism, save / load, keyword arguments
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", list(MODELS), ids=ids(MODELS))
def test_eval_mode_is_deterministic(cls, eeg):
    model = build(cls)
    with torch.no_grad():
        if cls is BrainVisTimeEncoderForMaskedModeling:
            # a fixed split and RNG state (the token sampling draws from it)
            first, second = run(model, eeg), run(model, eeg)
        else:
            first, second = model(eeg), model(eeg)
    for key in first.keys():
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize("cls", list(MODELS), ids=ids(MODELS))
def test_save_and_load_in_a_dtype(cls, dtype, eeg, tmp_path):
    model = build(cls)
    model.save_pretrained(tmp_path / "fp32")
    reloaded = cls.from_pretrained(tmp_path / "fp32").eval()
    state, reloaded_state = model.state_dict(), reloaded.state_dict()
    assert state.keys() == reloaded_state.keys()
    assert all(torch.equal(state[k], reloaded_state[k]) for k in state)

    cast = cls.from_pretrained(tmp_path / "fp32", dtype=dtype).eval()
    assert {p.dtype for p in cast.parameters()} == {dtype}
    cast.save_pretrained(tmp_path / "cast")
    again = cls.from_pretrained(tmp_path / "cast", dtype="auto").eval()
    assert {p.dtype for p in again.parameters()} == {dtype}
    assert all(torch.equal(cast.state_dict()[k], again.state_dict()[k]) for k in state)
    with torch.no_grad():
        expected, got = main_tensor(run(model, eeg)), main_tensor(run(again, eeg))
    assert got.dtype == dtype
    scale = expected.abs().max().item() + 1e-3
    torch.testing.assert_close(got.float(), expected, rtol=0.05, atol=0.05 * scale)


def test_torch_dtype_alias_loads_in_that_dtype(tmp_path):
    """`torch_dtype=` (the older name of `dtype=`, still in users' scripts) works too."""
    build(BrainVisForCLIPAlignment).save_pretrained(tmp_path)
    model = BrainVisForCLIPAlignment.from_pretrained(tmp_path, torch_dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


@pytest.mark.parametrize("cls", list(MODELS), ids=ids(MODELS))
def test_unknown_keyword_arguments_raise(cls, eeg):
    model = build(cls)
    with pytest.raises(TypeError, match="output_hidden_state"):
        model(eeg, output_hidden_state=True)  # misspelt
    if cls in (BrainVisTimeEncoderModel, BrainVisFreqEncoderModel, BrainVisModel):
        with pytest.raises(TypeError, match="labels"):
            model(eeg, labels=torch.tensor([0, 1, 2]))  # base models have no head


def test_masked_modeling_accepts_the_labels_of_a_labelled_batch(eeg):
    model = build(BrainVisTimeEncoderForMaskedModeling)
    with torch.no_grad():
        with_labels = run(model, eeg, labels=torch.tensor([0, 1, 2]))
        without = run(model, eeg)
    torch.testing.assert_close(with_labels.loss, without.loss, rtol=0, atol=0)


@pytest.mark.parametrize("cls", [BrainVisTimeEncoderForEEGClassification, BrainVisForCLIPAlignment],
                         ids=["time_classifier", "alignment"])  # fmt: skip
def test_trainer_passes_no_extra_loss_arguments(cls, tmp_path):
    """Without `**kwargs` in forward, Trainer does not add `num_items_in_batch` to the inputs."""
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    trainer = Trainer(model=build(cls), args=args)
    assert trainer.model_accepts_loss_kwargs is False
    assert "labels" in trainer.label_names


def test_flags_of_the_unified_model_do_not_leak_into_its_encoders(eeg):
    """The unified config's flags rule; the encoders' own configs are not consulted."""
    model = build(BrainVisForEEGClassification)
    model.config.time_config.return_dict = False
    model.config.time_config.output_hidden_states = True
    with torch.no_grad():
        output = model(eeg)
    assert isinstance(output, ModelOutput) and output.hidden_states is None


def test_config_flags_survive_save_and_load(tmp_path, eeg):
    model = build(BrainVisTimeEncoderForEEGClassification, output_hidden_states=True, return_dict=False)
    model.save_pretrained(tmp_path)
    loaded = BrainVisTimeEncoderForEEGClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        output = loaded(eeg)
    assert type(output) is tuple
    assert len(output[2]) == LAYERS + 1  # (logits, pooler_output, hidden_states): loss is None, left out
    copy.deepcopy(loaded)


def test_attention_probabilities_dropout_is_applied_in_training(eeg):
    """Dropout reaches the attention kernel in train mode only (eager weights show it)."""
    model = build(BrainVisTimeEncoderModel, attention_probs_dropout_prob=0.5, hidden_dropout_prob=0.0)
    model.train()
    torch.manual_seed(0)
    weights = model(eeg, output_attentions=True).attentions[0]
    assert (weights == 0).float().mean() > 0.3
    model.eval()
    assert (model(eeg, output_attentions=True).attentions[0] > 0).all()

"""The learning recipe (issue 10): opt-in model options, the linear baseline, LMM determinism, and a
small chain that must reach a linear decoder's accuracy on data the recipe was not tuned to."""

import copy
import json

import numpy as np
import pytest
import torch

from brainvis_hf.data import load_eeg_imagenet, prepare_dataset
from brainvis_hf.data.signal_families import SIGNAL_FAMILIES, write_signal_family
from brainvis_hf.evaluation import binned_eeg_features, linear_baseline_accuracy
from brainvis_hf.models import (
    BrainVisFreqEncoderConfig,
    BrainVisFreqEncoderModel,
    BrainVisTimeEncoderForMaskedModeling,
    BrainVisTimeEncoderModel,
)
from brainvis_hf.presets import preset_dir


def _eeg(batch=3, seed=0):
    return torch.randn(batch, 128, 440, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------
# model options
# ---------------------------------------------------------------------------------------------


def test_recording_normalization_equals_z_scoring_the_input(tiny_time_config):
    paper = BrainVisTimeEncoderModel(copy.deepcopy(tiny_time_config)).eval()
    config = copy.deepcopy(tiny_time_config)
    config.input_normalization = "recording"
    normalised = BrainVisTimeEncoderModel(config).eval()
    normalised.load_state_dict(paper.state_dict())
    eeg = _eeg() * 37.0 + 5.0
    z = (eeg - eeg.mean(-1, keepdim=True)) / eeg.std(-1, keepdim=True, unbiased=False)
    with torch.no_grad():
        torch.testing.assert_close(normalised(eeg).last_hidden_state, paper(z).last_hidden_state, atol=1e-4, rtol=1e-4)
        # offsets and gains per channel and recording no longer change the features
        offset = torch.randn(3, 128, 1) * 100
        gain = torch.rand(3, 128, 1) * 10 + 0.1
        torch.testing.assert_close(
            normalised(eeg * gain + offset).pooler_output, normalised(eeg).pooler_output, atol=1e-3, rtol=1e-3
        )


def test_huge_raw_eeg_with_recording_normalization_predicts_like_standardised_eeg(tiny_time_config):
    from brainvis_hf.models import BrainVisTimeEncoderForEEGClassification

    config = copy.deepcopy(tiny_time_config)
    config.input_normalization = "recording"
    model = BrainVisTimeEncoderForEEGClassification(config).eval().to(torch.float16)
    eeg = _eeg(2)
    with torch.no_grad():
        raw = model(eeg * 1e3).logits  # microvolt-scale raw data in float16: finite, same classes
        standard = model(eeg).logits
    assert torch.isfinite(raw).all()
    assert torch.equal(raw.argmax(-1), standard.argmax(-1))


@pytest.mark.parametrize("segments", [1, 7, 110])
def test_pooling_segments_concatenates_segment_means(tiny_time_config, segments):
    config = copy.deepcopy(tiny_time_config)
    config.pooling_segments = segments
    model = BrainVisTimeEncoderModel(config).eval()
    with torch.no_grad():
        out = model(_eeg())
    states = out.last_hidden_state.numpy()
    bounds = np.linspace(0, 110, segments + 1)  # independent: segment edges as tensor_split makes them
    sizes = [110 // segments + (1 if i < 110 % segments else 0) for i in range(segments)]
    edges = np.concatenate([[0], np.cumsum(sizes)])
    expected = np.concatenate([states[:, a:b].mean(1) for a, b in zip(edges[:-1], edges[1:])], axis=1)
    assert len(bounds) == len(edges)
    assert out.pooler_output.shape == (3, segments * config.hidden_size) == (3, config.pooled_size)
    np.testing.assert_allclose(out.pooler_output.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_pooling_segments_is_validated(tiny_time_config):
    config = copy.deepcopy(tiny_time_config).to_dict()
    config.update(pooling_segments=111)
    with pytest.raises(ValueError, match=r"pooling_segments \(111\) cannot exceed the number of units \(110\)"):
        type(tiny_time_config)(**config)


def test_random_time_shift_moves_each_recording_and_repeats_the_edge():
    from brainvis_hf.models.modeling_time_encoder import random_time_shift

    eeg = _eeg(64)
    shifted = random_time_shift(eeg, 5, torch.Generator().manual_seed(0))
    shifts = torch.randint(-5, 6, (64,), generator=torch.Generator().manual_seed(0))  # the draw it makes
    assert len(set(shifts.tolist())) > 5
    for recording, shift in zip(range(64), shifts.tolist()):  # independent: numpy slicing with edge padding
        x = eeg[recording].numpy()
        padded = np.pad(x, ((0, 0), (5, 5)), mode="edge")
        expected = padded[:, 5 - shift : 5 - shift + 440]
        np.testing.assert_array_equal(shifted[recording].numpy(), expected)
    assert random_time_shift(eeg, 0) is eeg


def test_time_shift_augmentation_shifts_the_input_in_training_only(tiny_time_config):
    from brainvis_hf.models.modeling_time_encoder import random_time_shift

    config = copy.deepcopy(tiny_time_config)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0  # training mode is deterministic
    model = BrainVisTimeEncoderModel(config)
    eeg = _eeg(8)

    def states(shift, training, seed=1):
        model.config.time_shift_augmentation = shift
        model.train(training)
        torch.manual_seed(seed)
        with torch.no_grad():
            return model(eeg).last_hidden_state

    torch.testing.assert_close(states(20, training=False), states(0, training=False))  # eval never shifts
    torch.manual_seed(1)
    expected_input = random_time_shift(eeg, 20)  # the draw the forward makes from the same seed
    model.config.time_shift_augmentation = 0
    with torch.no_grad():
        expected = model(expected_input).last_hidden_state
    torch.testing.assert_close(states(20, training=True), expected)
    assert not torch.allclose(states(20, training=True), states(0, training=True))
    with pytest.raises(ValueError, match=r"time_shift_augmentation must be in \[0, num_samples\), got 440"):
        type(tiny_time_config)(**{**tiny_time_config.to_dict(), "time_shift_augmentation": 440})


def test_pooler_normalization_standardises_the_pooled_feature_and_starts_fresh_from_lmm_weights(
    tiny_time_config, tmp_path
):
    from brainvis_hf.models import BrainVisTimeEncoderForEEGClassification

    BrainVisTimeEncoderForMaskedModeling(copy.deepcopy(tiny_time_config)).save_pretrained(tmp_path)  # no statistics
    config = copy.deepcopy(tiny_time_config)
    config.pooler_normalization = "batch"
    model = BrainVisTimeEncoderForEEGClassification.from_pretrained(tmp_path, config=config)
    norm = model.time_encoder.pooler_norm
    assert torch.equal(norm.running_mean, torch.zeros(config.pooled_size))  # initialised, not left empty
    assert torch.equal(norm.running_var, torch.ones(config.pooled_size))
    encoder = model.time_encoder.train()
    encoder.encoder.eval()  # dropout off, the statistics still update
    eeg = _eeg(16)
    with torch.no_grad():
        pooled = encoder(eeg).pooler_output
        raw = pool_units_reference(encoder.eval()(eeg).last_hidden_state, config.pooling_segments)
    expected = (raw - raw.mean(0)) / torch.sqrt(raw.var(0, unbiased=False) + 1e-5)  # batch statistics in training
    torch.testing.assert_close(pooled, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(norm.running_mean, 0.1 * raw.mean(0), atol=1e-5, rtol=1e-4)


def pool_units_reference(states, segments):
    return torch.cat([part.mean(1) for part in states.tensor_split(segments, dim=1)], dim=-1)


def test_frequency_encoder_statistics_start_fresh_when_the_checkpoint_has_none(tiny_freq_config, tmp_path):
    from brainvis_hf.models import BrainVisFreqEncoderForEEGClassification

    BrainVisFreqEncoderForEEGClassification(copy.deepcopy(tiny_freq_config)).save_pretrained(tmp_path)
    config = copy.deepcopy(tiny_freq_config)
    config.spectrum_normalization = "batch"
    model = BrainVisFreqEncoderForEEGClassification.from_pretrained(tmp_path, config=config)
    norm = model.freq_encoder.spectrum_norm
    assert torch.equal(norm.running_mean, torch.zeros_like(norm.running_mean))
    assert torch.equal(norm.running_var, torch.ones_like(norm.running_var))


def test_frequency_options_log_spectrum_running_standardisation_and_readouts(tiny_freq_config):
    config = copy.deepcopy(tiny_freq_config)
    config.spectrum_scaling, config.spectrum_normalization = "log", "batch"
    model = BrainVisFreqEncoderModel(config).train()
    eeg = _eeg(16)
    model(eeg)  # one training batch updates the running statistics
    amplitude = torch.fft.rfft(eeg, dim=-1)[..., 1:221].abs().transpose(1, 2)
    log_amplitude = (amplitude + 1e-6).log().flatten(1)
    expected_mean = 0.1 * log_amplitude.mean(0)  # BatchNorm's momentum 0.1 from a zero start
    torch.testing.assert_close(model.spectrum_norm.running_mean, expected_mean, atol=1e-4, rtol=1e-4)
    for readout, width in (("last", 16), ("mean", 16), ("flatten", 16 * 220)):
        config_r = copy.deepcopy(config)
        config_r.readout = readout
        model_r = BrainVisFreqEncoderModel(config_r).eval()
        assert model_r.projection.in_features == width
        with torch.no_grad():
            out = model_r(eeg[:2], output_hidden_states=True)
        states = out.last_hidden_state
        read = {"last": states[:, -1], "mean": states.mean(1), "flatten": states.flatten(1)}[readout]
        torch.testing.assert_close(out.pooler_output, torch.relu(model_r.projection(read)))


def test_running_statistics_are_saved_and_reloaded(tiny_freq_config, tmp_path):
    config = copy.deepcopy(tiny_freq_config)
    config.spectrum_scaling, config.spectrum_normalization = "log", "batch"
    model = BrainVisFreqEncoderModel(config).train()
    model(_eeg(8))
    model.save_pretrained(tmp_path)
    loaded = BrainVisFreqEncoderModel.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(loaded.spectrum_norm.running_var, model.spectrum_norm.running_var)
    with torch.no_grad():
        torch.testing.assert_close(loaded(_eeg(2, 5)).pooler_output, model.eval()(_eeg(2, 5)).pooler_output)


def test_recipe_options_default_to_the_paper():
    from brainvis_hf.models import BrainVisTimeEncoderConfig

    time, freq = BrainVisTimeEncoderConfig(), BrainVisFreqEncoderConfig()
    assert (time.input_normalization, time.pooling_segments, time.lmm_freeze_embeddings) == (None, 1, False)
    assert (time.pooler_normalization, time.time_shift_augmentation) == (None, 0)
    assert (freq.spectrum_scaling, freq.spectrum_normalization, freq.readout) == (None, None, "last")
    with pytest.raises(ValueError, match="readout must be one of"):
        BrainVisFreqEncoderConfig(readout="first")


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_cpu_presets_turn_the_recipe_on(preset):
    time = json.loads((preset_dir("time_encoder", preset) / "config.json").read_text())
    freq = json.loads((preset_dir("freq_encoder", preset) / "config.json").read_text())
    assert time["input_normalization"] == "recording" and time["pooling_segments"] == 110
    assert time["lmm_freeze_embeddings"] is True
    if preset == "small":  # measured on small only (benchmarks/README.md); tiny keeps the earlier recipe
        assert (time["pooler_normalization"], time["time_shift_augmentation"]) == ("batch", 8)
    assert (freq["spectrum_scaling"], freq["spectrum_normalization"], freq["readout"]) == ("log", "batch", "flatten")
    paper = json.loads((preset_dir("time_encoder", "paper") / "config.json").read_text())
    assert paper.get("input_normalization") is None and paper.get("pooling_segments", 1) == 1


# ---------------------------------------------------------------------------------------------
# Latent Masked Modeling: reproducible given a generator; frozen embeddings on request
# ---------------------------------------------------------------------------------------------


def test_lmm_freeze_embeddings_trains_the_transformer_only(tiny_time_config, tmp_path):
    config = copy.deepcopy(tiny_time_config)
    config.lmm_freeze_embeddings = True
    torch.manual_seed(0)
    model = BrainVisTimeEncoderForMaskedModeling(config).train()
    embeddings = model.time_encoder.embeddings
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(_eeg(4)).loss.backward()
    assert all(p.grad is None for p in embeddings.parameters())
    optimizer.step()
    after = model.state_dict()
    for name in ("patch_projection.weight", "patch_projection.bias", "position_embeddings.weight"):
        assert torch.equal(after[f"time_encoder.embeddings.{name}"], before[f"time_encoder.embeddings.{name}"])
    changed = [k for k in after if k.startswith("time_encoder.encoder.") and not torch.equal(after[k], before[k])]
    assert changed  # the transformer still learns
    model.save_pretrained(tmp_path)  # a saved run continues frozen; fine-tuning loads a trainable encoder
    reloaded = BrainVisTimeEncoderForMaskedModeling.from_pretrained(tmp_path).train()
    reloaded(_eeg(2)).loss.backward()
    assert all(p.grad is None for p in reloaded.time_encoder.embeddings.parameters())
    assert reloaded.time_encoder.encoder.layers[0].attention.query.weight.grad is not None
    from brainvis_hf.models import BrainVisTimeEncoderForEEGClassification

    finetune = BrainVisTimeEncoderForEEGClassification.from_pretrained(tmp_path)
    assert all(p.requires_grad for p in finetune.time_encoder.embeddings.parameters())
    default = BrainVisTimeEncoderForMaskedModeling(copy.deepcopy(tiny_time_config))
    assert all(p.requires_grad for p in default.time_encoder.embeddings.parameters())  # the paper trains them


def test_masked_modeling_is_deterministic_given_its_generator(tiny_time_config):
    torch.manual_seed(0)
    model = BrainVisTimeEncoderForMaskedModeling(copy.deepcopy(tiny_time_config)).eval()
    eeg = _eeg(4)
    with torch.no_grad():
        first = model(eeg, generator=torch.Generator().manual_seed(7))
        torch.rand(100)  # the global RNG moves on: must not matter
        second = model(eeg, generator=torch.Generator().manual_seed(7))
        other = model(eeg, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first.loss, second.loss)
    assert torch.equal(first.masked_indices, second.masked_indices)
    assert torch.equal(first.target_tokens, second.target_tokens)
    assert not torch.equal(first.masked_indices, other.masked_indices)


def test_masked_modeling_takes_explicit_targets_and_mask(tiny_time_config):
    torch.manual_seed(0)
    model = BrainVisTimeEncoderForMaskedModeling(copy.deepcopy(tiny_time_config)).eval()
    eeg = _eeg(2)
    tokens = torch.randint(0, model.config.codebook_size, (2, 110), generator=torch.Generator().manual_seed(1))
    noise = torch.rand(110, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a = model(eeg, noise=noise, target_tokens=tokens)
        torch.rand(100)
        b = model(eeg, noise=noise, target_tokens=tokens)
    assert torch.equal(a.loss, b.loss)
    assert torch.equal(a.target_tokens, tokens.gather(1, a.masked_indices))
    with pytest.raises(ValueError, match=r"target_tokens must have shape \(2, 110\)"):
        model(eeg, target_tokens=tokens[:, :5])


# ---------------------------------------------------------------------------------------------
# the linear baseline
# ---------------------------------------------------------------------------------------------


def test_binned_features_are_bin_means():
    eeg = np.arange(2 * 3 * 10, dtype=np.float32).reshape(2, 3, 10)
    features = binned_eeg_features(eeg, bin_size=4)  # 10 samples -> 2 bins of 4, 2 dropped
    assert features.shape == (2, 3 * 2)
    np.testing.assert_allclose(features[0, :2], [eeg[0, 0, :4].mean(), eeg[0, 0, 4:8].mean()])
    with pytest.raises(ValueError, match="bin_size"):
        binned_eeg_features(eeg, bin_size=11)


def test_linear_baseline_matches_an_independent_logistic_regression():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 20)
    pattern = rng.normal(size=(4, 8, 16))
    eeg = pattern[labels] + rng.normal(scale=2.0, size=(80, 8, 16))
    train, test = np.arange(80) % 4 != 0, np.arange(80) % 4 == 0
    scores = linear_baseline_accuracy(eeg[train], labels[train], {"test": (eeg[test], labels[test])}, bin_size=4)

    features = eeg.reshape(80, 8, 4, 4).mean(-1).reshape(80, -1)
    scaler = StandardScaler().fit(features[train])
    clf = LogisticRegression(max_iter=300).fit(scaler.transform(features[train]), labels[train])
    expected = float((clf.predict(scaler.transform(features[test])) == labels[test]).mean())
    assert scores == {"test": expected}
    assert expected > 0.5  # the data carry the class: the comparison is not between two chance levels


# ---------------------------------------------------------------------------------------------
# the chain learns what a linear decoder can, on a family nobody tuned the recipe to
# ---------------------------------------------------------------------------------------------


def test_signal_families_write_the_eeg_imagenet_format(tmp_path):
    from brainvis_hf.data.eeg_imagenet import load_signals

    files = write_signal_family(tmp_path, "induced", background="drift", num_classes=4, num_images_per_class=3,
                                num_channels=8, seed=3)
    signals = load_signals(files.eeg_path)
    assert len(signals["dataset"]) == 4 * 3 * 2 and signals["dataset"][0]["eeg"].shape == (8, 500)
    assert set(SIGNAL_FAMILIES) == {"evoked", "induced", "spatial", "latency"}
    with pytest.raises(ValueError, match="family='alpha'"):
        write_signal_family(tmp_path / "x", "alpha")


@pytest.mark.slow
def test_tiny_chain_reaches_the_linear_baseline_on_an_unseen_family(tmp_path):
    """time-pretrain -> time-finetune -> freq -> timefreq (tiny preset, the README's chain) on evoked waves
    over 1/f noise, 10 classes."""
    from brainvis_hf.training import train_stage

    files = write_signal_family(tmp_path / "raw", "evoked", background="pink", difficulty=0.3, num_classes=10,
                                num_images_per_class=12, seed=11)
    data = prepare_dataset(load_eeg_imagenet(files.eeg_path, files.splits_path, cache_dir=tmp_path / "cache"),
                           tmp_path / "prepared")
    quiet = {"disable_tqdm": True, "report_to": []}
    train_stage("time-pretrain", data, tmp_path / "tp", preset="tiny", seed=0, training_overrides=quiet,
                linear_baseline=False)
    train_stage("time-finetune", data, tmp_path / "ft", preset="tiny", seed=0, init=(tmp_path / "tp",),
                training_overrides=quiet, linear_baseline=False)
    train_stage("freq", data, tmp_path / "fr", preset="tiny", seed=0, training_overrides=quiet, linear_baseline=False)
    result = train_stage("timefreq", data, tmp_path / "tf", preset="tiny", seed=0, init=(tmp_path / "ft", tmp_path / "fr"),
                         training_overrides=quiet)
    metrics = json.loads((tmp_path / "tf" / "metrics.json").read_text())
    chain, linear = metrics["evaluation"]["test"]["accuracy"], metrics["linear_baseline"]["test"]["accuracy"]
    print(f"chain {chain:.3f}, linear baseline {linear:.3f}")
    assert result.metrics["linear_baseline"] == metrics["linear_baseline"]
    assert linear >= 0.5  # the family carries the class for a linear decoder
    assert chain >= 0.8 * linear
    card = (tmp_path / "tf" / "README.md").read_text()
    assert "linear baseline" in card.lower()


def test_runs_record_the_recipe_options_that_differ_from_the_paper():
    from brainvis_hf.hub.cards import linear_baseline_text
    from brainvis_hf.models import BrainVisConfig, BrainVisTimeEncoderConfig
    from brainvis_hf.training.stages import recipe_options

    tiny = BrainVisConfig.from_pretrained(preset_dir("timefreq", "tiny"))
    assert recipe_options(tiny, {"lr_scheduler_type": "cosine", "optim": "adamw_torch"}) == {
        "time.input_normalization": "recording", "time.pooling_segments": 110, "time.lmm_freeze_embeddings": True,
        "freq.spectrum_scaling": "log",
        "freq.spectrum_normalization": "batch", "freq.readout": "flatten", "lr_scheduler_type": "cosine",
    }
    assert recipe_options(BrainVisTimeEncoderConfig()) == {}  # the paper's network: nothing to declare
    assert recipe_options(BrainVisConfig()) == {}
    assert recipe_options(BrainVisConfig(alignment_centred_loss_weight=2.0)) == {"model.alignment_centred_loss_weight": 2.0}
    metrics = {"evaluation": {"test": {"accuracy": 0.05}}, "linear_baseline": {"model": "LR", "test": {"accuracy": 0.99}}}
    text = linear_baseline_text(metrics)
    assert "test 0.99" in text and "this model: 0.05" in text and "underperforms a linear decoder" in text
    metrics["evaluation"]["test"]["accuracy"] = 0.95
    assert "underperforms" not in linear_baseline_text(metrics)
    assert linear_baseline_text({"evaluation": {}}) == ""

"""The whole chain on a synthetic THINGS-EEG2 (17 channels x 100 samples, 100 Hz) with the
``things-eeg2-small`` preset (its architecture and hyper-parameters; only the epoch counts are
cut), then ``brainvis evaluate --zero-shot`` on the unseen test concepts.

Data: 40 training concepts x 4 images, 16 test concepts, 2 subjects (32 zero-shot queries). The
synthetic concept signal is a linear function of an 8-d embedding; here the embedding is the
top-8 principal components of the tiny CLIP text encoder's encodings of the concept words, so
the EEG carries what the alignment targets of *unseen* concepts look like, and zero-shot
retrieval is possible. The control writes the same structure without signal: retrieval must
sit at chance. Both are judged with exact binomial bounds on the 32 queries' hits (measured on
one thread: 16-way top-1 0.69 with signal, 0.06 without, chance 0.0625; ~20 s per chain).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import binom

QUIET = {"disable_tqdm": True, "report_to": []}
NUM_TRAIN, NUM_TEST = 40, 16
PRESET = "things-eeg2-small"
# the preset's architecture and hyper-parameters; only the epochs are cut (~20 s a chain on one thread)
EPOCHS = {"time-pretrain": 1, "time-finetune": 1, "freq": 1, "timefreq": 3, "align": 10}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from brainvis_hf.pipelines.tiny import build_tiny_clip_text_model, build_tiny_clip_tokenizer

    folder = tmp_path_factory.mktemp("clip") / "tiny-clip"
    tokenizer = build_tiny_clip_tokenizer(save_dir=folder)
    encoder = build_tiny_clip_text_model(hidden_size=32, tokenizer=tokenizer)
    encoder.save_pretrained(folder)
    return folder, tokenizer, encoder


def _run_chain(root, tiny_clip, *, signal: bool):
    from brainvis_hf.data import load_things_eeg2, prepare_dataset, write_synthetic_things_eeg2
    from brainvis_hf.data.clip_targets import compute_clip_targets, encode_texts
    from brainvis_hf.data.things_eeg2 import _synthetic_words
    from brainvis_hf.training import train_stage

    _, tokenizer, encoder = tiny_clip
    words = _synthetic_words(NUM_TRAIN + NUM_TEST)
    with torch.no_grad():
        text = encode_texts(words, tokenizer, encoder).flatten(1).numpy()
    text = text - text.mean(axis=0)
    u, s, _ = np.linalg.svd(text, full_matrices=False)
    embeddings = {w: u[i, :8] * s[:8] for i, w in enumerate(words)}
    files = write_synthetic_things_eeg2(
        root / "raw", num_subjects=2, num_train_concepts=NUM_TRAIN, images_per_concept=4, num_test_concepts=NUM_TEST,
        train_repetitions=4, test_repetitions=8, concept_embeddings=embeddings, signal=signal, signal_strength=2.0,
        seed=0,
    )
    ds = load_things_eeg2(files.output_dir, average_repetitions=2, cache_dir=root / "cache")
    data = prepare_dataset(ds, root / "prepared")
    compute_clip_targets(data, captioner=None, tokenizer=tokenizer, text_encoder=encoder, device="cpu",
                         show_progress=False)
    out = root / "runs"

    def run(stage, folder, **kwargs):
        return train_stage(stage, data, out / folder, preset=PRESET, seed=0,
                           training_overrides={**QUIET, "num_train_epochs": EPOCHS[stage]}, **kwargs)

    results = {
        "time-pretrain": run("time-pretrain", "time", linear_probe_every_n_epochs=1),
        "time-finetune": run("time-finetune", "finetune", init=[out / "time"]),
        "freq": run("freq", "freq"),
        "timefreq": run("timefreq", "timefreq", init=[out / "finetune", out / "freq"]),
        "align": run("align", "align", init=[out / "timefreq"]),
    }
    return data, results


def _zero_shot_cli(data, model_dir, clip_folder, output):
    from brainvis_hf.cli import main

    code = main(["evaluate", "--zero-shot", "--model", str(model_dir), "--data", str(data),
                 "--clip-model", str(clip_folder), "--output", str(output), "--device", "cpu"])
    assert code == 0
    return json.loads((output / "zero_shot.json").read_text())


def _hits(metrics, key):
    return round(metrics["text"][key] * metrics["text"]["num_queries"])


@pytest.fixture(scope="module")
def signal_chain(tmp_path_factory, tiny_clip):
    root = tmp_path_factory.mktemp("things_signal")
    return (root,) + _run_chain(root, tiny_clip, signal=True)


@pytest.mark.slow
def test_every_stage_trains_on_17x100_with_the_small_preset(signal_chain):
    from transformers import AutoConfig

    from brainvis_hf.presets import preset_dir

    _, _, results = signal_chain
    for stage, result in results.items():
        data = result.metrics["data"]
        assert (data["num_channels"], data["num_samples"]) == (17, 100), stage
        assert result.metrics["preset"] == PRESET
        assert np.isfinite(result.metrics["train"]["train_loss"]), stage
    # every stage's network is the preset's, recipe options included
    shipped_time = AutoConfig.from_pretrained(preset_dir("time_encoder", PRESET)).to_dict()
    shipped_freq = AutoConfig.from_pretrained(preset_dir("freq_encoder", PRESET)).to_dict()
    time_keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "codebook_size",
                 "wave_length", "pooling_segments", "input_normalization", "num_regressor_layers")
    freq_keys = ("feature_size", "lstm_hidden_size", "readout", "spectrum_scaling", "spectrum_normalization")
    unified = [results[s].model.config for s in ("timefreq", "align")]
    for config in [results[s].model.config for s in ("time-pretrain", "time-finetune")] + [c.time_config for c in unified]:
        config = config if isinstance(config, dict) else config.to_dict()
        assert {k: config[k] for k in time_keys} == {k: shipped_time[k] for k in time_keys}
    for config in [results["freq"].model.config] + [c.freq_config for c in unified]:
        config = config if isinstance(config, dict) else config.to_dict()
        assert {k: config[k] for k in freq_keys} == {k: shipped_freq[k] for k in freq_keys}
    assert results["time-pretrain"].model.config.num_units == 25  # 100 samples / wave length 4
    assert results["time-pretrain"].metrics["linear_probe"]  # the probe ran on the 17 x 100 data


@pytest.mark.slow
def test_zero_shot_above_chance_with_signal_and_at_chance_without(signal_chain, tiny_clip, tmp_path_factory):
    root, data, results = signal_chain
    metrics = _zero_shot_cli(data, results["align"].output_dir, tiny_clip[0], root / "zs")
    text = metrics["text"]
    n = text["num_queries"]
    assert metrics["train_overlap"] == [] and len(metrics["concepts"]) == NUM_TEST
    assert n == 2 * NUM_TEST and text["skipped_n_ways"] == [50, 200]
    assert text["chance_16way_top1"] == 1 / NUM_TEST
    # Above chance: one-sided exact binomial test of the 32 queries' 16-way top-1 hits against
    # chance 1/16 at p < 1e-3 (that needs >= 8 hits, 25%; measured 22).
    assert binom.sf(_hits(metrics, "16way_top1") - 1, n, 1 / NUM_TEST) < 1e-3, text
    assert text["2way_top1"] > 0.75
    assert (root / "zs" / "zero_shot.md").read_text().startswith("## Zero-shot retrieval (test split, 16 concepts)")

    control_root = tmp_path_factory.mktemp("things_nosignal")
    control_data, control = _run_chain(control_root, tiny_clip, signal=False)
    control_metrics = _zero_shot_cli(control_data, control["align"].output_dir, tiny_clip[0], control_root / "zs")
    keys = ("2way_top1", "4way_top1", "16way_top1", "16way_top5")
    print("zero-shot", {k: round(text[k], 3) for k in keys},
          "no signal", {k: round(control_metrics["text"][k], 3) for k in keys})
    # At chance: the hits lie in the central 99.9% of Binomial(32, chance) (top-1: 0..8, top-5: 2..19)
    for key, chance in (("16way_top1", 1 / NUM_TEST), ("16way_top5", 5 / NUM_TEST)):
        low, high = binom.ppf(0.0005, n, chance), binom.isf(0.0005, n, chance)
        assert low <= _hits(control_metrics, key) <= high, (key, control_metrics["text"])
    # 2-way: a mean of 32 per-query rank fractions; at chance its sd is ~ sqrt(1/12 / 32) = 0.05
    assert abs(control_metrics["text"]["2way_top1"] - 0.5) < 0.2


@pytest.mark.slow
def test_zero_shot_section_in_the_model_card_is_replaced_not_duplicated(signal_chain, tiny_clip, tmp_path):
    _, data, results = signal_chain
    card = results["align"].output_dir / "README.md"
    for _ in range(2):
        _zero_shot_cli(data, results["align"].output_dir, tiny_clip[0], tmp_path / "zs")
    text = card.read_text()
    assert text.count("## Zero-shot retrieval (test split, 16 concepts)") == 1
    assert "| text | 16 |" in text


def test_zero_shot_cli_needs_its_folders(capsys):
    from brainvis_hf.cli import main

    assert main(["evaluate", "--zero-shot", "--model", "m"]) == 2
    assert "missing --data, --clip-model" in capsys.readouterr().err
    assert main(["evaluate"]) == 2
    assert "--generated DIR is required (or use --zero-shot)" in capsys.readouterr().err


@pytest.mark.parametrize("preset", ["things-eeg2-tiny", "things-eeg2-small", "things-eeg2-base"])
def test_presets_build_and_run_at_17x100(preset):
    from transformers import AutoConfig

    from brainvis_hf.models import BrainVisFreqEncoderForEEGClassification, BrainVisTimeEncoderForMaskedModeling
    from brainvis_hf.presets import preset_dir
    from brainvis_hf.training.arguments import STAGES, load_training_config

    time_config = AutoConfig.from_pretrained(preset_dir("time_encoder", preset))
    assert (time_config.num_channels, time_config.num_samples) == (17, 100)
    assert 100 % time_config.wave_length == 0
    eeg = torch.randn(2, 17, 100)
    out = BrainVisTimeEncoderForMaskedModeling(time_config)(eeg_values=eeg)
    assert torch.isfinite(out.loss)
    freq = BrainVisFreqEncoderForEEGClassification(
        AutoConfig.from_pretrained(preset_dir("freq_encoder", preset), num_labels=5))
    assert freq(eeg_values=eeg).logits.shape == (2, 5)
    for stage in STAGES:
        assert load_training_config(stage, preset)["model"]


@pytest.mark.slow
def test_zero_shot_cli_reports_the_image_space_when_given(signal_chain, tiny_clip, tmp_path):
    from safetensors.numpy import save_file

    from brainvis_hf.cli import main
    from brainvis_hf.data import load_prepared_dataset

    _, data, results = signal_chain
    labels = np.asarray(load_prepared_dataset(data)["test"]["label"])
    concepts = sorted(set(labels.tolist()))
    position = np.array([concepts.index(v) for v in labels])
    # image-space queries that point at their own concept's image feature: retrieval must be perfect
    candidates = np.eye(NUM_TEST, dtype=np.float32) + 0.01
    save_file({"queries": candidates[position], "candidates": candidates}, str(tmp_path / "img.safetensors"))
    assert main(["evaluate", "--zero-shot", "--model", str(results["align"].output_dir), "--data", str(data),
                 "--clip-model", str(tiny_clip[0]), "--output", str(tmp_path / "zs"), "--device", "cpu",
                 "--image-features", str(tmp_path / "img.safetensors")]) == 0
    metrics = json.loads((tmp_path / "zs" / "zero_shot.json").read_text())
    assert metrics["image"]["16way_top1"] == 1.0 and "| image | 16 |" in (tmp_path / "zs" / "zero_shot.md").read_text()

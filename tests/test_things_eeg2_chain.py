"""The whole chain on a synthetic THINGS-EEG2 (17 channels x 100 samples, 100 Hz) with the
``things-eeg2-tiny`` preset, then ``brainvis evaluate --zero-shot`` on the unseen test concepts.

Data: 40 training concepts x 4 images, 16 test concepts, 2 subjects. The synthetic concept
signal is a linear function of an 8-d embedding; here the embedding is the top-8 principal
components of the tiny CLIP text encoder's encodings of the concept words, so the EEG carries
what the alignment targets of *unseen* concepts look like, and zero-shot retrieval is possible.
The control writes the same structure without signal: retrieval must sit at chance.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

QUIET = {"disable_tqdm": True, "report_to": []}
NUM_TRAIN, NUM_TEST = 40, 16


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
    common = dict(preset="things-eeg2-tiny", seed=0)
    results = {
        "time-pretrain": train_stage("time-pretrain", data, out / "time", linear_probe_every_n_epochs=1,
                                     training_overrides={**QUIET, "num_train_epochs": 1}, **common),
        "time-finetune": train_stage("time-finetune", data, out / "finetune", init=[out / "time"],
                                     training_overrides={**QUIET, "num_train_epochs": 1}, **common),
        "freq": train_stage("freq", data, out / "freq", training_overrides={**QUIET, "num_train_epochs": 1}, **common),
        "timefreq": train_stage("timefreq", data, out / "timefreq", init=[out / "finetune", out / "freq"],
                                training_overrides={**QUIET, "num_train_epochs": 3}, **common),
        "align": train_stage("align", data, out / "align", init=[out / "timefreq"],
                             training_overrides={**QUIET, "num_train_epochs": 10}, **common),
    }
    return data, results


def _zero_shot_cli(data, model_dir, clip_folder, output):
    from brainvis_hf.cli import main

    code = main(["evaluate", "--zero-shot", "--model", str(model_dir), "--data", str(data),
                 "--clip-model", str(clip_folder), "--output", str(output), "--device", "cpu"])
    assert code == 0
    return json.loads((output / "zero_shot.json").read_text())


@pytest.fixture(scope="module")
def signal_chain(tmp_path_factory, tiny_clip):
    root = tmp_path_factory.mktemp("things_signal")
    return (root,) + _run_chain(root, tiny_clip, signal=True)


@pytest.mark.slow
def test_every_stage_trains_on_17x100(signal_chain):
    _, _, results = signal_chain
    for stage, result in results.items():
        data = result.metrics["data"]
        assert (data["num_channels"], data["num_samples"]) == (17, 100), stage
        assert result.metrics["preset"] == "things-eeg2-tiny"
        assert np.isfinite(result.metrics["train"]["train_loss"]), stage
    time_config = results["time-pretrain"].model.config
    assert time_config.wave_length == 5 and time_config.num_units == 20
    assert results["time-pretrain"].metrics["linear_probe"]  # the probe ran on the 17 x 100 data


@pytest.mark.slow
def test_zero_shot_above_chance_with_signal_and_at_chance_without(signal_chain, tiny_clip, tmp_path_factory):
    root, data, results = signal_chain
    metrics = _zero_shot_cli(data, results["align"].output_dir, tiny_clip[0], root / "zs")
    text = metrics["text"]
    assert metrics["train_overlap"] == [] and len(metrics["concepts"]) == NUM_TEST
    assert text["num_queries"] == 2 * NUM_TEST and text["skipped_n_ways"] == [50, 200]
    assert text["16way_top1"] > 2 * text["chance_16way_top1"]
    assert text["2way_top1"] > 0.65
    assert (root / "zs" / "zero_shot.md").read_text().startswith("## Zero-shot retrieval (test split, 16 concepts)")

    control_root = tmp_path_factory.mktemp("things_nosignal")
    control_data, control = _run_chain(control_root, tiny_clip, signal=False)
    control_metrics = _zero_shot_cli(control_data, control["align"].output_dir, tiny_clip[0], control_root / "zs")
    print("zero-shot", {k: round(text[k], 3) for k in ("2way_top1", "4way_top1", "16way_top1", "16way_top5")},
          "no signal", {k: round(control_metrics["text"][k], 3) for k in ("2way_top1", "4way_top1", "16way_top1", "16way_top5")})
    for key in ("2way_top1", "4way_top1", "16way_top5"):
        assert abs(control_metrics["text"][key] - control_metrics["text"][f"chance_{key}"]) < 0.1, key


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


@pytest.mark.parametrize("preset", ["things-eeg2-tiny", "things-eeg2-small"])
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

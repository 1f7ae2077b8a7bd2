"""MNE input (brainvis_hf.data.mne_io), signal metadata in the configs, and their use in the
pipeline, `brainvis generate` and training. The epochs are small ``mne.EpochsArray`` objects
built here."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

mne = pytest.importorskip("mne")

from brainvis_hf.data.mne_io import (  # noqa: E402
    dataset_signal_info,
    epochs_to_dataset_dict,
    epochs_to_eeg_values,
    raw_to_eeg_values,
)
from brainvis_hf.models import BrainVisConfig, BrainVisFreqEncoderConfig, BrainVisTimeEncoderConfig  # noqa: E402
from brainvis_hf.models.configuration_brainvis import set_signal_info  # noqa: E402

NAMES = ["Fz", "Cz", "Pz", "Oz"]


def small_config(**kwargs) -> BrainVisConfig:
    """A 4-channel unified config: 40 samples, window 20..60 (samples after the event)."""
    time = dict(num_channels=4, num_samples=40, wave_length=4, hidden_size=8, num_attention_heads=2,
                intermediate_size=8, num_hidden_layers=1, num_regressor_layers=1)  # fmt: skip
    return BrainVisConfig(time_config=time, freq_config=dict(num_channels=4, num_samples=40), eeg_time_window=(20, 60), **kwargs)


def make_epochs(names, sfreq=1000.0, n_times=100, tmin=0.0, n_epochs=3, seed=0, events=None, event_id=None):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((n_epochs, len(names), n_times))
    info = mne.create_info(list(names), sfreq, ch_types="eeg")
    return mne.EpochsArray(data, info, tmin=tmin, events=events, event_id=event_id, verbose="error"), data


# ---------------------------------------------------------------------------------------------
# configs
# ---------------------------------------------------------------------------------------------


def test_signal_metadata_fields_default_and_round_trip(tmp_path):
    for cls in (BrainVisTimeEncoderConfig, BrainVisFreqEncoderConfig, BrainVisConfig):
        config = cls()
        assert (config.sfreq, config.ch_names, config.chs_info) == (None, None, None)
    config = small_config(sfreq=250, ch_names=NAMES)
    assert config.time_config.sfreq == config.freq_config.sfreq == 250.0
    assert config.time_config.ch_names == config.freq_config.ch_names == NAMES
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["sfreq"] == 250.0 and saved["ch_names"] == NAMES and saved["time_config"]["ch_names"] == NAMES
    loaded = BrainVisConfig.from_pretrained(tmp_path)
    assert loaded.sfreq == 250.0 and loaded.ch_names == NAMES and loaded.freq_config.sfreq == 250.0
    # an old config.json without the fields still loads, with the defaults
    for key in ("sfreq", "ch_names", "chs_info"):
        saved.pop(key)
        for sub in ("time_config", "freq_config"):
            saved[sub].pop(key, None)
    (tmp_path / "config.json").write_text(json.dumps(saved))
    old = BrainVisConfig.from_pretrained(tmp_path)
    assert (old.sfreq, old.ch_names, old.time_config.sfreq) == (None, None, None)


def test_signal_metadata_is_validated_and_kept_consistent():
    with pytest.raises(ValueError, match=r"BrainVisTimeEncoderConfig.ch_names has 2 names but the model has num_channels=128"):
        BrainVisTimeEncoderConfig(ch_names=["Cz", "Pz"])
    with pytest.raises(ValueError, match=r"duplicate channel names: \['Cz'\]"):
        small_config(ch_names=["Cz", "Cz", "Pz", "Oz"])
    with pytest.raises(ValueError, match=r"sfreq must be a positive sampling rate"):
        BrainVisFreqEncoderConfig(sfreq=0)
    with pytest.raises(ValueError, match=r"Conflicting sfreq: BrainVisConfig.sfreq=500.0; BrainVisConfig.time_config.sfreq=250.0"):
        time = dict(num_channels=4, num_samples=40, wave_length=4, hidden_size=8, num_attention_heads=2,
                    intermediate_size=8, num_hidden_layers=1, num_regressor_layers=1, sfreq=250)  # fmt: skip
        BrainVisConfig(time_config=time, freq_config=dict(num_channels=4, num_samples=40), eeg_time_window=(20, 60), sfreq=500)
    # chs_info (as in mne.Info["chs"], arrays included) gives ch_names and is stored JSON-safe
    epochs, _ = make_epochs(NAMES)
    chs = [dict(ch) for ch in epochs.info["chs"]]
    config = small_config(chs_info=chs)
    assert config.ch_names == NAMES and isinstance(config.chs_info[0]["loc"], list)
    json.dumps(config.to_dict(), allow_nan=False)
    # set_signal_info records new values everywhere and refuses a different rate
    config = small_config()
    set_signal_info(config, sfreq=1000, ch_names=NAMES)
    assert config.freq_config.sfreq == 1000.0 and config.time_config.ch_names == NAMES
    with pytest.raises(ValueError, match=r"Conflicting sfreq: .*new value=250.0"):
        set_signal_info(config, sfreq=250)


# ---------------------------------------------------------------------------------------------
# epochs / raw -> model input
# ---------------------------------------------------------------------------------------------


def test_channels_are_picked_and_reordered_by_name():
    config = small_config(sfreq=1000, ch_names=NAMES)
    recorded = ["Oz", "EOG1", "Pz", "Fz", "Cz"]  # other order, one extra channel
    epochs, data = make_epochs(recorded)
    got = epochs_to_eeg_values(epochs, config)
    order = [recorded.index(name) for name in NAMES]
    assert got.dtype == np.float32 and got.shape == (3, 4, 40)
    np.testing.assert_allclose(got, data[:, order, 20:60].astype(np.float32))
    np.testing.assert_allclose(epochs_to_eeg_values(epochs, config, scale=1e6), got * 1e6, rtol=1e-6)


def test_missing_channels_are_named():
    config = small_config(ch_names=NAMES)
    epochs, _ = make_epochs(["Fz", "Oz", "T7"])
    with pytest.raises(ValueError) as info:
        epochs_to_eeg_values(epochs, config)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("EpochsArray lacks 2 channel(s) the model expects (config.ch_names): Cz, Pz;")
    # without ch_names in the config the EEG channels are taken in order, and must be as many
    with pytest.raises(ValueError, match=r"has 3 EEG channels but the model expects 4, and its configuration records no ch_names"):
        epochs_to_eeg_values(epochs, small_config())


def test_resampled_to_the_model_rate():
    config = small_config(sfreq=1000, ch_names=NAMES)
    sfreq, f = 250.0, 7.0
    times = np.arange(-0.2, 0.4, 1 / sfreq)
    phases = np.arange(4)[:, None]
    data = np.sin(2 * np.pi * f * times[None, :] + phases)[None]  # 1 epoch, 4 channels
    epochs = mne.EpochsArray(data, mne.create_info(NAMES, sfreq, "eeg"), tmin=times[0], verbose="error")
    got = epochs_to_eeg_values(epochs, config)
    t = np.arange(20, 60) / 1000.0  # the model's window: 20..59 ms at 1 kHz
    expected = np.sin(2 * np.pi * f * t[None, :] + phases)
    assert got.shape == (1, 4, 40)
    np.testing.assert_allclose(got[0], expected, atol=2e-3)


def test_epochs_must_cover_the_window():
    config = small_config(sfreq=1000, ch_names=NAMES)
    epochs, _ = make_epochs(NAMES, n_times=50)  # 0 .. 49 ms, the window ends at 60 ms
    with pytest.raises(ValueError, match=r"spans 0.000 .. 0.049 s around the event, but the model needs 0.020 .. 0.059 s"):
        epochs_to_eeg_values(epochs, config)


def test_raw_and_events_give_the_epochs_input():
    config = small_config(sfreq=1000, ch_names=NAMES)
    rng = np.random.default_rng(3)
    data = rng.standard_normal((4, 2000))
    raw = mne.io.RawArray(data[::-1].copy(), mne.create_info(NAMES[::-1], 1000.0, "eeg"), verbose="error")
    onsets = [100, 700, 1500]
    events = np.array([[s, 0, 1] for s in onsets])
    got = raw_to_eeg_values(raw, events, config)
    expected = np.stack([data[:, s + 20 : s + 60] for s in onsets]).astype(np.float32)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# data layer
# ---------------------------------------------------------------------------------------------


def test_epochs_to_dataset_dict_round_trips_through_prepare(tmp_path):
    from brainvis_hf.data import load_prepared_dataset, prepare_dataset

    codes = [2, 1, 2, 5]
    events = np.array([[i * 200, 0, c] for i, c in enumerate(codes)])
    epochs, data = make_epochs(["Cz", "Fz", "Pz", "Oz"], n_epochs=4, tmin=-0.01, n_times=80, events=events,
                               event_id={"cat": 2, "dog": 1, "canoe": 5})  # fmt: skip
    config = small_config(sfreq=1000, ch_names=NAMES)
    dd = epochs_to_dataset_dict(epochs, config=config, splits={"train": [0, 1, 2], "test": [3]}, subject=3)
    assert sorted(dd) == ["test", "train"]
    train = dd["train"]
    assert train.features["label"].names == ["dog", "cat", "canoe"]  # event-code order
    assert train["label"] == [1, 0, 1] and dd["test"]["label"] == [2]
    assert train["label_text"] == ["cat", "dog", "cat"] and train["subject"] == [3, 3, 3]
    assert dd["test"]["eeg_index"] == [3]
    # window 20..60 ms = samples 30..70 of epochs starting at -10 ms; channels in config order
    np.testing.assert_allclose(np.asarray(dd["test"]["eeg"][0]), data[3][[1, 0, 2, 3], 30:70].astype(np.float32))
    assert dataset_signal_info(dd) == {"sfreq": 1000.0, "ch_names": NAMES}

    prepare_dataset(dd, tmp_path / "prepared", card_metadata={"eeg_signal": dataset_signal_info(dd)})
    loaded = load_prepared_dataset(tmp_path / "prepared")
    np.testing.assert_allclose(np.asarray(loaded["test"]["eeg"][0]), np.asarray(dd["test"]["eeg"][0]))
    assert dataset_signal_info(tmp_path / "prepared") == {"sfreq": 1000.0, "ch_names": NAMES}
    # what training reads from the folder (and records in the model's config)
    from brainvis_hf.training.stages import describe_data

    assert describe_data(loaded, tmp_path / "prepared").signal == {"sfreq": 1000.0, "ch_names": NAMES}


def test_dataset_dict_errors_are_one_line():
    epochs, _ = make_epochs(NAMES, n_epochs=2)
    with pytest.raises(ValueError, match=r"labels has 3 entries but the epochs hold 2"):
        epochs_to_dataset_dict(epochs, labels=[0, 1, 0], class_names=["a", "b"])
    with pytest.raises(ValueError, match=r"labels \[4\] are outside 0..1"):
        epochs_to_dataset_dict(epochs, labels=[0, 4], class_names=["a", "b"])
    # without a config: all EEG channels, from time 0 to the end, at the epochs' rate
    dd = epochs_to_dataset_dict(epochs, labels=[0, 1], class_names=["a", "b"], label_words=["an a", "a b"])
    assert np.asarray(dd["train"]["eeg"][0]).shape == (4, 100) and dd["train"]["label_text"] == ["an a", "a b"]


def test_training_records_the_data_signal_info():
    from brainvis_hf.training.stages import DataInfo, record_data_signal_info

    config = small_config()
    data = DataInfo(path="d", num_channels=4, num_samples=40, num_labels=2, id2label={}, split_sizes={},
                    signal={"sfreq": 500.0, "ch_names": NAMES})  # fmt: skip
    record_data_signal_info(config, data)
    assert config.sfreq == config.time_config.sfreq == 500.0 and config.ch_names == NAMES
    other = DataInfo(**{**data.__dict__, "signal": {"sfreq": 250.0}})
    with pytest.raises(ValueError, match=r"The data in d does not match the model: Conflicting sfreq"):
        record_data_signal_info(config, other)


# ---------------------------------------------------------------------------------------------
# pipeline and `brainvis generate`
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def named_pipeline(tiny_alignment_model, tiny_sd_components):
    """The tiny pipeline with an alignment model whose config records 128 channel names and 1 kHz."""
    from brainvis_hf.models import BrainVisForCLIPAlignment
    from brainvis_hf.pipelines import BrainVisPipeline

    config = copy.deepcopy(tiny_alignment_model.config)
    set_signal_info(config, sfreq=1000.0, ch_names=[f"E{i}" for i in range(128)])
    model = BrainVisForCLIPAlignment(config).eval()
    model.load_state_dict(tiny_alignment_model.state_dict())
    components = dict(tiny_sd_components)
    components["scheduler"] = type(components["scheduler"]).from_config(components["scheduler"].config)
    pipe = BrainVisPipeline(eeg_encoder=model, **components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_pipeline_accepts_mne_epochs(named_pipeline):
    names = [f"E{i}" for i in range(128)]
    recorded = names[::-1] + ["STIM"]
    epochs, data = make_epochs(recorded, n_times=500, n_epochs=2, seed=5)
    fast = dict(num_inference_steps=2, refine_num_inference_steps=3, output_type="np")
    from_epochs = named_pipeline(epochs, generator=[torch.Generator().manual_seed(s) for s in (1, 2)], **fast)
    manual = torch.from_numpy(data[:, 127::-1][:, :128, 20:460].astype(np.float32))
    from_array = named_pipeline(manual, generator=[torch.Generator().manual_seed(s) for s in (1, 2)], **fast)
    np.testing.assert_allclose(from_epochs.images, from_array.images, atol=1e-5)
    assert from_epochs.predicted_labels == from_array.predicted_labels
    short, _ = make_epochs(names[:100], n_times=500)
    with pytest.raises(ValueError, match=r"lacks 28 channel\(s\) the model expects \(config.ch_names\): E100, E101"):
        named_pipeline(short, **fast)


def test_pipeline_accepts_raw_and_events(named_pipeline):
    names = [f"E{i}" for i in range(128)]
    data = np.random.default_rng(9).standard_normal((128, 3000))
    raw = mne.io.RawArray(data[::-1].copy(), mne.create_info(names[::-1], 1000.0, "eeg"), verbose="error")
    onsets = [200, 1700]
    events = np.array([[s, 0, 1] for s in onsets])
    fast = dict(num_inference_steps=2, refine_num_inference_steps=3, output_type="np")
    from_raw = named_pipeline((raw, events), generator=[torch.Generator().manual_seed(s) for s in (1, 2)], **fast)
    manual = torch.from_numpy(np.stack([data[:, s + 20 : s + 460] for s in onsets]).astype(np.float32))
    from_array = named_pipeline(manual, generator=[torch.Generator().manual_seed(s) for s in (1, 2)], **fast)
    np.testing.assert_allclose(from_raw.images, from_array.images, atol=1e-5)
    assert from_raw.predicted_labels == from_array.predicted_labels


def test_generate_cli_reads_epochs_files(tiny_pipeline_dir, tmp_path):
    from brainvis_hf.cli import main

    epochs, data = make_epochs([f"EEG{i:03d}" for i in range(128)], n_times=480, n_epochs=2, seed=6)
    fif = tmp_path / "rec-epo.fif"
    epochs.save(fif, verbose="error")
    npy = tmp_path / "rec.npy"
    np.save(npy, data[:, :, 20:460].astype(np.float32))
    args = ["--num-images-per-eeg", "1", "--steps", "2", "--refine-steps", "3", "--device", "cpu", "--quiet"]
    assert main(["generate", "--model", str(tiny_pipeline_dir), "--eeg", str(fif), "--output", str(tmp_path / "a"), *args]) == 0
    assert main(["generate", "--model", str(tiny_pipeline_dir), "--eeg", str(npy), "--output", str(tmp_path / "b"), *args]) == 0
    import PIL.Image

    for name in ("0_0.png", "1_0.png"):
        a = np.asarray(PIL.Image.open(tmp_path / "a" / "images" / name), dtype=np.int16)
        b = np.asarray(PIL.Image.open(tmp_path / "b" / "images" / name), dtype=np.int16)
        assert np.abs(a - b).max() <= 1

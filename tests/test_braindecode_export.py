"""Export of a prepared data set to braindecode's ``create_from_X_y`` arguments (X, y, sfreq,
ch_names), and to braindecode's dataset classes where braindecode is installed."""

from __future__ import annotations

import numpy as np
import pytest

mne = pytest.importorskip("mne")

from brainvis_hf.data import prepare_dataset  # noqa: E402
from brainvis_hf.data.braindecode_io import (  # noqa: E402
    load_braindecode_arrays,
    save_braindecode_arrays,
    to_braindecode_arrays,
    to_braindecode_dataset,
)
from brainvis_hf.data.mne_io import dataset_signal_info, epochs_to_dataset_dict  # noqa: E402

NAMES = ["Fz", "Cz", "Pz", "Oz"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((6, 4, 50))
    events = np.array([[i * 100, 0, 1 + i % 2] for i in range(6)])
    epochs = mne.EpochsArray(data, mne.create_info(NAMES, 250.0, "eeg"), events=events, event_id={"a": 1, "b": 2}, verbose="error")
    dd = epochs_to_dataset_dict(epochs, splits={"train": [0, 1, 2, 3], "test": [4, 5]})
    folder = tmp_path_factory.mktemp("bd") / "prepared"
    prepare_dataset(dd, folder, card_metadata={"eeg_signal": dataset_signal_info(dd)})
    return folder, data


def test_arrays_match_the_prepared_rows(prepared, tmp_path):
    folder, data = prepared
    arrays = to_braindecode_arrays(folder, "test")
    assert arrays["X"].dtype == np.float32 and arrays["X"].shape == (2, 4, 50)
    np.testing.assert_allclose(arrays["X"], data[4:6].astype(np.float32))
    assert arrays["y"].dtype == np.int64 and arrays["y"].tolist() == [0, 1]
    assert arrays["sfreq"] == 250.0 and arrays["ch_names"] == NAMES and arrays["class_names"] == ["a", "b"]
    back = load_braindecode_arrays(save_braindecode_arrays(arrays, tmp_path / "test.npz"))
    np.testing.assert_array_equal(back["X"], arrays["X"])
    np.testing.assert_array_equal(back["y"], arrays["y"])
    assert (back["sfreq"], back["ch_names"], back["class_names"]) == (250.0, NAMES, ["a", "b"])


def test_defaults_when_the_data_records_no_signal_info(prepared):
    from brainvis_hf.data import load_prepared_dataset

    folder, _ = prepared
    ds = load_prepared_dataset(folder)["train"]  # a bare Dataset: no card
    arrays = to_braindecode_arrays(ds)
    assert arrays["sfreq"] == 1000.0 and arrays["ch_names"] == ["EEG000", "EEG001", "EEG002", "EEG003"]
    with pytest.raises(ValueError, match=r"No split 'validation' in the data set \(it has \['test', 'train'\]\)"):
        to_braindecode_arrays(folder, "validation")
    with pytest.raises(ValueError, match=r"ch_names has 2 names but the EEG has 4 channels"):
        to_braindecode_arrays(ds, ch_names=["a", "b"])


def test_braindecode_windows_dataset(prepared):
    pytest.importorskip("braindecode")
    folder, data = prepared
    windows = to_braindecode_dataset(folder, "train")
    assert len(windows) == 4
    X, y, _ = windows[1]
    np.testing.assert_allclose(X, data[1], rtol=1e-6)
    assert y == 1

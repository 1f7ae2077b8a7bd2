"""Export a prepared data set to braindecode (https://braindecode.org).

braindecode builds its dataset classes from arrays with
``braindecode.datasets.create_from_X_y(X, y, drop_last_window, sfreq, ch_names, ...)``. This
module produces exactly those arguments from a prepared data folder (or a ``Dataset`` /
``DatasetDict`` in this package's schema), saves them as a plain ``.npz`` (no pickle), and, when
braindecode is installed, calls ``create_from_X_y`` with one window per trial. braindecode is not
a dependency (its current release needs a ``torchaudio`` built for another torch than this
package pins), so the array export is the stable interface; see docs/data.md for the round trip.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .mne_io import DEFAULT_SFREQ, dataset_signal_info


def _split(data, split: str):
    import datasets

    if isinstance(data, (str, os.PathLike)):
        from .prepare import load_prepared_dataset

        data = load_prepared_dataset(data)
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise ValueError(f"No split {split!r} in the data set (it has {sorted(data)}).")
        return data[split]
    if isinstance(data, datasets.Dataset):
        return data
    raise TypeError(f"Expected a prepared data folder, a datasets.DatasetDict or a Dataset, got {type(data).__name__}.")


def to_braindecode_arrays(
    data,
    split: str = "train",
    *,
    sfreq: float | None = None,
    ch_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``{"X", "y", "sfreq", "ch_names"}``: the arguments of braindecode's ``create_from_X_y``.

    Args:
        data: a prepared data folder (``brainvis data prepare``), a ``DatasetDict`` or a ``Dataset``.
        split: the split to export (ignored for a ``Dataset``).
        sfreq, ch_names: the sampling rate and channel names; default what the data records
            (card YAML ``eeg_signal``), else 1000 Hz (EEG-ImageNet) and ``EEG000, EEG001, ...``.

    Returns:
        ``X`` float32 ``(N, C, T)``, ``y`` int64 ``(N,)`` class indices, ``sfreq`` (float) and
        ``ch_names`` (list of str), plus ``class_names`` (the ``ClassLabel`` names).
    """
    recorded = dataset_signal_info(data) or {}
    ds = _split(data, split)
    arrays = ds.with_format("numpy", columns=["eeg", "label"])
    X = np.asarray(arrays["eeg"], dtype=np.float32)
    y = np.asarray(arrays["label"], dtype=np.int64)
    if X.ndim != 3:
        raise ValueError(f"Column 'eeg' must hold (channels, time) arrays; got an array of shape {X.shape}.")
    sfreq = float(sfreq if sfreq is not None else recorded.get("sfreq") or DEFAULT_SFREQ)
    ch_names = list(ch_names if ch_names is not None else recorded.get("ch_names") or [f"EEG{i:03d}" for i in range(X.shape[1])])
    if len(ch_names) != X.shape[1]:
        raise ValueError(f"ch_names has {len(ch_names)} names but the EEG has {X.shape[1]} channels.")
    label = ds.features["label"]
    class_names = list(getattr(label, "names", []) or [])
    return {"X": X, "y": y, "sfreq": sfreq, "ch_names": ch_names, "class_names": class_names}


def save_braindecode_arrays(arrays: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write :func:`to_braindecode_arrays`' result as an ``.npz`` (strings as Unicode arrays, so
    :func:`load_braindecode_arrays` reads it with ``allow_pickle=False``)."""
    path = Path(path)
    np.savez(
        path,
        X=arrays["X"],
        y=arrays["y"],
        sfreq=np.float64(arrays["sfreq"]),
        ch_names=np.asarray(arrays["ch_names"], dtype=str),
        class_names=np.asarray(arrays.get("class_names", []), dtype=str),
    )
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def load_braindecode_arrays(path: str | os.PathLike) -> dict[str, Any]:
    """Read an ``.npz`` written by :func:`save_braindecode_arrays` (no pickle)."""
    with np.load(path, allow_pickle=False) as f:
        missing = [k for k in ("X", "y", "sfreq", "ch_names") if k not in f.files]
        if missing:
            raise ValueError(f"{path}: not a braindecode array export (missing {missing}).")
        return {
            "X": f["X"],
            "y": f["y"],
            "sfreq": float(f["sfreq"]),
            "ch_names": [str(c) for c in f["ch_names"]],
            "class_names": [str(c) for c in f["class_names"]] if "class_names" in f.files else [],
        }


def to_braindecode_dataset(data, split: str = "train", **kwargs):
    """braindecode's windows dataset (``BaseConcatDataset``) of a split, one window per trial:
    ``create_from_X_y(X, y, drop_last_window=False, sfreq, ch_names, window_size_samples=T,
    window_stride_samples=T)``. Needs ``braindecode`` installed."""
    try:
        from braindecode.datasets import create_from_X_y
    except ImportError as error:
        raise ImportError(
            "to_braindecode_dataset needs braindecode; or use to_braindecode_arrays / save_braindecode_arrays "
            "and call braindecode.datasets.create_from_X_y where braindecode is installed (docs/data.md)."
        ) from error
    arrays = data if isinstance(data, dict) and "X" in data else to_braindecode_arrays(data, split, **kwargs)
    n_times = arrays["X"].shape[2]
    return create_from_X_y(
        arrays["X"], arrays["y"], drop_last_window=False, sfreq=arrays["sfreq"], ch_names=arrays["ch_names"],
        window_size_samples=n_times, window_stride_samples=n_times,
    )  # fmt: skip


__all__ = ["load_braindecode_arrays", "save_braindecode_arrays", "to_braindecode_arrays", "to_braindecode_dataset"]

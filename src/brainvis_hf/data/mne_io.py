"""MNE input: ``mne.Epochs`` (or ``mne.io.Raw`` + events) -> BrainVis model input and data sets.

MNE is an optional extra (``pip install brainvis-hf[mne]``); it is imported only here, when one of
these functions runs. What the model expects comes from its configuration:

* channels: ``config.ch_names`` when recorded (picked by name and put in that order; missing
  channels are named in the error), else the recording's EEG channels in their order, which
  must then be ``num_channels`` of them;
* rate: ``config.sfreq`` (``None``: EEG-ImageNet's 1000 Hz); other rates are resampled;
* window: ``config.eeg_time_window`` (samples after the event at that rate; EEG-ImageNet:
  20..460, i.e. 20-460 ms), or ``0 .. num_samples`` for the single-branch encoders.

MNE stores EEG in volts; ``scale`` converts to the units the model was trained on.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

DEFAULT_SFREQ = 1000.0  # EEG-ImageNet (and this package's synthetic data)


def _import_mne():
    try:
        import mne
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("MNE input needs the `mne` package: pip install 'brainvis-hf[mne]'") from error
    return mne


def model_signal_layout(config) -> dict[str, Any]:
    """What a model configuration expects: ``num_channels``, ``num_samples``, ``sfreq``,
    ``ch_names`` and the ``window`` ``(start, end)`` in samples after the event."""
    time_config = getattr(config, "time_config", None)
    num_channels = int(getattr(time_config, "num_channels", None) or config.num_channels)
    num_samples = int(getattr(time_config, "num_samples", None) or config.num_samples)
    window = tuple(int(v) for v in getattr(config, "eeg_time_window", None) or (0, num_samples))
    if window[1] - window[0] != num_samples:
        window = (window[0], window[0] + num_samples)
    sfreq = getattr(config, "sfreq", None)
    return {
        "num_channels": num_channels,
        "num_samples": num_samples,
        "sfreq": float(sfreq) if sfreq is not None else DEFAULT_SFREQ,
        "ch_names": list(config.ch_names) if getattr(config, "ch_names", None) else None,
        "window": window,
    }


def _describe(inst) -> str:
    filenames = getattr(inst, "filenames", None) or [getattr(inst, "filename", None)]
    name = next((str(f) for f in filenames if f), None)
    return f"{type(inst).__name__} {name}" if name else type(inst).__name__


def _select_channels(inst, ch_names: Sequence[str] | None, num_channels: int) -> list[str]:
    """The channel names to read, in model order; one-line errors naming missing channels."""
    available = list(inst.ch_names)
    if ch_names is not None:
        missing = [name for name in ch_names if name not in available]
        if missing:
            shown = ", ".join(missing[:20]) + (f" ... ({len(missing)} in all)" if len(missing) > 20 else "")
            raise ValueError(
                f"{_describe(inst)} lacks {len(missing)} channel(s) the model expects (config.ch_names): {shown}; "
                f"it has {len(available)} channels ({', '.join(available[:8])}{', ...' if len(available) > 8 else ''})."
            )
        return list(ch_names)
    mne = _import_mne()
    eeg = [available[i] for i in mne.pick_types(inst.info, eeg=True, exclude=[])]
    if len(eeg) != num_channels:
        raise ValueError(
            f"{_describe(inst)} has {len(eeg)} EEG channels but the model expects {num_channels}, and its "
            "configuration records no ch_names to pick them by; pass ch_names=[...] (the model's channel order)."
        )
    return eeg


def epochs_to_eeg_values(
    epochs,
    config=None,
    *,
    ch_names: Sequence[str] | None = None,
    sfreq: float | None = None,
    window: tuple[int, int] | None = None,
    num_channels: int | None = None,
    scale: float = 1.0,
) -> np.ndarray:
    """Model input ``(N, C, T)`` float32 from an ``mne.Epochs``: channels picked and ordered by
    name, resampled to the model's rate, cut to its window (time 0 = the event).

    Args:
        epochs: ``mne.Epochs`` / ``mne.EpochsArray`` (not modified).
        config: the model's configuration (``BrainVisConfig`` or a branch's); its ``ch_names``,
            ``sfreq`` and window are used unless given explicitly below.
        ch_names, sfreq, window, num_channels: override / replace the configuration's values
            (``window`` in samples after the event at ``sfreq``).
        scale: factor applied to the data (MNE stores volts; e.g. ``1e6`` for microvolts).

    Raises:
        ValueError: one line naming the missing channels, or the time span the epochs lack.
    """
    mne = _import_mne()
    if not isinstance(epochs, mne.BaseEpochs):
        raise TypeError(f"epochs_to_eeg_values expects an mne.Epochs, got {type(epochs).__name__}.")
    layout = model_signal_layout(config) if config is not None else {}
    ch_names = list(ch_names) if ch_names is not None else layout.get("ch_names")
    sfreq = float(sfreq) if sfreq is not None else layout.get("sfreq", DEFAULT_SFREQ)
    window = tuple(int(v) for v in window) if window is not None else layout.get("window")
    num_channels = num_channels or layout.get("num_channels") or (len(ch_names) if ch_names else None)
    if window is None or num_channels is None:
        raise ValueError("epochs_to_eeg_values needs a model config, or window=(start, end) and ch_names / num_channels.")
    if ch_names is not None and len(ch_names) != num_channels:
        raise ValueError(f"ch_names has {len(ch_names)} names but the model expects {num_channels} channels.")
    names = _select_channels(epochs, ch_names, num_channels)

    if not np.isclose(epochs.info["sfreq"], sfreq):
        epochs = epochs.copy().load_data().resample(sfreq, verbose="error")
    start, end = window
    times = epochs.times
    first = int(round((start / sfreq - times[0]) * sfreq))
    if first < 0 or first + (end - start) > len(times):
        raise ValueError(
            f"{_describe(epochs)} spans {times[0]:.3f} .. {times[-1]:.3f} s around the event, but the model needs "
            f"{start / sfreq:.3f} .. {(end - 1) / sfreq:.3f} s (samples {start}..{end} at {sfreq:g} Hz)."
        )
    data = epochs.get_data(picks=names, verbose="error")[:, :, first : first + (end - start)]
    data = np.asarray(data, dtype=np.float64) * scale
    if not np.isfinite(data).all():
        bad = np.flatnonzero(~np.isfinite(data).reshape(len(data), -1).all(axis=1))
        raise ValueError(f"{_describe(epochs)}: NaN or infinite values in epoch(s) {bad[:10].tolist()}.")
    return data.astype(np.float32)


def raw_to_epochs(raw, events: np.ndarray, config=None, *, event_id: Mapping[str, int] | None = None,
                  sfreq: float | None = None, window: tuple[int, int] | None = None):  # fmt: skip
    """``mne.Epochs`` of ``raw`` around ``events`` (an MNE events array, ``(n, 3)``), spanning the
    model's window (no baseline correction, so the signal is as recorded)."""
    mne = _import_mne()
    layout = model_signal_layout(config) if config is not None else {}
    sfreq = float(sfreq) if sfreq is not None else layout.get("sfreq", DEFAULT_SFREQ)
    window = window or layout.get("window")
    if window is None:
        raise ValueError("raw_to_epochs needs a model config or window=(start, end).")
    margin = 2.0 / raw.info["sfreq"]  # room for resampling
    return mne.Epochs(
        raw, np.asarray(events), event_id=dict(event_id) if event_id else None,
        tmin=min(0.0, window[0] / sfreq - margin), tmax=window[1] / sfreq + margin,
        baseline=None, preload=True, verbose="error",
    )  # fmt: skip


def raw_to_eeg_values(raw, events: np.ndarray, config=None, *, event_id: Mapping[str, int] | None = None, **kwargs) -> np.ndarray:
    """Model input ``(N, C, T)`` from ``mne.io.Raw`` and an events array (see :func:`epochs_to_eeg_values`)."""
    epochs = raw_to_epochs(raw, events, config, event_id=event_id, sfreq=kwargs.get("sfreq"), window=kwargs.get("window"))
    return epochs_to_eeg_values(epochs, config, **kwargs)


def signal_info(epochs, ch_names: Sequence[str] | None = None, sfreq: float | None = None) -> dict[str, Any]:
    """``{"sfreq", "ch_names", "chs_info"}`` of the data as it leaves :func:`epochs_to_eeg_values`
    (JSON-safe; for ``set_signal_info`` and the dataset card)."""
    from ..models.configuration_brainvis import _json_safe

    names = list(ch_names) if ch_names is not None else list(epochs.ch_names)
    chs = {ch["ch_name"]: ch for ch in epochs.info["chs"]}
    keep = ("ch_name", "kind", "coil_type", "unit", "loc")
    chs_info = [_json_safe({k: chs[name][k] for k in keep if k in chs[name]}) for name in names]
    return {"sfreq": float(sfreq if sfreq is not None else epochs.info["sfreq"]), "ch_names": names, "chs_info": chs_info}


def epochs_to_dataset_dict(
    epochs,
    labels: Sequence[int] | None = None,
    config=None,
    *,
    class_names: Sequence[str] | None = None,
    label_words: Mapping[int, str] | Sequence[str] | None = None,
    splits: Mapping[str, Sequence[int]] | None = None,
    subject: int = 0,
    image_names: Sequence[str] | None = None,
    ch_names: Sequence[str] | None = None,
    sfreq: float | None = None,
    window: tuple[int, int] | None = None,
    scale: float = 1.0,
):
    """A ``DatasetDict`` in this package's schema (``eeg``, ``label``, ``label_text``, ``subject``,
    ``image_name``, ``eeg_index``) from an ``mne.Epochs``, ready for ``prepare_dataset``.

    Args:
        epochs: the epochs; EEG prepared as in :func:`epochs_to_eeg_values` (``config`` or
            ``ch_names`` / ``sfreq`` / ``window``; without a config, ``window`` defaults to the
            whole epoch from time 0 and ``ch_names`` to its EEG channels).
        labels: one class index per epoch; default the epochs' event codes mapped to
            ``0 .. K-1`` in ``epochs.event_id`` order (class names = the event names).
        class_names: names of the classes (``ClassLabel`` names); required with ``labels``
            unless ``config.id2label`` gives them.
        label_words: the class words (refinement prompts) per class index; default the names.
        splits: ``{"train": [epoch indices], "test": [...]}``; default every epoch in ``train``.
        subject: subject number of every row. image_names: per epoch (default ``""``).

    Returns:
        The ``DatasetDict``; its signal metadata (``sfreq``, ``ch_names``) is in
        ``dataset_dict["<split>"].info.description`` as JSON and returned by
        :func:`dataset_signal_info`; pass ``card_metadata={"eeg_signal": ...}`` to
        ``prepare_dataset`` to keep it with the saved folder (``brainvis data`` does).
    """
    import json

    import datasets

    mne = _import_mne()
    if not isinstance(epochs, mne.BaseEpochs):
        raise TypeError(f"epochs_to_dataset_dict expects an mne.Epochs, got {type(epochs).__name__}.")
    n = len(epochs)
    if config is None:
        names = _select_channels(epochs, ch_names, len(ch_names) if ch_names else len(mne.pick_types(epochs.info, eeg=True, exclude=[])))
        sfreq = float(sfreq if sfreq is not None else epochs.info["sfreq"])
        if not np.isclose(epochs.info["sfreq"], sfreq):
            epochs = epochs.copy().load_data().resample(sfreq, verbose="error")
        if window is None:  # from time 0 (or the first sample after it) to the end of the epoch
            start = max(0, int(np.ceil(epochs.times[0] * sfreq - 1e-6)))
            window = (start, start + int(np.sum(epochs.times >= start / sfreq - 0.5 / sfreq)))
        eeg = epochs_to_eeg_values(epochs, ch_names=names, sfreq=sfreq, window=window, num_channels=len(names), scale=scale)
    else:
        layout = model_signal_layout(config)
        names = list(ch_names) if ch_names is not None else layout["ch_names"] or _select_channels(epochs, None, layout["num_channels"])
        sfreq = float(sfreq) if sfreq is not None else layout["sfreq"]
        eeg = epochs_to_eeg_values(epochs, config, ch_names=names, sfreq=sfreq, window=window, scale=scale)

    if labels is None:
        codes = epochs.events[:, 2]
        event_id = dict(epochs.event_id)
        order = sorted(event_id.items(), key=lambda kv: kv[1])
        code_to_index = {code: i for i, (_, code) in enumerate(order)}
        unknown = sorted(set(int(c) for c in codes) - set(code_to_index))
        if unknown:
            raise ValueError(f"{_describe(epochs)}: event codes {unknown[:10]} are not in epochs.event_id.")
        labels = [code_to_index[int(c)] for c in codes]
        class_names = class_names or [name for name, _ in order]
    labels = [int(v) for v in labels]
    if len(labels) != n:
        raise ValueError(f"labels has {len(labels)} entries but the epochs hold {n}.")
    if class_names is None and config is not None and getattr(config, "id2label", None):
        class_names = [str(config.id2label[i]) for i in sorted(config.id2label)]
    if class_names is None:
        raise ValueError("Pass class_names (one per class) with labels, or a config whose id2label names them.")
    class_names = [str(c) for c in class_names]
    bad = [v for v in labels if not 0 <= v < len(class_names)]
    if bad:
        raise ValueError(f"labels {sorted(set(bad))[:10]} are outside 0..{len(class_names) - 1} (class_names has {len(class_names)}).")
    if label_words is None:
        words = class_names
    elif isinstance(label_words, Mapping):
        words = [str(label_words.get(i, class_names[i])) for i in range(len(class_names))]
    else:
        words = [str(w) for w in label_words]
    if image_names is not None and len(image_names) != n:
        raise ValueError(f"image_names has {len(image_names)} entries but the epochs hold {n}.")
    splits = dict(splits) if splits is not None else {"train": list(range(n))}
    for split, rows in splits.items():
        outside = [i for i in rows if not 0 <= int(i) < n]
        if outside:
            raise ValueError(f"split {split!r} lists epoch indices {outside[:10]} outside 0..{n - 1}.")

    info = signal_info(epochs, names, sfreq)
    features = datasets.Features(
        {
            "eeg": datasets.Array2D(shape=tuple(eeg.shape[1:]), dtype="float32"),
            "label": datasets.ClassLabel(names=class_names),
            "label_text": datasets.Value("string"),
            "subject": datasets.Value("int32"),
            "image_name": datasets.Value("string"),
            "eeg_index": datasets.Value("int64"),
        }
    )
    description = json.dumps({"eeg_signal": {"sfreq": info["sfreq"], "ch_names": info["ch_names"]}}, allow_nan=False)
    out = {}
    for split, rows in splits.items():
        rows = [int(i) for i in rows]
        out[split] = datasets.Dataset.from_dict(
            {
                "eeg": [eeg[i] for i in rows],
                "label": [labels[i] for i in rows],
                "label_text": [words[labels[i]] for i in rows],
                "subject": [int(subject)] * len(rows),
                "image_name": [str(image_names[i]) if image_names is not None else "" for i in rows],
                "eeg_index": rows,
            },
            features=features,
            info=datasets.DatasetInfo(description=description, features=features),
        )
    return datasets.DatasetDict(out)


def dataset_signal_info(dataset_or_dir) -> dict[str, Any] | None:
    """``{"sfreq": ..., "ch_names": ...}`` recorded with a data set: in a ``Dataset`` /
    ``DatasetDict`` built by :func:`epochs_to_dataset_dict`, or in a prepared folder's card
    (YAML ``eeg_signal``). ``None`` when nothing is recorded."""
    import json
    from pathlib import Path

    if isinstance(dataset_or_dir, (str, Path)):
        card = Path(dataset_or_dir) / "README.md"
        if not card.is_file():
            return None
        from huggingface_hub import DatasetCard

        value = DatasetCard.load(card).data.to_dict().get("eeg_signal")
        return dict(value) if isinstance(value, Mapping) else None
    first = next(iter(dataset_or_dir.values())) if hasattr(dataset_or_dir, "values") else dataset_or_dir
    try:
        value = json.loads(first.info.description or "").get("eeg_signal")
    except (ValueError, AttributeError):
        return None
    return dict(value) if isinstance(value, Mapping) else None


__all__ = [
    "DEFAULT_SFREQ",
    "dataset_signal_info",
    "epochs_to_dataset_dict",
    "epochs_to_eeg_values",
    "model_signal_layout",
    "raw_to_eeg_values",
    "raw_to_epochs",
    "signal_info",
]

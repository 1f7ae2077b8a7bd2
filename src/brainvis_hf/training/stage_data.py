"""The data side of a training run: what a stage learns about a prepared folder before it builds
its model, the splits of a protocol, and the CLIP targets of the alignment stage."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from ..data.clip_targets import check_clip_targets_cover, has_clip_targets, load_clip_targets
from ..data.labels import WNID_TO_WORDS
from ..data.mne_io import dataset_signal_info
from ..models.configuration_brainvis import set_signal_info
from .stages import Stage

#: the columns the collator reads
DATA_COLUMNS = ("eeg", "label", "image_name")


@dataclass
class DataInfo:
    """What a stage needs to know about a prepared data set."""

    path: str
    num_channels: int
    num_samples: int
    num_labels: int
    id2label: dict[int, str]
    split_sizes: dict[str, int]
    name: str = ""
    signal: dict[str, Any] | None = None  # {"sfreq", "ch_names"} recorded with the data, if any


def describe_data(dataset_dict, data_dir: str | os.PathLike) -> DataInfo:
    """Channels, samples, classes (with their words) and split sizes of a prepared data set."""
    first = next(iter(dataset_dict.values()))
    channels, samples = first.features["eeg"].shape
    class_label = first.features["label"]
    words: dict[int, str] = {}
    for split in dataset_dict.values():
        if "label_text" not in split.column_names:
            continue
        for label, text in zip(split["label"], split["label_text"]):
            words.setdefault(int(label), text)
    id2label = {
        i: words.get(i) or WNID_TO_WORDS.get(name, name) for i, name in enumerate(class_label.names)
    }
    return DataInfo(
        path=str(data_dir),
        num_channels=int(channels),
        num_samples=int(samples),
        num_labels=int(class_label.num_classes),
        id2label=id2label,
        split_sizes={name: len(split) for name, split in dataset_dict.items()},
        name=Path(data_dir).name,
        signal=dataset_signal_info(data_dir) or dataset_signal_info(dataset_dict),  # card YAML ``eeg_signal``
    )


def record_data_signal_info(config, data: DataInfo) -> None:
    """Write the data's sampling rate and channel names into the model's configuration (a
    mismatch with what the configuration already records is an error naming both)."""
    if data.signal:
        try:
            set_signal_info(config, sfreq=data.signal.get("sfreq"), ch_names=data.signal.get("ch_names"))
        except ValueError as err:
            raise ValueError(f"The data in {data.path} does not match the model: {err}") from None


def training_splits(dataset_dict, protocol: str, data_dir) -> tuple[Any, Any, str, dict[str, Any]]:
    """(train set, model-selection set, its split name, final evaluation sets) of a protocol."""
    needed = ("train", "validation", "test") if protocol == "paper" else ("train", "validation")
    missing = [s for s in needed if s not in dataset_dict]
    if missing:
        raise ValueError(
            f"The data in {data_dir} lacks split(s) {missing} needed by protocol {protocol!r}; "
            f"it has {sorted(dataset_dict)}"
        )
    if protocol == "paper":
        train = datasets.concatenate_datasets([dataset_dict["train"], dataset_dict["validation"]])
        return train, dataset_dict["test"], "test", {"test": dataset_dict["test"]}
    finals = {s: dataset_dict[s] for s in ("validation", "test") if s in dataset_dict}
    return dataset_dict["train"], dataset_dict["validation"], "validation", finals


def for_training(ds):
    """Only the columns the collator reads, EEG as NumPy arrays (fast, no image decoding)."""
    columns = [c for c in DATA_COLUMNS if c in ds.column_names]
    ds = ds.select_columns(columns)
    return ds.with_format("numpy", columns=["eeg", "label"], output_all_columns=True)


def stage_clip_targets(stage: Stage, dataset_dict, data_dir: Path) -> tuple[Any, tuple[int, int] | None]:
    """``(clip_targets, prompt_shape)`` of a stage that needs them, checked to cover every image of
    every split; ``(None, None)`` for the other stages."""
    if not stage.needs_clip_targets:
        return None, None
    if not has_clip_targets(data_dir):
        raise ValueError(
            f"Stage {stage.name!r} needs CLIP targets, but {data_dir / 'clip_targets'} has none; compute them first "
            f"with `brainvis data clip-targets --data {data_dir}`."
        )
    clip_targets = load_clip_targets(data_dir)
    for split_name, split in dataset_dict.items():
        check_clip_targets_cover(clip_targets, split["image_name"], f"split {split_name!r} of {data_dir}")
    coarse, _ = next(iter(clip_targets.values()))
    return clip_targets, (int(coarse.shape[0]), int(coarse.shape[1]))

"""The synthetic writer: real file structure, splits by image, lengths, learnable class signal."""

from __future__ import annotations

import re
from collections import Counter

import datasets
import numpy as np
import pytest
import torch

from brainvis_hf.data import load_eeg_imagenet, write_synthetic_eeg_imagenet
from brainvis_hf.data.labels import EEG_IMAGENET_WNIDS

datasets.disable_progress_bars()


@pytest.fixture(scope="module")
def signals(synthetic_eeg_files):
    return torch.load(synthetic_eeg_files.eeg_path, weights_only=True)


@pytest.fixture(scope="module")
def splits(synthetic_eeg_files):
    return torch.load(synthetic_eeg_files.splits_path, weights_only=True)


def test_signals_file_structure(signals):
    assert set(signals) == {"dataset", "labels", "images"}
    assert signals["labels"] == list(EEG_IMAGENET_WNIDS)
    assert len(signals["images"]) == 40 * 5
    assert len(signals["dataset"]) == 40 * 5 * 2
    for name in signals["images"]:
        assert re.fullmatch(r"n\d{8}_\d+", name)
    pairs = Counter()
    for rec in signals["dataset"]:
        assert set(rec) == {"eeg", "image", "label", "subject"}
        assert isinstance(rec["image"], int) and isinstance(rec["label"], int) and isinstance(rec["subject"], int)
        assert rec["eeg"].dtype == torch.float32 and rec["eeg"].dim() == 2 and rec["eeg"].shape[0] == 128
        assert rec["eeg"].is_contiguous()
        # the image belongs to the recording's class
        assert signals["images"][rec["image"]].split("_")[0] == signals["labels"][rec["label"]]
        pairs[(rec["image"], rec["subject"])] += 1
    # each subject saw each image exactly once
    assert set(pairs.values()) == {1} and len(pairs) == 400
    assert {s for _, s in pairs} == {1, 2}


def test_lengths_and_standardisation(signals):
    lengths = np.array([rec["eeg"].shape[1] for rec in signals["dataset"]])
    assert (lengths < 450).sum() >= 1 and (lengths > 600).sum() >= 1
    in_range = lengths[(lengths >= 450) & (lengths <= 600)]
    assert len(in_range) >= 0.99 * len(lengths) - 2
    assert abs(np.median(lengths) - 500) <= 10 and in_range.min() >= 460
    x = torch.cat([rec["eeg"] for rec in signals["dataset"]], dim=1)
    assert torch.allclose(x.mean(dim=1), torch.zeros(128), atol=1e-3)
    assert torch.allclose(x.std(dim=1), torch.ones(128), atol=1e-3)


def test_splits_by_image(signals, splits):
    assert set(splits) == {"splits"} and len(splits["splits"]) == 6
    n = len(signals["dataset"])
    image_of = [rec["image"] for rec in signals["dataset"]]
    for split in splits["splits"]:
        assert set(split) == {"train", "val", "test"}
        all_idx = split["train"] + split["val"] + split["test"]
        assert sorted(all_idx) == list(range(n))  # a partition of the whole list
        images = {name: {image_of[i] for i in split[name]} for name in split}
        assert not images["train"] & images["val"] and not images["train"] & images["test"]
        assert not images["val"] & images["test"]
        # 5 images per class -> 3 / 1 / 1
        assert (len(images["train"]), len(images["val"]), len(images["test"])) == (120, 40, 40)
    assert splits["splits"][0]["test"] != splits["splits"][1]["test"]


def test_images(synthetic_eeg_files, signals):
    from PIL import Image

    root = synthetic_eeg_files.image_root
    colours, labels = [], []
    for k, name in enumerate(signals["images"]):
        path = root / name.split("_")[0] / f"{name}.JPEG"
        with Image.open(path) as img:
            assert img.format == "JPEG" and img.size == (32, 32)
            colours.append(np.asarray(img, dtype=np.float32).mean(axis=(0, 1)))
        labels.append(k // 5)
    colours, labels = np.stack(colours), np.array(labels)
    means = np.stack([colours[labels == c].mean(0) for c in range(40)])
    nearest = np.argmin(((colours[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).mean() > 0.8  # the class sets the colour


def test_full_size_counts(tmp_path):
    files = write_synthetic_eeg_imagenet(tmp_path, num_channels=1, show_progress=False)
    assert files.num_recordings == 12000
    assert files.num_in_length_range == 11964
    split0 = torch.load(files.splits_path, weights_only=True)["splits"][0]
    assert [len(split0[k]) for k in ("train", "val", "test")] == [9600, 1200, 1200]  # 40 / 5 / 5 images per class


def test_seed_reproducible(tmp_path):
    kwargs = dict(num_images_per_class=3, num_subjects=1, num_channels=4, show_progress=False)
    a = write_synthetic_eeg_imagenet(tmp_path / "a", seed=1, **kwargs)
    b = write_synthetic_eeg_imagenet(tmp_path / "b", seed=1, **kwargs)
    c = write_synthetic_eeg_imagenet(tmp_path / "c", seed=2, **kwargs)
    sa, sb, sc = (torch.load(f.eeg_path, weights_only=True) for f in (a, b, c))
    assert sa["images"] == sb["images"] and sa["images"] != sc["images"]
    for ra, rb in zip(sa["dataset"], sb["dataset"]):
        assert torch.equal(ra["eeg"], rb["eeg"]) and ra["image"] == rb["image"]


def _probe_accuracy(ds) -> float:
    """Nearest-class-mean accuracy on the test split, features = the signal averaged over 10 samples."""

    def features(split):
        rows = ds[split].with_format("numpy")[:]
        x = rows["eeg"]
        return x.reshape(len(x), x.shape[1], -1, 10).mean(-1).reshape(len(x), -1), rows["label"]

    x_train, y_train = features("train")
    x_test, y_test = features("test")
    means = np.stack([x_train[y_train == k].mean(0) for k in range(40)])
    predicted = np.argmin(((x_test[:, None] - means[None]) ** 2).sum(-1), axis=1)
    return float((predicted == y_test).mean())


def test_default_difficulty_is_learnable(eeg_imagenet_dataset):
    # 40 classes (chance 2.5 %), 3 training images per class and subject
    assert _probe_accuracy(eeg_imagenet_dataset) > 0.4  # measured: 0.73


def test_difficulty_one_has_no_class_signal(tmp_path):
    files = write_synthetic_eeg_imagenet(
        tmp_path, num_images_per_class=5, num_subjects=2, num_channels=32, difficulty=1.0, show_progress=False
    )
    ds = load_eeg_imagenet(files.eeg_path, files.splits_path, cache_dir=tmp_path / "cache")
    assert _probe_accuracy(ds) < 0.12  # chance 0.025 (+5 sd for 79 test rows = 0.11)


def test_bad_arguments(tmp_path, synthetic_eeg_files):
    with pytest.raises(ValueError, match=r"difficulty=1.5: expected a value in \[0, 1\]"):
        write_synthetic_eeg_imagenet(tmp_path, difficulty=1.5)
    with pytest.raises(ValueError, match=r"num_images_per_class=2: need at least 3"):
        write_synthetic_eeg_imagenet(tmp_path, num_images_per_class=2)
    with pytest.raises(FileExistsError, match=r"already holds \['eeg_5_95_std.pth', 'block_splits_by_image_all.pth', 'images'\]"):
        write_synthetic_eeg_imagenet(synthetic_eeg_files.output_dir, num_images_per_class=3)

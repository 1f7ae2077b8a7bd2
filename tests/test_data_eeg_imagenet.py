"""load_eeg_imagenet / EEGImageNet on files of the real structure built here from the reference
description (shared/reference/eeg-imagenet.md), independently of the synthetic writer."""

from __future__ import annotations

import os
import re

import datasets
import numpy as np
import pytest
import torch

from brainvis_hf.data import EEGImageNet, load_eeg_imagenet
from brainvis_hf.data.labels import WNID_TO_WORDS

datasets.disable_progress_bars()

# Labels in an order that is NOT the reference table's: the file order must win.
LABELS = ["n03888257", "n02389026", "n02124075"]
IMAGES_PER_CLASS = 4
SUBJECTS = (1, 2, 3)
# lengths cycle over these; 449 and 601 are outside 450..600, the rest inside (all >= 460)
LENGTHS = (500, 449, 460, 600, 601, 512, 488)


def build_reference_files(tmp_path, *, num_channels=128, mutate=None):
    """Write a signals file and a splits file exactly as described in the reference.

    Returns (eeg_path, splits_path, signals, splits).
    """
    g = torch.Generator().manual_seed(0)
    images = [f"{wnid}_{1000 + 7 * k}" for wnid in LABELS for k in range(IMAGES_PER_CLASS)]
    image_label = [i // IMAGES_PER_CLASS for i in range(len(images))]
    dataset = []
    for subject in SUBJECTS:
        for image in range(len(images)):
            n = len(dataset)
            dataset.append(
                {
                    "eeg": torch.randn(num_channels, LENGTHS[n % len(LENGTHS)], generator=g),
                    "image": image,
                    "label": image_label[image],
                    "subject": subject,
                }
            )
    signals = {"dataset": dataset, "labels": list(LABELS), "images": images}
    # two splits by image: per class, image 0 -> test, image 1 -> val, rest -> train (split 0);
    # split 1 uses image 3 -> test, image 2 -> val
    splits = []
    for test_k, val_k in ((0, 1), (3, 2)):
        parts = {"train": [], "val": [], "test": []}
        for idx, rec in enumerate(dataset):
            k = rec["image"] % IMAGES_PER_CLASS
            parts["test" if k == test_k else "val" if k == val_k else "train"].append(idx)
        splits.append(parts)
    split_file = {"splits": splits}
    if mutate is not None:
        mutate(signals, split_file)
    eeg_path, splits_path = tmp_path / "eeg_5_95_std.pth", tmp_path / "block_splits_by_image_all.pth"
    torch.save(signals, eeg_path)
    torch.save(split_file, splits_path)
    return eeg_path, splits_path, signals, split_file


def expected_indices(signals, splits, split_num=0, subject=0):
    """The reference preprocessing, spelled out: length filter per index, split, then subject."""
    out = {}
    for file_name, name in (("train", "train"), ("val", "validation"), ("test", "test")):
        idx = [i for i in splits["splits"][split_num][file_name] if 450 <= signals["dataset"][i]["eeg"].shape[1] <= 600]
        if subject:
            idx = [i for i in idx if signals["dataset"][i]["subject"] == subject]
        out[name] = idx
    return out


@pytest.fixture(scope="module")
def reference_files(tmp_path_factory):
    return build_reference_files(tmp_path_factory.mktemp("reference"))


@pytest.fixture(scope="module")
def reference_dataset(reference_files, tmp_path_factory):
    eeg_path, splits_path, _, _ = reference_files
    return load_eeg_imagenet(eeg_path, splits_path, cache_dir=tmp_path_factory.mktemp("cache"))


def test_counts_crop_labels_and_names(reference_files, reference_dataset):
    _, _, signals, splits = reference_files
    expected = expected_indices(signals, splits)
    assert set(reference_dataset) == {"train", "validation", "test"}
    for name, idx in expected.items():
        ds = reference_dataset[name].with_format("numpy")
        assert len(ds) == len(idx) > 0
        rows = ds[:]
        assert sorted(rows["eeg_index"].tolist()) == sorted(idx)
        order = np.argsort(rows["eeg_index"])
        for pos in order:
            i = int(rows["eeg_index"][pos])
            rec = signals["dataset"][i]
            assert rows["eeg"][pos].shape == (128, 440)
            assert rows["eeg"][pos].dtype == np.float32
            np.testing.assert_array_equal(rows["eeg"][pos], rec["eeg"][:, 20:460].numpy())
            assert int(rows["label"][pos]) == rec["label"]
            assert int(rows["subject"][pos]) == rec["subject"]
            assert rows["image_name"][pos] == signals["images"][rec["image"]]
            assert rows["label_text"][pos] == WNID_TO_WORDS[LABELS[rec["label"]]]


def test_features_follow_file_order(reference_dataset):
    features = reference_dataset["train"].features
    assert features["label"].names == LABELS  # file order, not the reference table's order
    assert features["eeg"] == datasets.Array2D(shape=(128, 440), dtype="float32")
    assert features["subject"] == datasets.Value("int32")
    assert features["eeg_index"] == datasets.Value("int64")
    assert "image" not in features
    description = reference_dataset["train"].info.description
    assert "parachute" in description and "sorrel horse" in description


def test_counts_per_subject_and_other_split(reference_files, tmp_path):
    eeg_path, splits_path, signals, splits = reference_files
    for split_num, subject in ((0, 2), (1, 0), (1, 3)):
        ds = load_eeg_imagenet(eeg_path, splits_path, split_num=split_num, subject=subject, cache_dir=tmp_path)
        expected = expected_indices(signals, splits, split_num=split_num, subject=subject)
        for name, idx in expected.items():
            assert sorted(ds[name]["eeg_index"]) == sorted(idx)
            if subject:
                assert set(ds[name]["subject"]) == {subject}


def test_other_time_window_and_length_range(reference_files, tmp_path):
    eeg_path, splits_path, signals, _ = reference_files
    ds = load_eeg_imagenet(eeg_path, splits_path, time_window=(0, 100), length_range=(440, 700), cache_dir=tmp_path)
    train = ds["train"].with_format("numpy")
    # 449 and 601 are accepted now
    lengths = {signals["dataset"][i]["eeg"].shape[1] for i in train["eeg_index"]}
    assert {449, 601} <= lengths
    i = int(train[0]["eeg_index"])
    np.testing.assert_array_equal(train[0]["eeg"], signals["dataset"][i]["eeg"][:, 0:100].numpy())


def test_image_column(tmp_path):
    from PIL import Image

    eeg_path, splits_path, signals, _ = build_reference_files(tmp_path)
    root = tmp_path / "imagenet"
    for k, name in enumerate(signals["images"]):
        (root / name.split("_")[0]).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (k * 10 % 255, 0, 0)).save(root / name.split("_")[0] / f"{name}.JPEG")
    ds = load_eeg_imagenet(eeg_path, splits_path, image_root=root, cache_dir=tmp_path / "cache")
    assert isinstance(ds["train"].features["image"], datasets.Image)
    row = ds["test"][0]
    assert row["image"].size == (8, 8)
    # the file of a missing image is named
    missing = root / LABELS[0] / f"{signals['images'][0]}.JPEG"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(signals["images"][0])):
        load_eeg_imagenet(eeg_path, splits_path, image_root=root, cache_dir=tmp_path / "cache")


def test_changed_file_is_not_served_from_cache(tmp_path):
    cache = tmp_path / "cache"
    eeg_path, splits_path, _, _ = build_reference_files(tmp_path)
    first = load_eeg_imagenet(eeg_path, splits_path, cache_dir=cache)["train"].with_format("numpy")[0]["eeg"]

    def scale(signals, _splits):
        for rec in signals["dataset"]:
            rec["eeg"] = rec["eeg"] * 2

    build_reference_files(tmp_path, mutate=scale)
    st = os.stat(eeg_path)
    os.utime(eeg_path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = load_eeg_imagenet(eeg_path, splits_path, cache_dir=cache)["train"].with_format("numpy")[0]["eeg"]
    np.testing.assert_allclose(second, 2 * first)


# ---------------------------------------------------------------------------------------------
# Bad input: every message names the file and the problem
# ---------------------------------------------------------------------------------------------


def _load(tmp_path, mutate=None, **kwargs):
    eeg_path, splits_path, _, _ = build_reference_files(tmp_path, mutate=mutate)
    return load_eeg_imagenet(eeg_path, splits_path, cache_dir=tmp_path / "cache", **kwargs)


def test_missing_file(tmp_path):
    eeg_path, splits_path, _, _ = build_reference_files(tmp_path)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.pth"))):
        load_eeg_imagenet(tmp_path / "nope.pth", splits_path)
    with pytest.raises(FileNotFoundError, match="missing_splits.pth"):
        load_eeg_imagenet(eeg_path, tmp_path / "missing_splits.pth")


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def test_file_needing_code_execution_is_refused(tmp_path):
    eeg_path, splits_path, signals, _ = build_reference_files(tmp_path)
    signals["extra"] = _Evil()
    torch.save(signals, eeg_path)
    with pytest.raises(ValueError, match=r"eeg_5_95_std\.pth: refusing to load.*needs code execution.*weights_only=True"):
        load_eeg_imagenet(eeg_path, splits_path, cache_dir=tmp_path / "cache")


def test_not_a_torch_file(tmp_path):
    eeg_path, splits_path, _, _ = build_reference_files(tmp_path)
    eeg_path.write_bytes(b"this is not a pytorch file")
    with pytest.raises(ValueError, match=r"eeg_5_95_std\.pth: not a readable PyTorch file"):
        load_eeg_imagenet(eeg_path, splits_path, cache_dir=tmp_path / "cache")


def test_missing_keys(tmp_path):
    with pytest.raises(ValueError, match=r"eeg_5_95_std\.pth: missing key\(s\) \['images'\]"):
        _load(tmp_path, lambda s, sp: s.pop("images"))
    with pytest.raises(ValueError, match=r"eeg_5_95_std\.pth: dataset\[3\] is missing key\(s\) \['subject'\]"):
        _load(tmp_path, lambda s, sp: s["dataset"][3].pop("subject"))
    with pytest.raises(ValueError, match=r"block_splits_by_image_all\.pth: missing key 'splits'"):
        _load(tmp_path, lambda s, sp: sp.update(folds=sp.pop("splits")))
    with pytest.raises(ValueError, match=r"block_splits_by_image_all\.pth: splits\[1\] is missing key\(s\) \['val'\]"):
        _load(tmp_path, lambda s, sp: sp["splits"][1].pop("val"))


def test_recording_not_2d(tmp_path):
    def flat(s, _):
        s["dataset"][5]["eeg"] = torch.zeros(128 * 500)

    with pytest.raises(ValueError, match=r"eeg_5_95_std\.pth: dataset\[5\]\['eeg'\] must be a 2-D tensor \(channels, time\), got \(64000,\)"):
        _load(tmp_path, flat)


def test_wrong_channel_count(tmp_path):
    def fewer(s, _):
        s["dataset"][7]["eeg"] = torch.zeros(127, 500)

    with pytest.raises(ValueError, match=r"eeg_5_95_std\.pth: wrong channel count: recording\(s\) \[7\] have shapes \[\(127, 500\)\].*expected \(128, T\)"):
        _load(tmp_path, fewer)


def test_split_indices_out_of_range(tmp_path):
    n = len(SUBJECTS) * len(LABELS) * IMAGES_PER_CLASS
    with pytest.raises(
        ValueError,
        match=rf"block_splits_by_image_all\.pth: split indices out of range in splits\[0\]\['test'\]: \[{n}, -1\]; "
        rf"the signals file has {n} recordings",
    ):
        _load(tmp_path, lambda s, sp: sp["splits"][0]["test"].extend([n, -1]))


def test_split_num_out_of_range(tmp_path):
    with pytest.raises(ValueError, match=r"block_splits_by_image_all\.pth: split_num=2 is out of range: the file has 2 split\(s\)"):
        _load(tmp_path, split_num=2)


def test_subject_out_of_range(tmp_path):
    with pytest.raises(ValueError, match=r"eeg_5_95_std\.pth: subject=7 is out of range: the file has subjects 1\.\.3"):
        _load(tmp_path, subject=7)


def test_non_finite_values(tmp_path):
    def poison(s, _):
        s["dataset"][0]["eeg"][3, 100] = float("nan")
        s["dataset"][9]["eeg"][0, 30] = float("inf")

    with pytest.raises(ValueError, match=r"eeg_5_95_std\.pth: NaN/Inf values in recording\(s\) \[0, 9\]; pass drop_non_finite=True"):
        _load(tmp_path, poison)
    # the option drops them
    eeg_path, splits_path, signals, splits = build_reference_files(tmp_path, mutate=poison)
    builder = EEGImageNet(cache_dir=str(tmp_path / "cache2"), eeg_path=eeg_path, splits_path=splits_path, drop_non_finite=True)
    builder.download_and_prepare()
    ds = builder.as_dataset()
    kept = {i for d in ds.values() for i in d["eeg_index"]}
    expected = {i for idx in expected_indices(signals, splits).values() for i in idx} - {0, 9}
    assert kept == expected


def test_time_window_longer_than_recordings(tmp_path):
    with pytest.raises(ValueError, match=r"eeg_5_95_std\.pth: time window \(20, 700\) needs 700 samples, but recording\(s\) \[0, 2, 3"):
        _load(tmp_path, time_window=(20, 700))

    def short(s, _):
        s["dataset"][0]["eeg"] = torch.zeros(128, 455)

    with pytest.raises(ValueError, match=r"time window \(20, 460\) needs 460 samples, but recording\(s\) \[0\] have only 455\.\.455 samples"):
        _load(tmp_path, short)


def test_label_out_of_range(tmp_path):
    def bad_label(s, _):
        s["dataset"][4]["label"] = 3

    with pytest.raises(ValueError, match=r"eeg_5_95_std\.pth: label out of range in recording\(s\) \[4\] \(got 3\); expected an int in 0\.\.2"):
        _load(tmp_path, bad_label)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/abs/n02389026_1", "n02389026/x", "..", "a\\b", ""])
def test_unsafe_image_names(tmp_path, name):
    def bad_name(s, _):
        s["images"][2] = name

    with pytest.raises(ValueError, match=rf"eeg_5_95_std\.pth 'images': unsafe image name {re.escape(repr(name))}"):
        _load(tmp_path, bad_name)

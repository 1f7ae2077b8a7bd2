"""prepare_dataset -> datasets.load_dataset round trip, the dataset card, overwrite rules, push."""

from __future__ import annotations

import math

import datasets
import numpy as np
import pytest
import yaml
from huggingface_hub import DatasetCard

import brainvis_hf.data.prepare as prepare_module
from brainvis_hf.data import load_prepared_dataset, prepare_dataset, push_prepared_dataset

datasets.disable_progress_bars()


def assert_same_rows(a: datasets.DatasetDict, b: datasets.DatasetDict):
    assert set(a) == set(b)
    for split in a:
        assert a[split].features == b[split].features
        assert len(a[split]) == len(b[split])
        ra = a[split].with_format("numpy")[:]
        rb = b[split].with_format("numpy")[:]
        for column in ("eeg", "label", "subject", "eeg_index"):
            np.testing.assert_array_equal(ra[column], rb[column])
        for column in ("label_text", "image_name"):
            assert list(ra[column]) == list(rb[column])
        if "image" in a[split].features:
            for i in (0, len(a[split]) - 1):
                np.testing.assert_array_equal(np.asarray(a[split][i]["image"]), np.asarray(b[split][i]["image"]))


def test_layout(prepared_data_dir):
    files = sorted(p.relative_to(prepared_data_dir).as_posix() for p in prepared_data_dir.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "checksums.json",
        "data/test-00000-of-00001.parquet",
        "data/train-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet",
        "splits.json",
    ]


def test_load_dataset_round_trip(prepared_data_dir, eeg_imagenet_dataset, tmp_path):
    loaded = datasets.load_dataset(str(prepared_data_dir), cache_dir=str(tmp_path))
    assert_same_rows(eeg_imagenet_dataset, loaded)
    assert loaded["train"].features["label"].names == eeg_imagenet_dataset["train"].features["label"].names
    assert isinstance(loaded["train"].features["image"], datasets.Image)


def test_images_are_embedded(prepared_data_dir, eeg_imagenet_dataset, tmp_path):
    import pyarrow.parquet as pq

    table = pq.read_table(prepared_data_dir / "data" / "test-00000-of-00001.parquet", columns=["image"])
    first = table.column("image")[0].as_py()
    assert first["bytes"] is not None and first["bytes"][:2] == b"\xff\xd8"  # JPEG bytes, not a path


def test_dataset_card(prepared_data_dir, eeg_imagenet_dataset):
    card = DatasetCard.load(prepared_data_dir / "README.md")
    data = card.data.to_dict()
    assert data["configs"] == [
        {
            "config_name": "default",
            "data_files": [
                {"split": "train", "path": "data/train-*"},
                {"split": "validation", "path": "data/validation-*"},
                {"split": "test", "path": "data/test-*"},
            ],
        }
    ]
    info = datasets.DatasetInfo._from_yaml_dict(data["dataset_info"])
    assert info.features["eeg"] == datasets.Array2D(shape=(128, 440), dtype="float32")
    assert info.features["label"].names[:2] == ["n02389026", "n03888257"]
    assert {s: info.splits[s].num_examples for s in info.splits} == {
        s: len(d) for s, d in eeg_imagenet_dataset.items()
    }
    assert data["license"] == "other" and "eeg" in data["tags"]
    text = card.text
    assert "Spampinato" in text and "BrainVis" in text
    assert "comply with their licence" in text
    assert "personal" in text  # ethics: EEG is personal data
    assert "| 0 | n02389026 | sorrel horse |" in text
    yaml.safe_load(str(card).split("---")[1])  # valid YAML header


def test_load_prepared_dataset(prepared_data_dir, eeg_imagenet_dataset, tmp_path):
    assert_same_rows(eeg_imagenet_dataset, load_prepared_dataset(prepared_data_dir, cache_dir=tmp_path))


def test_sharding_and_overwrite(eeg_imagenet_dataset, tmp_path):
    small = datasets.DatasetDict({k: v.remove_columns("image") for k, v in eeg_imagenet_dataset.items()})
    out = tmp_path / "sharded"
    prepare_dataset(small, out, max_shard_size="20MB")
    train_shards = sorted(p.name for p in (out / "data").glob("train-*.parquet"))
    n = math.ceil(small["train"].data.nbytes / 20_000_000)  # ~240 rows x 225 KB = 54 MB -> 3 shards
    assert n > 1 and train_shards == [f"train-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    assert_same_rows(small, load_prepared_dataset(out, cache_dir=tmp_path / "cache"))

    # a non-empty folder is never replaced without overwrite=True
    (out / "marker.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"sharded: folder is not empty; pass overwrite=True"):
        prepare_dataset(small, out)
    assert (out / "marker.txt").read_text() == "keep me"
    prepare_dataset(small, out, overwrite=True, description="Synthetic EEG, not real recordings.")
    assert not (out / "marker.txt").exists()
    assert "Synthetic EEG, not real recordings." in (out / "README.md").read_text()
    assert len(list((out / "data").glob("train-*"))) == 1
    # no temporary folders left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "sharded"]


def test_failed_prepare_keeps_old_folder(eeg_imagenet_dataset, tmp_path, monkeypatch):
    out = tmp_path / "prepared"
    small = datasets.DatasetDict({"test": eeg_imagenet_dataset["test"].remove_columns("image")})
    prepare_dataset(small, out)
    before = sorted(p.name for p in out.rglob("*"))

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(prepare_module, "build_dataset_card", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        prepare_dataset(small, out, overwrite=True)
    assert sorted(p.name for p in out.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]


def test_load_prepared_dataset_errors(eeg_imagenet_dataset, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such folder"):
        load_prepared_dataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty: not a prepared data folder"):
        load_prepared_dataset(tmp_path / "empty")
    partial = datasets.DatasetDict({"test": eeg_imagenet_dataset["test"].remove_columns(["image", "eeg_index"])})
    prepare_dataset(partial, tmp_path / "partial")
    with pytest.raises(ValueError, match=r"partial: split 'test' is missing column\(s\) \['eeg_index'\]"):
        load_prepared_dataset(tmp_path / "partial", cache_dir=tmp_path / "cache")


class FakeHfApi:
    calls: list = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, **kwargs):
        FakeHfApi.calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/datasets/{repo_id}"

    def upload_folder(self, *, folder_path, repo_id, repo_type, commit_message, ignore_patterns=()):
        from pathlib import Path
        from types import SimpleNamespace

        files = sorted(p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file())
        FakeHfApi.calls.append(("upload_folder", repo_id, {"repo_type": repo_type, "files": files}))
        return SimpleNamespace(commit_url=f"https://huggingface.co/datasets/{repo_id}/commit/1")


def test_push_prepared_dataset(prepared_data_dir, monkeypatch):
    FakeHfApi.calls = []
    import brainvis_hf.hub.upload as upload_module

    monkeypatch.setattr(upload_module, "HfApi", FakeHfApi)
    url = push_prepared_dataset(prepared_data_dir, "someone/eeg-imagenet", private=True)
    assert url == "https://huggingface.co/datasets/someone/eeg-imagenet/commit/1"
    assert FakeHfApi.calls[0] == ("create_repo", "someone/eeg-imagenet", {"repo_type": "dataset", "private": True, "exist_ok": True})
    name, repo, kwargs = FakeHfApi.calls[1]
    assert (name, repo, kwargs["repo_type"]) == ("upload_folder", "someone/eeg-imagenet", "dataset")
    assert kwargs["files"] == [
        "README.md",
        "checksums.json",
        "data/test-00000-of-00001.parquet",
        "data/train-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet",
        "splits.json",
    ]

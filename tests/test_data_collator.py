"""BrainVisDataCollator on rows from the builder, the prepared Parquet set and plain arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainvis_hf.data import BrainVisDataCollator, load_prepared_dataset


def _expected(ds, indices):
    rows = ds.with_format("numpy")[indices]
    return torch.from_numpy(rows["eeg"]), torch.from_numpy(rows["label"]).long()


@pytest.mark.parametrize("fmt", [None, "numpy", "torch"])
def test_rows_from_builder(eeg_imagenet_dataset, fmt):
    ds = eeg_imagenet_dataset["train"].select_columns(["eeg", "label", "image_name"])
    ds = ds.with_format(fmt) if fmt else ds
    batch = BrainVisDataCollator()([ds[i] for i in range(5)])
    eeg, labels = _expected(eeg_imagenet_dataset["train"], [0, 1, 2, 3, 4])
    assert set(batch) == {"eeg_values", "labels"}
    assert batch["eeg_values"].dtype == torch.float32 and batch["eeg_values"].shape == (5, 128, 440)
    assert batch["labels"].dtype == torch.int64
    torch.testing.assert_close(batch["eeg_values"], eeg, rtol=0, atol=0)
    torch.testing.assert_close(batch["labels"], labels)


def test_rows_from_prepared_set_and_dataloader(prepared_data_dir, eeg_imagenet_dataset, tmp_path):
    ds = load_prepared_dataset(prepared_data_dir, cache_dir=tmp_path)["validation"]
    ds = ds.select_columns(["eeg", "label"]).with_format("torch")
    loader = torch.utils.data.DataLoader(ds, batch_size=16, collate_fn=BrainVisDataCollator())
    batches = list(loader)
    assert sum(len(b["labels"]) for b in batches) == len(ds)
    eeg, labels = _expected(eeg_imagenet_dataset["validation"], list(range(16)))
    torch.testing.assert_close(batches[0]["eeg_values"], eeg, rtol=0, atol=0)
    torch.testing.assert_close(batches[0]["labels"], labels)


def test_lists_arrays_and_tensors_mix():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    rows = [{"eeg": a.tolist(), "label": 1}, {"eeg": a, "label": 2}, {"eeg_values": torch.tensor(a), "labels": 3}]
    batch = BrainVisDataCollator()(rows)
    assert batch["eeg_values"].dtype == torch.float32
    torch.testing.assert_close(batch["eeg_values"], torch.tensor(np.stack([a] * 3), dtype=torch.float32))
    assert batch["labels"].tolist() == [1, 2, 3]


def test_without_labels():
    batch = BrainVisDataCollator()([{"eeg": np.zeros((2, 3))}, {"eeg": np.ones((2, 3))}])
    assert set(batch) == {"eeg_values"}


def test_inconsistent_shapes():
    rows = [{"eeg": np.zeros((4, 10)), "label": 0}, {"eeg": np.zeros((4, 9)), "label": 0}]
    with pytest.raises(ValueError, match=r"same shape; row 0 has \(4, 10\), but \(row, shape\) \[\(1, \(4, 9\)\)\]"):
        BrainVisDataCollator()(rows)
    with pytest.raises(ValueError, match=r"must be 2-D"):
        BrainVisDataCollator()([{"eeg": np.zeros(10), "label": 0}])
    with pytest.raises(KeyError, match=r"row 0 has no 'eeg'"):
        BrainVisDataCollator()([{"label": 0}])
    with pytest.raises(ValueError, match=r"rows \[1\] have no 'label'"):
        BrainVisDataCollator()([{"eeg": np.zeros((2, 2)), "label": 0}, {"eeg": np.zeros((2, 2))}])


def test_clip_targets(eeg_imagenet_dataset):
    ds = eeg_imagenet_dataset["test"].select_columns(["eeg", "label", "image_name"]).with_format("torch")
    rows = [ds[i] for i in range(4)]
    g = torch.Generator().manual_seed(0)
    targets = {r["image_name"]: (torch.randn(77, 768, generator=g), torch.randn(77, 768, generator=g)) for r in rows}
    batch = BrainVisDataCollator(clip_targets=targets)(rows)
    assert batch["coarse_embeds"].shape == batch["fine_embeds"].shape == (4, 77, 768)
    assert batch["coarse_embeds"].dtype == torch.float32
    for i, r in enumerate(rows):
        torch.testing.assert_close(batch["coarse_embeds"][i], targets[r["image_name"]][0])
        torch.testing.assert_close(batch["fine_embeds"][i], targets[r["image_name"]][1])
    unknown = dict(list(targets.items())[1:])
    with pytest.raises(KeyError, match=rf"no CLIP targets for image\(s\) \['{rows[0]['image_name']}'\]"):
        BrainVisDataCollator(clip_targets=unknown)(rows)


def test_clip_targets_in_bfloat16_are_returned_as_float32():
    targets = {"a_1": (torch.ones(3, 4, dtype=torch.bfloat16), torch.zeros(3, 4, dtype=torch.bfloat16))}
    batch = BrainVisDataCollator(clip_targets=targets)([{"eeg": np.zeros((2, 5)), "label": 0, "image_name": "a_1"}])
    assert batch["coarse_embeds"].dtype == batch["fine_embeds"].dtype == torch.float32
    assert batch["coarse_embeds"].shape == (1, 3, 4) and batch["coarse_embeds"].sum() == 12

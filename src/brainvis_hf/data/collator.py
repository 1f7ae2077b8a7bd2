"""Batch rows of an EEG data set into model inputs (``eeg_values``, ``labels``, CLIP targets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch


def _as_array(value: Any) -> np.ndarray:
    """A numpy view of a tensor / array, or a float32 array built from nested lists."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    if isinstance(value, np.ndarray):
        return value
    return np.asarray(value, dtype=np.float32)


def _stack_float32(values: Sequence[np.ndarray]) -> torch.Tensor:
    # np.stack rather than torch.stack: the copy is single-threaded memcpy, which stays fast in
    # DataLoader workers and on busy machines (torch's intra-op threads can stall there).
    return torch.from_numpy(np.stack(values).astype(np.float32, copy=False))


@dataclass
class BrainVisDataCollator:
    """Turn a list of rows into a batch for the BrainVis models (and ``transformers.Trainer``).

    Rows may come from :func:`~brainvis_hf.data.load_eeg_imagenet` or the prepared Parquet set
    (with or without ``with_format("torch")``); ``eeg`` (or ``eeg_values``) may be a nested list,
    an ``np.ndarray`` or a tensor of shape (C, T); ``label`` (or ``labels``) is optional.

    Args:
        clip_targets: optional mapping ``image_name -> (coarse, fine)`` (tensors of
            ``prompt_sequence_length x prompt_embed_dim``, e.g. 77 x 768), as returned by
            ``brainvis_hf.data.clip_targets.load_clip_targets``; adds ``coarse_embeds`` and
            ``fine_embeds`` to the batch.

    Returns (from ``__call__``):
        ``{"eeg_values": float32 (B, C, T), "labels": int64 (B,)}`` (+ ``coarse_embeds``,
        ``fine_embeds``: float32 (B, L, D)). ``labels`` is left out when no row has a label.

    Note: the batch keys differ from the column names, so a ``Trainer`` needs
    ``remove_unused_columns=False`` (otherwise it drops ``eeg`` / ``label`` before collation).
    """

    clip_targets: Mapping[str, Sequence[Any]] | None = None

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if len(rows) == 0:
            raise ValueError("BrainVisDataCollator got an empty list of rows")
        eeg = [self._eeg(row, i) for i, row in enumerate(rows)]
        shapes = {tuple(e.shape) for e in eeg}
        if len(shapes) != 1 or len(eeg[0].shape) != 2:
            bad = [(i, tuple(e.shape)) for i, e in enumerate(eeg) if tuple(e.shape) != tuple(eeg[0].shape) or e.ndim != 2]
            raise ValueError(
                f"BrainVisDataCollator: every row's 'eeg' must be 2-D (channels, time) with the same shape; "
                f"row 0 has {tuple(eeg[0].shape)}, but (row, shape) {bad[:5]}"
            )
        batch = {"eeg_values": _stack_float32(eeg)}

        labels = [row.get("label", row.get("labels")) for row in rows]
        if any(label is not None for label in labels):
            missing = [i for i, label in enumerate(labels) if label is None]
            if missing:
                raise ValueError(f"BrainVisDataCollator: rows {missing[:10]} have no 'label' while others do")
            batch["labels"] = torch.as_tensor([int(label) for label in labels], dtype=torch.int64)

        if self.clip_targets is not None:
            batch.update(self._clip_targets(rows))
        return batch

    @staticmethod
    def _eeg(row: Mapping[str, Any], i: int) -> np.ndarray:
        value = row.get("eeg", row.get("eeg_values"))
        if value is None:
            raise KeyError(f"BrainVisDataCollator: row {i} has no 'eeg' (or 'eeg_values'); keys: {sorted(row)}")
        return _as_array(value)

    def _clip_targets(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        names = []
        for i, row in enumerate(rows):
            if "image_name" not in row:
                raise KeyError(f"BrainVisDataCollator: row {i} has no 'image_name', needed to look up CLIP targets")
            names.append(row["image_name"])
        unknown = [n for n in names if n not in self.clip_targets]
        if unknown:
            raise KeyError(
                f"BrainVisDataCollator: no CLIP targets for image(s) {sorted(set(unknown))[:10]} "
                f"({len(set(unknown))} unknown; the targets cover {len(self.clip_targets)} images)"
            )
        coarse = _stack_float32([_as_array(self.clip_targets[n][0]) for n in names])
        fine = _stack_float32([_as_array(self.clip_targets[n][1]) for n in names])
        return {"coarse_embeds": coarse, "fine_embeds": fine}

"""The prepared data's splits: content hashes, the ``DIR/splits.json`` manifest and cross-split overlap.

:func:`split_hashes` is a SHA-256 of each split's row identities (sorted
``(eeg_index, subject, image_name, label)``); ``brainvis data prepare`` writes them to
``DIR/splits.json`` (:func:`write_split_manifest`) and every training run records them in its
``metrics.json`` (:func:`split_record`), refusing data whose splits no longer match the
manifest. Two runs with the same hash trained and were tested on exactly the same rows.
:func:`split_overlap` counts recordings and images shared between splits; a recording in two
splits is an error, shared images are reported. See ``docs/protocols.md``.

They live with the data (not in ``training``) because preparing a folder writes the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

SPLITS_MANIFEST = "splits.json"
_IDENTITY_COLUMNS = ("eeg_index", "subject", "image_name", "label")


def split_hashes(dataset_dict) -> dict[str, Any]:
    """Per split: row count and SHA-256 of its sorted row identities; plus one hash over all splits.

    The identity of a row is ``(eeg_index, subject, image_name, label)``; row order does not
    matter. EEG values are not hashed (that would read the whole data set on every run); the
    prepared folder's own Parquet files pin the values.
    """
    splits: dict[str, Any] = {}
    for name in sorted(dataset_dict):
        ds = dataset_dict[name]
        columns = [c for c in _IDENTITY_COLUMNS if c in ds.column_names]
        table = ds.select_columns(columns).to_dict()
        rows = sorted(zip(*(table[c] for c in columns)), key=lambda r: tuple(str(v) for v in r))
        digest = hashlib.sha256()
        digest.update(json.dumps(columns, allow_nan=False).encode())
        for row in rows:
            digest.update(json.dumps([v if isinstance(v, (int, str)) else str(v) for v in row], allow_nan=False).encode())
            digest.update(b"\n")
        splits[name] = {"num_rows": len(rows), "sha256": digest.hexdigest()}
    combined = hashlib.sha256(json.dumps({k: v["sha256"] for k, v in splits.items()}, sort_keys=True, allow_nan=False).encode())
    return {"splits": splits, "sha256": combined.hexdigest(), "identity_columns": list(_IDENTITY_COLUMNS)}


def write_split_manifest(data_dir: str | os.PathLike, dataset_dict) -> dict[str, Any]:
    """Write ``DIR/splits.json`` (split hashes + cross-split overlap) and return it."""
    manifest = {**split_hashes(dataset_dict), "overlap": split_overlap(dataset_dict, raise_on_shared_recordings=False)}
    path = Path(data_dir) / SPLITS_MANIFEST
    path.write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n")
    return manifest


def read_split_manifest(data_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``DIR/splits.json``, or ``None`` for folders prepared before split hashes existed."""
    path = Path(data_dir) / SPLITS_MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def split_record(data_dir: str | os.PathLike, dataset_dict) -> dict[str, Any]:
    """What a training run records about its splits (``metrics.json["data"]["splits"]``).

    Recomputes the hashes of the loaded splits; when the folder has a manifest, they must match it.

    Raises:
        ValueError: naming the folder and the splits, when the data no longer match the hashes
            written at preparation, or when one recording is in two splits.
    """
    current = split_hashes(dataset_dict)
    manifest = read_split_manifest(data_dir)
    if manifest is not None:
        changed = sorted(
            name for name in set(current["splits"]) | set(manifest.get("splits", {}))
            if current["splits"].get(name, {}).get("sha256") != manifest.get("splits", {}).get(name, {}).get("sha256")
        )
        if changed:
            raise ValueError(
                f"{Path(data_dir) / SPLITS_MANIFEST}: split(s) {changed} no longer match the hashes written when the "
                "data were prepared (rows were added, removed or moved between splits); prepare the data again"
            )
    overlap = split_overlap(dataset_dict)
    return {"sha256": current["sha256"], "splits": current["splits"], "overlap": overlap,
            "manifest": manifest is not None}


def split_overlap(dataset_dict, *, raise_on_shared_recordings: bool = True) -> dict[str, Any]:
    """Recordings (``eeg_index``) and images (``image_name``) shared by each pair of splits.

    Raises:
        ValueError: when a recording is in two splits (with ``raise_on_shared_recordings``).
    """
    names = sorted(dataset_dict)
    empty: set = set()
    ids = {n: set(d["eeg_index"]) if "eeg_index" in (d := dataset_dict[n]).column_names else empty for n in names}
    images = {n: set(d["image_name"]) if "image_name" in (d := dataset_dict[n]).column_names else empty for n in names}
    out: dict[str, Any] = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = ids[a] & ids[b]
            if shared and raise_on_shared_recordings:
                raise ValueError(
                    f"{len(shared)} recording(s) are in both split {a!r} and split {b!r} (eeg_index "
                    f"{sorted(shared)[:5]}...): a test on them measures memorisation"
                )
            out[f"{a}/{b}"] = {"recordings": len(shared), "images": len(images[a] & images[b])}
    return out

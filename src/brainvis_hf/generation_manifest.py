"""The ``manifest.json`` of a ``brainvis generate`` output folder: reading, checking, merging, writing.

Format: docs/architecture.md. ``apps/generate_folder.py`` (the ``brainvis generate``
application) writes it, one part file per process under ``.manifest_parts/`` merged at the end;
``evaluation/report.py`` reads it. Every file entry must stay inside the folder
(:func:`check_manifest_paths`), so a hand-edited manifest cannot make a command read or skip files
elsewhere on the disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from ._io import atomic_write, confined_path, dumps_strict

MANIFEST_NAME = "manifest.json"
PARTS_DIR = ".manifest_parts"


def read_manifest(output_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The merged manifest of ``output_dir`` (``manifest.json`` plus unmerged part files), or ``None``."""
    root = Path(output_dir)
    documents = []
    if (root / MANIFEST_NAME).is_file():
        documents.append(load_manifest_document(root / MANIFEST_NAME, root))
    for part in sorted((root / PARTS_DIR).glob("*.json")) if (root / PARTS_DIR).is_dir() else []:
        document = load_manifest_document(part, root, tolerate_invalid=True)
        if document is not None:  # None: a part file damaged on disk; its images are simply redone
            documents.append(document)
    if not documents:
        return None
    return merge_manifests(documents)


def load_manifest_document(path: Path, root: Path, tolerate_invalid: bool = False) -> dict[str, Any] | None:
    """One manifest or part file, with its file entries checked to stay inside ``root``; with
    ``tolerate_invalid``, ``None`` for a file that is not JSON (a part file damaged on disk)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        if tolerate_invalid:
            return None
        raise ValueError(f"{path} is not valid JSON ({err}); move it away to start afresh.") from err
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(document).__name__}; move it away to start afresh.")
    for key in ("images", "eegs"):
        entries = document.get(key, [])
        if not isinstance(entries, list):
            raise ValueError(f"{path}: {key!r} must be a list, got {type(entries).__name__}; move the file away to start afresh.")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or "eeg_id" not in entry or (key == "images" and not isinstance(entry.get("sample"), int)):
                raise ValueError(f"{path}: {key}[{i}] is not a valid entry ({entry!r:.80}); move the file away to start afresh.")
    check_manifest_paths(document, root, path)
    return document


def check_manifest_paths(document: dict[str, Any], root: str | os.PathLike, source: str | os.PathLike) -> None:
    """Refuse manifest entries whose files are absolute or outside ``root`` (see :func:`confined_path`)."""
    for key, fields in (("images", ("file", "stage1_file")), ("eegs", ("ground_truth",))):
        entries = document.get(key, [])
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            for name in fields if isinstance(entry, dict) else ():
                if entry.get(name) is not None:
                    confined_path(root, entry[name], source, f"{key}[{i}].{name}")


def merge_manifests(documents: Sequence[dict[str, Any]], eeg_order: Sequence[str] = ()) -> dict[str, Any]:
    """Merge manifests (later documents win per EEG / image).

    ``eegs`` are ordered by ``eeg_order`` first, then by first appearance; ``images`` follow their
    EEG's position, then the sample index.
    """
    merged: dict[str, Any] = {}
    eegs: dict[str, dict] = {}
    images: dict[tuple[str, int], dict] = {}
    for doc in documents:
        for key, value in doc.items():
            if key not in ("eegs", "images"):
                merged[key] = value
        for entry in doc.get("eegs", []):
            eegs[str(entry["eeg_id"])] = entry
        for entry in doc.get("images", []):
            images[(str(entry["eeg_id"]), int(entry["sample"]))] = entry
    order = list(dict.fromkeys([str(e) for e in eeg_order if str(e) in eegs] + list(eegs)))
    position = {eeg_id: i for i, eeg_id in enumerate(order)}
    merged["eegs"] = [eegs[eeg_id] for eeg_id in order]
    merged["images"] = [
        images[key] for key in sorted(images, key=lambda k: (position.get(k[0], len(position)), k[0], k[1]))
    ]
    return merged


def write_manifest(path: str | os.PathLike, document: Any) -> None:
    """Write a manifest (or part file) as strict JSON, atomically; a refused value (NaN) leaves the old file."""
    path = Path(path)
    text = dumps_strict(document, path, indent=1)  # before the write: a refused value leaves the old file
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))

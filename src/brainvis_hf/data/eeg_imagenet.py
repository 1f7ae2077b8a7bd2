"""EEG-ImageNet ("CVPR40", Spampinato et al. 2017) as a ``datasets`` builder.

This is the data set BrainVis was published on: Spampinato et al., CVPR 2017, also called
"ImageNet-EEG" or "CVPR40" (alias: ``SpampinatoEEGImageNet``). It is **not** the unrelated
"EEG-ImageNet" of Zhu et al. (2024). It was recorded in a block design (all images of a class
in one block), which inflates class accuracy through temporal confounds (Li et al., 2020);
see ``docs/protocols.md``. For a current benchmark see
:class:`~brainvis_hf.data.things_eeg2.ThingsEEG2`.

The data set comes as two PyTorch files (see ``shared/reference/eeg-imagenet.md``):

* a signals file (e.g. ``eeg_5_95_std.pth``): ``{"dataset": [{"eeg": (128, T) tensor, "image": int,
  "label": int, "subject": int}, ...], "labels": [40 WordNet ids], "images": [image names]}``;
* a splits file (e.g. ``block_splits_by_image_all.pth``):
  ``{"splits": [{"train": [...], "val": [...], "test": [...]}, ...]}`` with indices into
  ``dataset``.

Both are read with ``torch.load(..., weights_only=True)`` (no code execution) and validated
before use; every error names the file and what is wrong. The standard preprocessing is applied
exactly as in the reference: keep recordings with ``450 <= T <= 600`` (per split index), split
first then keep one subject (0 = all), crop samples ``20..460``.

Example:

```py
>>> from brainvis_hf.data import load_eeg_imagenet
>>> ds = load_eeg_imagenet("eeg_5_95_std.pth", "block_splits_by_image_all.pth")
>>> ds["train"][0]["eeg"]  # 128 x 440 nested list (use ds.with_format("torch") for tensors)
```
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import datasets
import numpy as np
import torch

from ..hub.citations import BRAINVIS_CITATION, EEG_IMAGENET_CITATION, join_citations
from ..ids import is_safe_id
from .labels import WNID_TO_WORDS

logger = datasets.logging.get_logger(__name__)

# Names of the splits in the splits file -> names of the `datasets` splits.
SPLIT_NAMES: dict[str, str] = {"train": "train", "val": "validation", "test": "test"}

_CITATION = join_citations(EEG_IMAGENET_CITATION, BRAINVIS_CITATION)

_DESCRIPTION = (
    "EEG-ImageNet (Spampinato et al., CVPR 2017): 128-channel EEG (1 kHz) recorded while six "
    "subjects watched 2,000 ImageNet images of 40 classes. Each row is one recording, channels "
    "first, cropped to the time window; `label` is the class index (ClassLabel names are the "
    "WordNet ids in the order of the signals file), `label_text` its words. Also called "
    "'ImageNet-EEG' or 'CVPR40'; not the unrelated Zhu et al. (2024) 'EEG-ImageNet'. Recorded in a "
    "block design: class accuracy is inflated by temporal confounds (Li et al., 2020)."
)

_SIGNALS_KEYS = ("dataset", "labels", "images")
_RECORDING_KEYS = ("eeg", "image", "label", "subject")


# ----------------------------------------------------------------------------------------------
# Safe reading and validation
# ----------------------------------------------------------------------------------------------


def safe_torch_load(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` with clear errors.

    Files saved in PyTorch's zip format are memory-mapped (cheap for multi-GB signal files).

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when the file needs code execution to unpickle (refused), or is not a
            PyTorch file at all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as handle:
        is_zip = handle.read(4) == b"PK\x03\x04"
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path}: refusing to load this file: unpickling it needs code execution (it holds "
            "objects other than dicts, lists, numbers, strings and tensors), and brainvis-hf only "
            "loads files with torch.load(..., weights_only=True). If you trust the file, load it "
            "yourself and re-save the plain dict/list/tensor structure with torch.save. "
            f"Details: {str(err).splitlines()[0]}"
        ) from None
    except Exception as err:  # noqa: BLE001 - any other failure: not a (readable) PyTorch file
        raise ValueError(f"{path}: not a readable PyTorch file ({type(err).__name__}: {err})") from None


def validate_image_name(name: Any, *, source: str | os.PathLike = "<input>") -> str:
    """Check that an image name is a bare file stem (``n02951358_31190``) before it becomes a path.

    Raises:
        ValueError: naming ``source`` when the name is not a string, contains a path separator
            or ``..``, is absolute, or has other characters than letters, digits, ``_.-``.
    """
    if not isinstance(name, str):
        raise ValueError(f"{source}: image name {name!r} is not a string")
    if not is_safe_id(name):  # an ImageNet file stem; never a path separator, never absolute
        raise ValueError(
            f"{source}: unsafe image name {name!r}: expected a bare file stem such as "
            "'n02951358_31190' (letters, digits, '_', '-', '.'; no '..', no path separators, "
            "not absolute)"
        )
    return name


def _format_indices(indices: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(i) for i in list(indices)[:limit])
    more = f", ... ({len(indices)} in all)" if len(indices) > limit else ""
    return f"[{shown}{more}]"


def load_signals(path: str | os.PathLike) -> dict[str, Any]:
    """Load a signals file and check its top-level structure and every recording's metadata.

    Checks: the keys ``dataset``, ``labels`` and ``images``; each recording is a dict with
    ``eeg`` (2-D tensor, channels first, all with the same channel count), ``image`` (index into
    ``images``), ``label`` (index into ``labels``), ``subject`` (int >= 1); every image name is safe.
    NaN/Inf values are checked later, on the recordings a split actually uses.

    Returns:
        The loaded dict (tensors untouched).
    """
    path = Path(path)
    data = safe_torch_load(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict with keys {list(_SIGNALS_KEYS)}, got {type(data).__name__}")
    missing = [k for k in _SIGNALS_KEYS if k not in data]
    if missing:
        raise ValueError(
            f"{path}: missing key(s) {missing}; a signals file is a dict with keys {list(_SIGNALS_KEYS)} "
            f"(found {sorted(map(str, data))})"
        )
    recordings, labels, images = data["dataset"], data["labels"], data["images"]
    for key, value in (("dataset", recordings), ("labels", labels), ("images", images)):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{path}: '{key}' must be a list, got {type(value).__name__}")
    if not recordings:
        raise ValueError(f"{path}: 'dataset' is empty")
    if not all(isinstance(w, str) for w in labels):
        raise ValueError(f"{path}: 'labels' must be a list of WordNet id strings")
    for name in images:
        validate_image_name(name, source=f"{path} 'images'")

    num_channels = None
    bad_shape, bad_label, bad_image, bad_subject = [], [], [], []
    for i, rec in enumerate(recordings):
        if not isinstance(rec, dict):
            raise ValueError(f"{path}: dataset[{i}] must be a dict with keys {list(_RECORDING_KEYS)}, got {type(rec).__name__}")
        rec_missing = [k for k in _RECORDING_KEYS if k not in rec]
        if rec_missing:
            raise ValueError(f"{path}: dataset[{i}] is missing key(s) {rec_missing} (expected {list(_RECORDING_KEYS)})")
        eeg = rec["eeg"]
        if not isinstance(eeg, torch.Tensor) or eeg.dim() != 2:
            shape = tuple(eeg.shape) if isinstance(eeg, torch.Tensor) else type(eeg).__name__
            raise ValueError(
                f"{path}: dataset[{i}]['eeg'] must be a 2-D tensor (channels, time), got {shape}"
            )
        if num_channels is None:
            num_channels = eeg.shape[0]
        elif eeg.shape[0] != num_channels:
            bad_shape.append(i)
        label, image, subject = rec["label"], rec["image"], rec["subject"]
        if not _is_int(label) or not 0 <= int(label) < len(labels):
            bad_label.append(i)
        if not _is_int(image) or not 0 <= int(image) < len(images):
            bad_image.append(i)
        if not _is_int(subject) or int(subject) < 1:
            bad_subject.append(i)
    if bad_shape:
        shapes = [tuple(recordings[i]["eeg"].shape) for i in bad_shape[:3]]
        raise ValueError(
            f"{path}: wrong channel count: recording(s) {_format_indices(bad_shape)} have shapes "
            f"{shapes}..., expected ({num_channels}, T) like dataset[0]"
        )
    if bad_label:
        raise ValueError(
            f"{path}: label out of range in recording(s) {_format_indices(bad_label)} "
            f"(got {recordings[bad_label[0]]['label']!r}); expected an int in 0..{len(labels) - 1} "
            f"(the file has {len(labels)} labels)"
        )
    if bad_image:
        raise ValueError(
            f"{path}: image index out of range in recording(s) {_format_indices(bad_image)} "
            f"(got {recordings[bad_image[0]]['image']!r}); expected an int in 0..{len(images) - 1}"
        )
    if bad_subject:
        raise ValueError(
            f"{path}: invalid subject in recording(s) {_format_indices(bad_subject)} "
            f"(got {recordings[bad_subject[0]]['subject']!r}); expected an int >= 1"
        )
    return data


def _is_int(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.dim() == 0 and not value.is_floating_point() and value.dtype != torch.bool
    return isinstance(value, int) and not isinstance(value, bool)


def load_splits(path: str | os.PathLike, num_recordings: int) -> list[dict[str, list[int]]]:
    """Load a splits file and check every split's keys and index range.

    Returns:
        The list of splits, each ``{"train": [...], "val": [...], "test": [...]}`` as Python ints.
    """
    path = Path(path)
    data = safe_torch_load(path)
    if not isinstance(data, dict) or "splits" not in data:
        found = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: missing key 'splits': expected {{'splits': [{{'train', 'val', 'test'}}, ...]}}, found {found}")
    splits = data["splits"]
    if not isinstance(splits, (list, tuple)) or not splits:
        raise ValueError(f"{path}: 'splits' must be a non-empty list of dicts with keys train/val/test")
    out = []
    for n, split in enumerate(splits):
        if not isinstance(split, dict):
            raise ValueError(f"{path}: splits[{n}] must be a dict with keys {list(SPLIT_NAMES)}")
        missing = [k for k in SPLIT_NAMES if k not in split]
        if missing:
            raise ValueError(f"{path}: splits[{n}] is missing key(s) {missing} (expected {list(SPLIT_NAMES)})")
        clean = {}
        for name in SPLIT_NAMES:
            indices = [int(i) for i in split[name]]
            bad = [i for i in indices if not 0 <= i < num_recordings]
            if bad:
                raise ValueError(
                    f"{path}: split indices out of range in splits[{n}]['{name}']: {_format_indices(bad)}; "
                    f"the signals file has {num_recordings} recordings (valid indices 0..{num_recordings - 1})"
                )
            clean[name] = indices
        out.append(clean)
    return out


def select_recordings(
    signals: dict[str, Any],
    splits: list[dict[str, list[int]]],
    *,
    split_num: int = 0,
    subject: int = 0,
    time_window: tuple[int, int] = (20, 460),
    length_range: tuple[int, int] = (450, 600),
    drop_non_finite: bool = False,
    eeg_path: str | os.PathLike = "<signals>",
    splits_path: str | os.PathLike = "<splits>",
) -> dict[str, list[int]]:
    """The standard preprocessing as index lists: ``{"train"|"validation"|"test": [dataset indices]}``.

    Per split index: keep ``length_range[0] <= T <= length_range[1]``; then keep ``subject``
    (0 = all). Checks that the time window fits every kept recording and that the kept
    recordings are finite (error listing the indices, or dropped with ``drop_non_finite``).
    """
    recordings = signals["dataset"]
    if not _is_int(split_num) or not 0 <= split_num < len(splits):
        raise ValueError(f"{splits_path}: split_num={split_num!r} is out of range: the file has {len(splits)} split(s) (0..{len(splits) - 1})")
    subjects = sorted({int(r["subject"]) for r in recordings})
    if not _is_int(subject) or (subject != 0 and subject not in subjects):
        raise ValueError(
            f"{eeg_path}: subject={subject!r} is out of range: the file has subjects "
            f"{subjects[0]}..{subjects[-1]} ({len(subjects)} in all); use 0 for all subjects"
        )
    lo, hi = _check_pair("length_range", length_range)
    start, end = _check_pair("time_window", time_window)
    if start < 0 or end <= start:
        raise ValueError(f"time_window={tuple(time_window)!r}: expected 0 <= start < end")

    selected: dict[str, list[int]] = {}
    for file_name, split_name in SPLIT_NAMES.items():
        keep = []
        for i in splits[split_num][file_name]:
            rec = recordings[i]
            length = rec["eeg"].shape[1]
            if lo <= length <= hi and (subject == 0 or int(rec["subject"]) == subject):
                keep.append(i)
        selected[split_name] = keep

    used = sorted({i for idx in selected.values() for i in idx})
    too_short = [i for i in used if recordings[i]["eeg"].shape[1] < end]
    if too_short:
        lengths = sorted({recordings[i]["eeg"].shape[1] for i in too_short})
        raise ValueError(
            f"{eeg_path}: time window {tuple(time_window)} needs {end} samples, but recording(s) "
            f"{_format_indices(too_short)} have only {lengths[0]}..{lengths[-1]} samples; "
            f"choose a window ending at most at the shortest accepted length ({lo})"
        )
    non_finite = [i for i in used if not _all_finite(recordings[i]["eeg"])]
    if non_finite:
        if not drop_non_finite:
            raise ValueError(
                f"{eeg_path}: NaN/Inf values in recording(s) {_format_indices(non_finite)}; "
                "pass drop_non_finite=True (EEGImageNet builder) or --drop-non-finite "
                "(brainvis data prepare) to drop them"
            )
        logger.warning(f"{eeg_path}: dropping {len(non_finite)} recording(s) with NaN/Inf values: {_format_indices(non_finite)}")
        bad = set(non_finite)
        selected = {name: [i for i in idx if i not in bad] for name, idx in selected.items()}
    return selected


def _all_finite(eeg: torch.Tensor) -> bool:
    # numpy: single-threaded, so it stays fast on busy machines (torch's intra-op threads can stall)
    array = eeg.numpy() if eeg.dtype != torch.bfloat16 else eeg.float().numpy()
    return bool(np.isfinite(array).all()) if array.dtype.kind == "f" else True


def _check_pair(name: str, value: Sequence[int]) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r}: expected a pair of ints (start, end)") from None
    if b < a:
        raise ValueError(f"{name}={tuple(value)!r}: expected start <= end")
    return a, b


def image_path(image_root: str | os.PathLike, image_name: str) -> Path:
    """``<image_root>/<wnid>/<image_name>.JPEG`` for a validated image name."""
    validate_image_name(image_name)
    return Path(image_root) / image_name.split("_")[0] / f"{image_name}.JPEG"


def _file_fingerprint(*paths: str | os.PathLike | None) -> str:
    """Size and modification time of each path: part of the cache key, so a changed file is reloaded.

    For a folder (the image root), the modification times of the folder and of its class
    sub-folders are used: adding or removing an image changes them.
    """
    parts = []
    for p in paths:
        if p is None:
            parts.append("-")
            continue
        try:
            st = os.stat(p)
            parts.append(f"{st.st_size}:{st.st_mtime_ns}")
            if os.path.isdir(p):
                with os.scandir(p) as entries:
                    subdirs = sorted((e.name, e.stat().st_mtime_ns) for e in entries if e.is_dir())
                parts.append(hashlib.sha256(repr(subdirs).encode()).hexdigest()[:16])
        except OSError:
            parts.append("missing")
    return "|".join(parts)


# ----------------------------------------------------------------------------------------------
# The builder
# ----------------------------------------------------------------------------------------------


@dataclass
class EEGImageNetConfig(datasets.BuilderConfig):
    """Parameters of the EEG-ImageNet builder.

    Args:
        eeg_path: signals file (e.g. ``eeg_5_95_std.pth``).
        splits_path: splits file (e.g. ``block_splits_by_image_all.pth``).
        split_num: which split of the splits file (0 is the standard one).
        subject: keep one subject (1..6); 0 keeps all.
        time_window: ``(start, end)`` samples kept from each recording (default 20..460 -> 440).
        length_range: accepted raw lengths ``(min, max)``, inclusive (default 450..600).
        image_root: ImageNet subset root with ``<wnid>/<name>.JPEG``; adds an ``image`` column.
        drop_non_finite: drop recordings holding NaN/Inf instead of raising.
        fingerprint: size/mtime of the input files, filled in automatically (cache key).
    """

    eeg_path: str | None = None
    splits_path: str | None = None
    split_num: int = 0
    subject: int = 0
    time_window: tuple[int, int] = (20, 460)
    length_range: tuple[int, int] = (450, 600)
    image_root: str | None = None
    drop_non_finite: bool = False
    fingerprint: str | None = field(default=None, repr=False)


class EEGImageNet(datasets.GeneratorBasedBuilder):
    """EEG-ImageNet (Spampinato et al., CVPR 2017; not Zhu et al. 2024) signals + splits files ->
    ``train`` / ``validation`` / ``test`` splits.

    Columns: ``eeg`` (``Array2D((C, T), "float32")``), ``label`` (``ClassLabel``, WordNet ids in
    file order), ``label_text``, ``subject``, ``image_name``, ``eeg_index`` and, with an image
    root, ``image``. Instantiate directly (``datasets`` >= 4 runs no loading scripts):

    ```py
    >>> builder = EEGImageNet(eeg_path="eeg_5_95_std.pth", splits_path="block_splits_by_image_all.pth")
    >>> builder.download_and_prepare()
    >>> ds = builder.as_dataset()
    ```
    """

    BUILDER_CONFIG_CLASS = EEGImageNetConfig
    VERSION = datasets.Version("1.0.0")
    DEFAULT_WRITER_BATCH_SIZE = 256

    def __init__(self, *args, **kwargs):
        for key in ("eeg_path", "splits_path", "image_root"):
            if kwargs.get(key) is not None:
                kwargs[key] = os.path.abspath(os.fspath(kwargs[key]))
        for key in ("time_window", "length_range"):
            if key in kwargs:
                kwargs[key] = tuple(int(v) for v in kwargs[key])
        if kwargs.get("fingerprint") is None and kwargs.get("eeg_path") is not None:
            kwargs["fingerprint"] = _file_fingerprint(kwargs.get("eeg_path"), kwargs.get("splits_path"), kwargs.get("image_root"))
        self._signals: dict[str, Any] | None = None
        super().__init__(*args, **kwargs)

    # -- reading ---------------------------------------------------------------------------------

    def _load_signals(self) -> dict[str, Any]:
        if self._signals is None:
            if self.config.eeg_path is None or self.config.splits_path is None:
                raise ValueError("EEGImageNet needs eeg_path=<signals file> and splits_path=<splits file>")
            self._signals = load_signals(self.config.eeg_path)
        return self._signals

    # -- datasets API ----------------------------------------------------------------------------

    def _info(self) -> datasets.DatasetInfo:
        signals = self._load_signals()
        wnids = list(signals["labels"])
        num_channels = signals["dataset"][0]["eeg"].shape[0]
        start, end = self.config.time_window
        features = {
            "eeg": datasets.Array2D(shape=(num_channels, end - start), dtype="float32"),
            "label": datasets.ClassLabel(names=wnids),
            "label_text": datasets.Value("string"),
            "subject": datasets.Value("int32"),
            "image_name": datasets.Value("string"),
            "eeg_index": datasets.Value("int64"),
        }
        if self.config.image_root is not None:
            features["image"] = datasets.Image()
        class_words = {w: WNID_TO_WORDS.get(w, w) for w in wnids}
        description = (
            f"{_DESCRIPTION}\n\nClass index -> WordNet id -> words (JSON): "
            + json.dumps([[i, w, class_words[w]] for i, w in enumerate(wnids)], allow_nan=False)
        )
        return datasets.DatasetInfo(
            description=description,
            features=datasets.Features(features),
            homepage="https://github.com/perceivelab/eeg_visual_classification",
            citation=_CITATION,
            license="Terms of the original EEG-ImageNet release (see its authors); ImageNet images: ImageNet terms of access.",
        )

    def _split_generators(self, dl_manager):  # noqa: ARG002 - local files only
        signals = self._load_signals()
        splits = load_splits(self.config.splits_path, len(signals["dataset"]))
        selected = select_recordings(
            signals,
            splits,
            split_num=self.config.split_num,
            subject=self.config.subject,
            time_window=self.config.time_window,
            length_range=self.config.length_range,
            drop_non_finite=self.config.drop_non_finite,
            eeg_path=self.config.eeg_path,
            splits_path=self.config.splits_path,
        )
        if self.config.image_root is not None:
            self._check_images([i for idx in selected.values() for i in idx])
        return [
            datasets.SplitGenerator(name=name, gen_kwargs={"indices": indices})
            for name, indices in selected.items()
        ]

    def _check_images(self, indices: list[int]) -> None:
        root = Path(self.config.image_root)
        if not root.is_dir():
            raise FileNotFoundError(f"image_root {root}: no such directory")
        signals = self._signals
        names = sorted({signals["images"][int(signals["dataset"][i]["image"])] for i in indices})
        missing = [str(image_path(root, n)) for n in names if not image_path(root, n).is_file()]
        if missing:
            raise FileNotFoundError(
                f"image_root {root}: {len(missing)} image file(s) missing, e.g. {missing[:3]} "
                "(expected <image_root>/<wnid>/<image_name>.JPEG)"
            )

    def _generate_examples(self, indices: list[int]) -> Iterator[tuple[int, dict[str, Any]]]:
        signals = self._load_signals()
        recordings, wnids, images = signals["dataset"], signals["labels"], signals["images"]
        start, end = self.config.time_window
        for i in indices:
            rec = recordings[i]
            label = int(rec["label"])
            name = images[int(rec["image"])]
            example = {
                "eeg": _crop(rec["eeg"], start, end),
                "label": label,
                "label_text": WNID_TO_WORDS.get(wnids[label], wnids[label]),
                "subject": int(rec["subject"]),
                "image_name": name,
                "eeg_index": int(i),
            }
            if self.config.image_root is not None:
                example["image"] = str(image_path(self.config.image_root, name))
            yield i, example


def _crop(eeg: torch.Tensor, start: int, end: int) -> np.ndarray:
    """``eeg[:, start:end]`` as a float32 array (numpy, single-threaded)."""
    array = eeg.numpy() if eeg.dtype != torch.bfloat16 else eeg.float().numpy()
    return np.ascontiguousarray(array[:, start:end], dtype=np.float32)


def load_eeg_imagenet(
    eeg_path: str | os.PathLike,
    splits_path: str | os.PathLike,
    *,
    split_num: int = 0,
    subject: int = 0,
    time_window: tuple[int, int] = (20, 460),
    length_range: tuple[int, int] = (450, 600),
    image_root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.DatasetDict:
    """Load EEG-ImageNet files as a ``DatasetDict`` with splits ``train``, ``validation``, ``test``.

    Args:
        eeg_path: signals file (e.g. ``eeg_5_95_std.pth``), read with ``weights_only=True``.
        splits_path: splits file (e.g. ``block_splits_by_image_all.pth``).
        split_num: split index in the splits file (default 0, the standard one).
        subject: keep one subject (1..6); 0 keeps all (applied after the split).
        time_window: samples ``(start, end)`` kept from each recording (default 20..460).
        length_range: accepted raw lengths, inclusive (default 450..600).
        image_root: ImageNet subset root (``<wnid>/<name>.JPEG``); adds an ``image`` column.
        cache_dir: where ``datasets`` caches the Arrow files (default: the ``datasets`` cache).
            The cache key includes every parameter and the files' size and modification time.

    Returns:
        ``DatasetDict`` with columns ``eeg`` (C x T float32), ``label`` (ClassLabel of WordNet
        ids in file order), ``label_text``, ``subject``, ``image_name``, ``eeg_index``
        (+ ``image``). Recordings with NaN/Inf raise; use the ``EEGImageNet`` builder with
        ``drop_non_finite=True`` to drop them.
    """
    for p in (eeg_path, splits_path):
        if not Path(p).is_file():
            raise FileNotFoundError(f"{p}: no such file")
    builder = EEGImageNet(
        cache_dir=None if cache_dir is None else os.fspath(cache_dir),
        eeg_path=eeg_path,
        splits_path=splits_path,
        split_num=split_num,
        subject=subject,
        time_window=time_window,
        length_range=length_range,
        image_root=image_root,
    )
    builder.download_and_prepare()
    return builder.as_dataset()

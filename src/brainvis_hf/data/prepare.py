"""Export an EEG ``DatasetDict`` as a Hub-ready folder: Parquet shards + a dataset card.

Layout (``datasets.load_dataset(DIR)`` loads it offline, and the folder can be uploaded as is)::

    DIR/README.md                           dataset card, YAML `configs` + `dataset_info`
    DIR/data/train-00000-of-00003.parquet   (and validation-*, test-*)
    DIR/checksums.json                      sha256 of every shard, verified on load
    DIR/clip_targets/                       optional, added by `brainvis data clip-targets`
"""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import datasets
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.table import embed_table_storage
from datasets.utils.metadata import MetadataConfigs
from datasets.utils.py_utils import convert_file_size_to_int
from huggingface_hub import DatasetCard, DatasetCardData
from tqdm.auto import tqdm

from .._io import sha256_file
from ..hub.cards import markdown_table
from ..hub.upload import push_folder_to_hub
from .eeg_imagenet import _CITATION
from .synthetic import _default_mode
from .labels import WNID_TO_WORDS
from .splits import write_split_manifest

DATA_DIR = "data"
CHECKSUMS_NAME = "checksums.json"
# `brainvis --no-verify ...` sets this; load_prepared_dataset(verify_checksums=None) reads it
NO_VERIFY_ENV = "BRAINVIS_NO_VERIFY"
SPLIT_ORDER = ("train", "validation", "test")
REQUIRED_COLUMNS = ("eeg", "label", "label_text", "subject", "image_name", "eeg_index")

LICENSE_NOTE = (
    "The EEG recordings belong to the EEG-ImageNet release by Spampinato et al. (PeRCeiVe Lab, "
    "University of Catania) and remain under that release's terms; the images are ImageNet "
    "images under the ImageNet terms of access (non-commercial research and education). This "
    "Parquet conversion adds no rights: obtain the original data from its authors and comply "
    "with their licence and terms before using or redistributing it."
)
ETHICS_NOTE = (
    "EEG is personal, health-related data (GDPR Art. 9 treats biometric and health data as "
    "special categories). Subjects are identified only by a number, but EEG can still carry "
    "identifying or medical information: do not try to re-identify subjects, keep the data "
    "access-restricted when you redistribute it, and use it only for research the subjects "
    "consented to. Decoding visual content from brain signals raises privacy questions; "
    "reconstructions from this data set are coarse, class-level images."
)


def prepare_dataset(
    dataset_dict: datasets.DatasetDict,
    output_dir: str | os.PathLike,
    *,
    max_shard_size: int | str = "500MB",
    card_metadata: Mapping[str, Any] | None = None,
    preprocessing: Mapping[str, Any] | None = None,
    description: str | None = None,
    overwrite: bool = False,
    citation: str | None = None,
    license_note: str | None = None,
) -> Path:
    """Write ``dataset_dict`` as Parquet shards plus a dataset card into ``output_dir``.

    Image columns stored as paths are embedded (the Parquet files hold the bytes), so the folder
    is self-contained. Everything is written to a temporary folder next to ``output_dir`` and
    moved into place at the end; a non-empty ``output_dir`` is only replaced with
    ``overwrite=True``.

    Args:
        dataset_dict: splits to write (e.g. from :func:`~brainvis_hf.data.load_eeg_imagenet`).
        output_dir: the folder to create.
        max_shard_size: largest shard, in bytes or as a string like ``"500MB"``.
        card_metadata: extra / overriding YAML fields for the dataset card (e.g. ``pretty_name``).
        preprocessing: parameters to list in the card (split, subject, time window, source files).
        description: the card's opening paragraph (default: a description of EEG-ImageNet; pass
            one for synthetic or other data).
        overwrite: replace a non-empty ``output_dir``.
        citation, license_note: the card's BibTeX and licence paragraph (default: EEG-ImageNet's).

    Returns:
        ``output_dir`` as a ``Path``.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"{output_dir}: exists and is not a folder")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{output_dir}: folder is not empty; pass overwrite=True (--overwrite) to replace it")
    if not isinstance(dataset_dict, datasets.DatasetDict) or not len(dataset_dict):
        raise ValueError(f"prepare_dataset expects a non-empty datasets.DatasetDict, got {type(dataset_dict).__name__}")
    max_bytes = convert_file_size_to_int(max_shard_size)
    output_dir.parent.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}-tmp-", dir=output_dir.parent))
    try:
        (tmp / DATA_DIR).mkdir()
        split_infos = SplitDict()
        names = [s for s in SPLIT_ORDER if s in dataset_dict] + [s for s in dataset_dict if s not in SPLIT_ORDER]
        for split in names:
            num_bytes = _write_split(dataset_dict[split], split, tmp / DATA_DIR, max_bytes)
            split_infos.add(SplitInfo(name=split, num_bytes=num_bytes, num_examples=len(dataset_dict[split])))
        card = build_dataset_card(
            dataset_dict, split_infos, card_metadata=card_metadata, preprocessing=preprocessing, description=description,
            citation=citation, license_note=license_note,
        )
        card.save(tmp / "README.md")
        write_split_manifest(tmp, dataset_dict)  # DIR/splits.json: split content hashes (docs/protocols.md)
        write_checksums(tmp)
        os.chmod(tmp, _default_mode(0o777))
        _move_into_place(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output_dir


def _write_split(ds: datasets.Dataset, split: str, data_dir: Path, max_bytes: int) -> int:
    embed = any(isinstance(f, (datasets.Image, datasets.Audio)) for f in ds.features.values())
    num_shards = max(1, math.ceil(ds.data.nbytes / max_bytes)) if len(ds) else 1
    total = 0
    for index in tqdm(range(num_shards), desc=f"Writing {split}", unit="shard", disable=num_shards < 2):
        shard = ds.shard(num_shards=num_shards, index=index, contiguous=True)
        if embed:
            shard = shard.with_format("arrow").map(embed_table_storage, batched=True, batch_size=256, keep_in_memory=True)
            shard = shard.with_format(None)
        total += shard.data.nbytes
        # encoded in memory (one shard, <= max_shard_size), written by Python: on a full disk pyarrow's
        # writer aborts the whole process, while Python raises an OSError that the CLI reports in one line
        buffer = io.BytesIO()
        shard.to_parquet(buffer, batch_size=256)
        (data_dir / f"{split}-{index:05d}-of-{num_shards:05d}.parquet").write_bytes(buffer.getbuffer())
        del buffer
    return total


def _move_into_place(tmp: Path, output_dir: Path) -> None:
    """Replace ``output_dir`` with ``tmp``; the old folder is removed only after the new one is in place."""
    old = None
    if output_dir.exists():
        old = output_dir.with_name(f".{output_dir.name}-old-{os.getpid()}")
        os.replace(output_dir, old)
    os.replace(tmp, output_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def build_dataset_card(
    dataset_dict: datasets.DatasetDict,
    split_infos: SplitDict,
    *,
    card_metadata: Mapping[str, Any] | None = None,
    preprocessing: Mapping[str, Any] | None = None,
    description: str | None = None,
    citation: str | None = None,
    license_note: str | None = None,
) -> DatasetCard:
    """The dataset card: YAML (``configs``, ``dataset_info``, licence, tags) and a Markdown body."""
    first = next(iter(dataset_dict.values()))
    features = first.features
    total = sum(len(d) for d in dataset_dict.values())
    card_data = DatasetCardData(
        license="other",
        license_name="eeg-imagenet-original-terms",
        license_link="https://github.com/perceivelab/eeg_visual_classification",
        pretty_name="EEG-ImageNet (BrainVis preprocessing)",
        task_categories=["other"],
        tags=["eeg", "brain-computer-interface", "neuroscience", "eeg-to-image", "brainvis", "imagenet"],
        size_categories=[_size_category(total)],
        source_datasets=["original"],
    )
    MetadataConfigs(
        {"default": {"data_files": [{"split": s, "path": f"{DATA_DIR}/{s}-*"} for s in split_infos]}}
    ).to_dataset_card_data(card_data)
    info = DatasetInfo(features=features, splits=split_infos, dataset_size=sum(s.num_bytes for s in split_infos.values()))
    DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    for key, value in (card_metadata or {}).items():
        card_data[key] = value

    body = [f"# {card_data.get('pretty_name') or 'EEG data set'}", ""]
    body += [
        description
        or "128-channel EEG recorded at 1 kHz while subjects watched ImageNet images of 40 classes "
        "(Spampinato et al., CVPR 2017; also called ImageNet-EEG or CVPR40, and unrelated to the "
        "'EEG-ImageNet' of Zhu et al., 2024), prepared with [brainvis-hf](https://arxiv.org/abs/2312.14871) "
        "for EEG classification and EEG -> image reconstruction (BrainVis). Recorded in a block design: "
        "class accuracy is inflated by temporal confounds (Li et al., 2020; see docs/protocols.md).",
        "",
        "## Splits",
        "",
        markdown_table(["split", "rows"], [(name, info.num_examples) for name, info in split_infos.items()]),
        "",
        "## Columns",
        "",
        "- `eeg`: float32, channels x time (already cropped to the time window)",
        "- `label`: class index (`ClassLabel`; names are the WordNet ids in the signals file's order)",
        "- `label_text`: the class in words (used as the refinement prompt)",
        "- `subject`: subject number",
        "- `image_name`: file stem of the stimulus image (EEG-ImageNet: an ImageNet stem such as `n02951358_31190`)",
        "- `eeg_index`: index of the recording in the original signals file (stable EEG id)",
    ]
    if "image" in features:
        body.append("- `image`: the stimulus image")
    if preprocessing:
        body += ["", "## Preprocessing", "", *[f"- `{k}`: {v}" for k, v in preprocessing.items()]]
    label_feature = features["label"]
    if isinstance(label_feature, datasets.ClassLabel):
        words = {}
        for split in dataset_dict.values():
            if "label_text" in split.column_names:
                for label, text in zip(split["label"], split["label_text"]):
                    words.setdefault(int(label), text)
        classes = [(i, w, WNID_TO_WORDS.get(w) or words.get(i, w)) for i, w in enumerate(label_feature.names)]
        body += ["", "## Classes", "", markdown_table(["index", "name (WordNet id / concept)", "words"], classes)]
    body += [
        "",
        "## Usage",
        "",
        "```python",
        "from datasets import load_dataset",
        "ds = load_dataset('path/or/repo').with_format('torch')",
        "from brainvis_hf.data import BrainVisDataCollator",
        "batch = BrainVisDataCollator()([ds['train'][i] for i in range(8)])  # eeg_values: 8 x C x T",
        "```",
        "",
        "## Licence",
        "",
        license_note or LICENSE_NOTE,
        "",
        "## Ethics",
        "",
        ETHICS_NOTE,
        "",
        "## Citation",
        "",
        "```bibtex",
        (citation or _CITATION).strip(),
        "```",
        "",
    ]
    return DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(body))




def write_checksums(data_dir: str | os.PathLike) -> Path:
    """Record the sha256 of every Parquet shard of ``data_dir`` in ``checksums.json``."""
    from .._io import dumps_strict

    data_dir = Path(data_dir)
    files = {p.relative_to(data_dir).as_posix(): sha256_file(p) for p in sorted((data_dir / DATA_DIR).glob("*.parquet"))}
    path = data_dir / CHECKSUMS_NAME
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(dumps_strict({"algorithm": "sha256", "files": files}, path, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def verify_prepared_files(data_dir: str | os.PathLike, *, verify_checksums: bool = True) -> None:
    """Check the Parquet shards of a prepared folder before loading them; errors name the shard.

    Every shard must have a readable Parquet footer (a truncated copy fails here, not deep inside
    ``datasets``). With ``verify_checksums`` and a ``checksums.json`` (written by
    :func:`prepare_dataset`), every shard's sha256 must match: a flipped byte is caught.
    """
    import pyarrow.parquet as pq

    from .._io import read_json_file

    data_dir = Path(data_dir)
    shards = sorted((data_dir / DATA_DIR).glob("*.parquet"))
    checksums_path = data_dir / CHECKSUMS_NAME
    if verify_checksums and checksums_path.is_file():
        recorded = read_json_file(checksums_path, "checksum file", "re-run `brainvis data prepare`, or load with --no-verify")
        files = recorded.get("files") if isinstance(recorded, dict) else None
        if not isinstance(files, dict) or recorded.get("algorithm") != "sha256":
            raise ValueError(f"{checksums_path}: expected {{'algorithm': 'sha256', 'files': {{...}}}}; re-run `brainvis data prepare`.")
        for shard in shards:
            rel = shard.relative_to(data_dir).as_posix()
            if rel not in files:
                raise ValueError(f"{shard}: not listed in {checksums_path}; remove it, or re-run `brainvis data prepare`.")
        for rel, expected in files.items():
            path = data_dir / rel
            if not path.is_file():
                raise FileNotFoundError(f"{path}: shard listed in {checksums_path} is missing; restore it or re-run `brainvis data prepare`.")
            actual = sha256_file(path)
            if actual != expected:
                raise ValueError(
                    f"{path}: corrupted (sha256 {actual[:16]}... differs from {expected[:16]}... recorded in {CHECKSUMS_NAME}); "
                    "restore the shard or re-run `brainvis data prepare` (--no-verify skips this check)."
                )
    for shard in shards:
        try:
            pq.read_metadata(shard)
        except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a damaged footer
            raise ValueError(f"{shard}: not a readable Parquet file ({err}); it is truncated or corrupted: "
                             "restore it or re-run `brainvis data prepare`.") from None  # fmt: skip


def load_prepared_dataset(
    data_dir: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    verify_checksums: bool | None = None,
) -> datasets.DatasetDict:
    """Load a folder written by :func:`prepare_dataset` and check its columns.

    Args:
        verify_checksums: compare every shard with ``checksums.json`` first (reads every byte once);
            ``None``: yes, unless the environment variable ``BRAINVIS_NO_VERIFY`` is set (``brainvis
            --no-verify``). Truncated shards are caught either way.

    Raises:
        FileNotFoundError: when the folder, its card or its Parquet files are missing.
        ValueError: naming the folder, when a required column is missing or has the wrong type;
            naming the shard, when a shard is truncated or does not match its checksum.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: no such folder")
    if not (data_dir / "README.md").is_file() or not list((data_dir / DATA_DIR).glob("*.parquet")):
        raise FileNotFoundError(
            f"{data_dir}: not a prepared data folder (expected README.md and {DATA_DIR}/<split>-*.parquet; "
            "write one with `brainvis data prepare`)"
        )
    if verify_checksums is None:
        verify_checksums = os.environ.get(NO_VERIFY_ENV, "") in ("", "0")
    verify_prepared_files(data_dir, verify_checksums=verify_checksums)
    ds = datasets.load_dataset(
        "parquet", data_files=_split_files(data_dir), cache_dir=None if cache_dir is None else str(cache_dir)
    )
    for split, d in ds.items():
        missing = [c for c in REQUIRED_COLUMNS if c not in d.column_names]
        if missing:
            raise ValueError(f"{data_dir}: split '{split}' is missing column(s) {missing} (has {d.column_names})")
        eeg, label = d.features["eeg"], d.features["label"]
        if not isinstance(eeg, datasets.Array2D) or eeg.dtype != "float32":
            raise ValueError(f"{data_dir}: split '{split}': column 'eeg' must be Array2D float32 (channels, time), got {eeg}")
        if not isinstance(label, datasets.ClassLabel):
            raise ValueError(f"{data_dir}: split '{split}': column 'label' must be a ClassLabel, got {label}")
    return ds


def _split_files(data_dir: Path) -> dict[str, list[str]]:
    """``{split: [absolute shard paths]}`` of a prepared folder.

    Loading through the ``parquet`` builder with absolute paths makes the ``datasets`` cache key
    depend on where the shards are (and their modification times). ``load_dataset(DIR)`` keyed
    the cache on the folder *name* and card only, so two prepared folders both called
    ``prepared`` with identical cards (same sizes, different values) shared one cache entry and
    the second silently loaded the first one's data.
    """
    files: dict[str, list[str]] = {}
    for path in sorted((data_dir / DATA_DIR).glob("*.parquet")):
        match = re.match(r"^(.+)-\d{5}-of-\d{5}\.parquet$", path.name)
        if match is None:
            raise ValueError(f"{path}: unexpected shard name (expected <split>-XXXXX-of-YYYYY.parquet)")
        files.setdefault(match.group(1), []).append(str(path.resolve()))
    ordered = [s for s in SPLIT_ORDER if s in files] + [s for s in files if s not in SPLIT_ORDER]
    return {split: files[split] for split in ordered}


def push_prepared_dataset(
    data_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload EEG data set prepared with brainvis-hf",
) -> str:
    """Upload a prepared folder to the Hub as a dataset repository (created if needed) in one
    commit; returns the commit URL."""
    data_dir = Path(data_dir)
    if not (data_dir / "README.md").is_file():
        raise FileNotFoundError(f"{data_dir}: not a prepared data folder (no README.md)")
    return push_folder_to_hub(data_dir, repo_id, repo_type="dataset", private=private, token=token,
                              commit_message=commit_message)

"""THINGS-EEG2 (Gifford et al., 2022), preprocessed release, as a ``datasets`` builder.

Not to be confused with BrainVis's own data set, the Spampinato et al. (CVPR 2017) recordings
("EEG-ImageNet" / "ImageNet-EEG" / "CVPR40", :class:`~brainvis_hf.data.EEGImageNet`), nor with
the unrelated Zhu et al. (2024) "EEG-ImageNet".

The preprocessed release holds, per subject ``sub-XX/``:

* ``preprocessed_eeg_training.npy``: ``{"preprocessed_eeg_data": (16540 images, 4 repetitions,
  17 channels, 100 samples), "ch_names": [17 names], "times": (100,) seconds}``;
* ``preprocessed_eeg_test.npy``: the same with ``(200 images, 80 repetitions, 17, 100)``;

and one ``image_metadata.npy`` (in the release: ``image_set/image_metadata.npy``) with
``train_img_concepts`` (1654 concepts x 10 images, concept by concept, e.g. ``00001_aardvark``),
``train_img_files`` (``aardvark_01b.jpg``), ``test_img_concepts`` and ``test_img_files`` (200
concepts x 1 image). EEG rows follow the metadata's image order. 100 samples at 100 Hz = -0.2..0.8 s.

**The ``.npy`` files are NumPy pickles** (``np.save`` of a dict). ``np.load(...,
allow_pickle=True)`` would run any code the file carries, so they are read with
:func:`safe_load_npy`: a restricted unpickler that admits only NumPy array reconstruction,
dtypes, and plain dict/list/str/number values. Anything else is refused with one line naming
the file.

Rows are written in the package's generic schema (``eeg``, ``label``, ``label_text``,
``subject``, ``image_name``, ``eeg_index``, optional ``image``). The ``label`` ClassLabel lists
the training concepts then the test concepts (1854 in the release); the test concepts never
occur in ``train`` / ``validation`` (zero-shot). ``validation`` is carved from the *training
images*: ``validation_images_per_concept`` images of every training concept, drawn with
``validation_seed``, the same images for every subject, so no image is in two splits.
"""

from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import datasets
import numpy as np

from ..hub.citations import THINGS_EEG2_CITATION
from .eeg_imagenet import _file_fingerprint, validate_image_name

TRAINING_FILE = "preprocessed_eeg_training.npy"
TEST_FILE = "preprocessed_eeg_test.npy"
METADATA_FILE = "image_metadata.npy"
SAMPLING_RATE = 100  # Hz, of the preprocessed release
_EEG_KEYS = ("preprocessed_eeg_data", "ch_names", "times")
_METADATA_KEYS = ("train_img_concepts", "train_img_files", "test_img_concepts", "test_img_files")
# eeg_index = (subject * 2 + part) * _SUBJECT_STRIDE + image * _IMAGE_STRIDE + group
_SUBJECT_STRIDE = 100_000_000
_IMAGE_STRIDE = 1_000

_CITATION = THINGS_EEG2_CITATION

_DESCRIPTION = (
    "THINGS-EEG2 (Gifford et al., NeuroImage 2022), preprocessed release: 17 occipito-parietal "
    "channels at 100 Hz (100 samples, -0.2..0.8 s) from 10 subjects viewing THINGS images in a "
    "rapid serial visual presentation. Training: 1654 concepts x 10 images x 4 repetitions; "
    "test: 200 unseen concepts x 1 image x 80 repetitions (zero-shot). Not the BrainVis data set "
    "(Spampinato et al. CVPR 2017, 'EEG-ImageNet'/'CVPR40') and not Zhu et al. 2024 'EEG-ImageNet'."
)


# ----------------------------------------------------------------------------------------------
# Safe reading of NumPy pickles
# ----------------------------------------------------------------------------------------------


def _numpy_globals() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    # numpy >= 1.25 pickles dtypes as numpy.dtypes.<Name>DType classes
    import numpy.dtypes as np_dtypes

    for name in dir(np_dtypes):
        if name.endswith("DType"):
            allowed[("numpy.dtypes", name)] = getattr(np_dtypes, name)
    # array bytes of protocol-2 pickles come as _codecs.encode(str, "latin1")
    import _codecs

    allowed[("_codecs", "encode")] = _codecs.encode
    return allowed


class RestrictedNumpyUnpickler(pickle.Unpickler):
    """Unpickles only NumPy arrays, dtypes and plain Python values (dict, list, str, numbers).

    ``find_class`` is the only way a pickle reaches a callable; it admits exactly the NumPy
    array reconstruction helpers and dtype classes, so a payload such as ``os.system`` or
    ``builtins.eval`` raises ``pickle.UnpicklingError``.
    """

    _ALLOWED: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        if RestrictedNumpyUnpickler._ALLOWED is None:
            RestrictedNumpyUnpickler._ALLOWED = _numpy_globals()
        value = RestrictedNumpyUnpickler._ALLOWED.get((module, name))
        if value is None:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")
        return value


def safe_load_npy(path: str | os.PathLike) -> Any:
    """Read a ``.npy`` file without running code from it.

    Plain arrays are read with ``allow_pickle=False``; object arrays (what ``np.save(dict)``
    writes) with :class:`RestrictedNumpyUnpickler`. A 0-d object array (a saved dict) is
    returned as its item.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: one line naming ``path``, when the file is not a ``.npy`` file or its pickle
            needs anything beyond arrays, dtypes and plain values (refused, nothing executed).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"{path}: not a NumPy .npy file ({err})") from None
        if not dtype.hasobject:
            handle.seek(0)
            return np.load(handle, allow_pickle=False)
        try:
            array = RestrictedNumpyUnpickler(handle).load()
        except pickle.UnpicklingError as err:
            raise ValueError(
                f"{path}: refusing to load this file: its pickle asks for code beyond NumPy arrays and "
                f"plain values ({err}); brainvis-hf never runs code from data files"
            ) from None
        except Exception as err:  # noqa: BLE001 - truncated or corrupt pickle
            raise ValueError(f"{path}: corrupt NumPy pickle ({type(err).__name__}: {err})") from None
    if isinstance(array, np.ndarray) and array.dtype.hasobject and array.shape == ():
        return array.item()
    return array


def load_things_eeg2_file(path: str | os.PathLike, part: str) -> dict[str, Any]:
    """Read and check one subject's ``preprocessed_eeg_{training,test}.npy``.

    Returns ``{"preprocessed_eeg_data": (images, repetitions, channels, samples) array,
    "ch_names": list[str], "times": (samples,) array}``.
    """
    path = Path(path)
    data = safe_load_npy(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict with keys {list(_EEG_KEYS)}, got {type(data).__name__}")
    missing = [k for k in _EEG_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing} (found {sorted(map(str, data))})")
    eeg = data["preprocessed_eeg_data"]
    if not isinstance(eeg, np.ndarray) or eeg.ndim != 4 or eeg.dtype.kind != "f":
        shape = getattr(eeg, "shape", type(eeg).__name__)
        raise ValueError(
            f"{path}: 'preprocessed_eeg_data' must be a 4-D float array (images, repetitions, channels, "
            f"samples), got {shape}"
        )
    names = [str(n) for n in np.asarray(data["ch_names"]).tolist()]
    times = np.asarray(data["times"], dtype=np.float64)
    if len(names) != eeg.shape[2]:
        raise ValueError(f"{path}: {len(names)} 'ch_names' but {eeg.shape[2]} channels in 'preprocessed_eeg_data'")
    if times.ndim != 1 or len(times) != eeg.shape[3]:
        raise ValueError(f"{path}: 'times' has shape {times.shape} but the data has {eeg.shape[3]} samples")
    return {"preprocessed_eeg_data": eeg, "ch_names": names, "times": times, "part": part}


def load_things_eeg2_metadata(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read and check ``image_metadata.npy``: concept and file name of every image, as lists of str."""
    path = Path(path)
    data = safe_load_npy(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict with keys {list(_METADATA_KEYS)}, got {type(data).__name__}")
    missing = [k for k in _METADATA_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing} (found {sorted(map(str, data))})")
    out = {k: [str(v) for v in np.asarray(data[k]).tolist()] for k in _METADATA_KEYS}
    for part in ("train", "test"):
        concepts, files = out[f"{part}_img_concepts"], out[f"{part}_img_files"]
        if len(concepts) != len(files):
            raise ValueError(f"{path}: {len(concepts)} {part}_img_concepts but {len(files)} {part}_img_files")
        for name in files:
            validate_image_name(name, source=f"{path} '{part}_img_files'")
        for name in concepts:
            validate_image_name(name, source=f"{path} '{part}_img_concepts'")
    overlap = sorted(set(out["train_img_concepts"]) & set(out["test_img_concepts"]))
    if overlap:
        raise ValueError(f"{path}: concept(s) {overlap[:5]} are in both the training and the test images")
    return out


def concept_words(concept: str) -> str:
    """``"00001_aardvark"`` -> ``"aardvark"``; ``"00217_baseball_bat"`` -> ``"baseball bat"``."""
    head, _, tail = concept.partition("_")
    return (tail if head.isdigit() and tail else concept).replace("_", " ")


def _unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _averaged(eeg: np.ndarray, k: int | None, path: Path) -> np.ndarray:
    """``(images, R, C, T)`` -> ``(images, groups, C, T)``: means of consecutive groups of ``k`` repetitions."""
    repetitions = eeg.shape[1]
    if k is None:
        k = repetitions
    if not 1 <= k <= repetitions:
        raise ValueError(f"{path}: cannot average {k} repetitions: the file has {repetitions} per image")
    groups = repetitions // k
    if k == 1:
        return eeg
    return eeg[:, : groups * k].reshape(eeg.shape[0], groups, k, *eeg.shape[2:]).mean(axis=2)


def _check_average(name: str, value: int | str | None) -> int | None:
    if value in (None, "all"):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r}: expected an int >= 1 (1 = no averaging) or 'all'")
    return int(value)


# ----------------------------------------------------------------------------------------------
# The builder
# ----------------------------------------------------------------------------------------------


@dataclass
class ThingsEEG2Config(datasets.BuilderConfig):
    """Parameters of the THINGS-EEG2 builder.

    Args:
        data_dir_eeg: folder holding ``sub-XX/preprocessed_eeg_{training,test}.npy``.
        metadata_path: ``image_metadata.npy`` (default: ``<data_dir_eeg>/image_metadata.npy``).
        subjects: subject numbers to keep (default: every ``sub-XX`` folder found).
        average_repetitions: training/validation rows: mean of each consecutive group of
            ``k`` repetitions (``R // k`` rows per image, the last ``R mod k`` repetitions left out;
            1 = every repetition, the default; ``"all"`` = one row per image).
        test_average_repetitions: the same for the test split (default ``"all"``: the 80-trial
            average, the standard zero-shot protocol).
        validation_images_per_concept: training images per concept moved to ``validation``.
        validation_seed: seed of that draw.
        image_root: THINGS image folder with ``training_images/<concept>/<file>`` and
            ``test_images/<concept>/<file>``; adds an ``image`` column.
    """

    data_dir_eeg: str | None = None
    metadata_path: str | None = None
    subjects: tuple[int, ...] | None = None
    average_repetitions: int | str | None = 1
    test_average_repetitions: int | str | None = "all"
    validation_images_per_concept: int = 1
    validation_seed: int = 0
    image_root: str | None = None
    fingerprint: str | None = field(default=None, repr=False)


class ThingsEEG2(datasets.GeneratorBasedBuilder):
    """THINGS-EEG2 preprocessed ``.npy`` files -> ``train`` / ``validation`` / ``test``.

    Instantiate directly (``datasets`` >= 4 runs no loading scripts):

    ```py
    >>> builder = ThingsEEG2(data_dir_eeg="Preprocessed_data_100Hz", metadata_path="image_set/image_metadata.npy")
    >>> builder.download_and_prepare()
    >>> ds = builder.as_dataset()  # eeg: 17 x 100
    ```
    """

    BUILDER_CONFIG_CLASS = ThingsEEG2Config
    VERSION = datasets.Version("1.0.0")
    DEFAULT_WRITER_BATCH_SIZE = 1000

    def __init__(self, *args, **kwargs):
        for key in ("data_dir_eeg", "metadata_path", "image_root"):
            if kwargs.get(key) is not None:
                kwargs[key] = os.path.abspath(os.fspath(kwargs[key]))
        root = kwargs.get("data_dir_eeg")
        if root is not None and kwargs.get("metadata_path") is None:
            kwargs["metadata_path"] = os.path.join(root, METADATA_FILE)
        if root is not None:
            available = find_subjects(root)
            if kwargs.get("subjects") is None:
                kwargs["subjects"] = tuple(available)
            else:
                kwargs["subjects"] = tuple(int(s) for s in kwargs["subjects"])
                unknown = [s for s in kwargs["subjects"] if s not in available]
                if unknown:
                    raise ValueError(f"{root}: no sub-XX folder for subject(s) {unknown}; found {available}")
            if not kwargs["subjects"]:
                raise FileNotFoundError(f"{root}: no sub-XX folder with {TRAINING_FILE} and {TEST_FILE}")
        for key in ("average_repetitions", "test_average_repetitions"):
            if key in kwargs:
                _check_average(key, kwargs[key])
        if kwargs.get("fingerprint") is None and root is not None:
            files = [os.path.join(root, f"sub-{s:02d}", f) for s in kwargs["subjects"] for f in (TRAINING_FILE, TEST_FILE)]
            kwargs["fingerprint"] = _file_fingerprint(kwargs["metadata_path"], *files, kwargs.get("image_root"))
        self._metadata: dict[str, list[str]] | None = None
        self._last_file: tuple[Path, dict[str, Any]] | None = None  # one file kept: train and validation share it
        super().__init__(*args, **kwargs)

    def _load_file(self, path: Path, part: str) -> dict[str, Any]:
        if self._last_file is None or self._last_file[0] != path:
            self._last_file = None  # free the previous file first (a training file is ~450 MB)
            self._last_file = (path, load_things_eeg2_file(path, part))
        return self._last_file[1]

    def _load_metadata(self) -> dict[str, list[str]]:
        if self._metadata is None:
            if self.config.data_dir_eeg is None:
                raise ValueError("ThingsEEG2 needs data_dir_eeg=<folder with sub-XX/preprocessed_eeg_*.npy>")
            self._metadata = load_things_eeg2_metadata(self.config.metadata_path)
        return self._metadata

    def _concepts(self) -> tuple[list[str], list[str]]:
        meta = self._load_metadata()
        return _unique(meta["train_img_concepts"]), _unique(meta["test_img_concepts"])

    def _info(self) -> datasets.DatasetInfo:
        train_concepts, test_concepts = self._concepts()
        first = self._load_file(self._subject_file(self.config.subjects[0], "training"), "training")
        _, _, channels, samples = first["preprocessed_eeg_data"].shape
        features = {
            "eeg": datasets.Array2D(shape=(int(channels), int(samples)), dtype="float32"),
            "label": datasets.ClassLabel(names=train_concepts + test_concepts),
            "label_text": datasets.Value("string"),
            "subject": datasets.Value("int32"),
            "image_name": datasets.Value("string"),
            "eeg_index": datasets.Value("int64"),
        }
        if self.config.image_root is not None:
            features["image"] = datasets.Image()
        return datasets.DatasetInfo(
            description=f"{_DESCRIPTION}\n\nChannels: {', '.join(first['ch_names'])}.",
            features=datasets.Features(features),
            homepage="https://osf.io/3jk45/",
            citation=_CITATION,
            license="CC-BY 4.0 (THINGS-EEG2 release); THINGS images: see the THINGS database terms.",
        )

    def _subject_file(self, subject: int, part: str) -> Path:
        return Path(self.config.data_dir_eeg) / f"sub-{subject:02d}" / (TRAINING_FILE if part == "training" else TEST_FILE)

    def validation_images(self) -> list[int]:
        """Indices (in the metadata's training order) of the images carved out as ``validation``."""
        return carve_validation(
            self._load_metadata()["train_img_concepts"],
            self.config.validation_images_per_concept,
            self.config.validation_seed,
        )

    def _split_generators(self, dl_manager):  # noqa: ARG002 - local files only
        meta = self._load_metadata()
        val = set(self.validation_images())
        train = [i for i in range(len(meta["train_img_files"])) if i not in val]
        if self.config.image_root is not None:
            self._check_images()
        return [
            datasets.SplitGenerator(name="train", gen_kwargs={"part": "training", "images": train}),
            datasets.SplitGenerator(name="validation", gen_kwargs={"part": "training", "images": sorted(val)}),
            datasets.SplitGenerator(name="test", gen_kwargs={"part": "test", "images": None}),
        ]

    def _image_path(self, part: str, concept: str, file: str) -> Path:
        folder = "training_images" if part == "training" else "test_images"
        return Path(self.config.image_root) / folder / concept / file

    def _check_images(self) -> None:
        meta = self._load_metadata()
        missing = []
        for part, key in (("training", "train"), ("test", "test")):
            for concept, file in zip(meta[f"{key}_img_concepts"], meta[f"{key}_img_files"]):
                path = self._image_path(part, concept, file)
                if not path.is_file():
                    missing.append(str(path))
        if missing:
            raise FileNotFoundError(
                f"image_root {self.config.image_root}: {len(missing)} image file(s) missing, e.g. {missing[:3]} "
                "(expected <image_root>/{training,test}_images/<concept>/<file>)"
            )

    def _generate_examples(self, part: str, images: list[int] | None) -> Iterator[tuple[int, dict[str, Any]]]:
        meta = self._load_metadata()
        key = "train" if part == "training" else "test"
        concepts, files = meta[f"{key}_img_concepts"], meta[f"{key}_img_files"]
        names = self.info.features["label"].names
        label_of = {c: i for i, c in enumerate(names)}
        k = _check_average(
            "average_repetitions",
            self.config.average_repetitions if part == "training" else self.config.test_average_repetitions,
        )
        for subject in self.config.subjects:
            path = self._subject_file(subject, part)
            data = self._load_file(path, part)
            eeg = data["preprocessed_eeg_data"]
            if eeg.shape[0] != len(files):
                raise ValueError(
                    f"{path}: {eeg.shape[0]} images in 'preprocessed_eeg_data' but the metadata "
                    f"{self.config.metadata_path} lists {len(files)} {key} images"
                )
            expected = tuple(self.info.features["eeg"].shape)
            if tuple(eeg.shape[2:]) != expected:
                raise ValueError(f"{path}: EEG of {tuple(eeg.shape[2:])} (channels, samples), expected {expected}")
            indices = range(len(files)) if images is None else images
            p = 0 if part == "training" else 1
            for i in indices:
                rows = _averaged(eeg[i : i + 1], k, path)[0]
                if not np.isfinite(rows).all():
                    raise ValueError(f"{path}: NaN/Inf values in image {i} ({files[i]})")
                concept = concepts[i]
                stem = os.path.splitext(files[i])[0]
                for g, row in enumerate(rows):
                    index = (subject * 2 + p) * _SUBJECT_STRIDE + i * _IMAGE_STRIDE + g
                    example = {
                        "eeg": np.ascontiguousarray(row, dtype=np.float32),
                        "label": label_of[concept],
                        "label_text": concept_words(concept),
                        "subject": int(subject),
                        "image_name": stem,
                        "eeg_index": index,
                    }
                    if self.config.image_root is not None:
                        example["image"] = str(self._image_path(part, concept, files[i]))
                    yield index, example


def carve_validation(train_concepts: Sequence[str], per_concept: int, seed: int) -> list[int]:
    """Per training concept, ``per_concept`` of its images (seeded), as sorted image indices."""
    if per_concept < 0:
        raise ValueError(f"validation_images_per_concept={per_concept}: expected >= 0")
    by_concept: dict[str, list[int]] = {}
    for i, c in enumerate(train_concepts):
        by_concept.setdefault(c, []).append(i)
    rng = np.random.default_rng(seed)
    chosen = []
    for concept, idx in by_concept.items():
        if per_concept >= len(idx):
            raise ValueError(
                f"validation_images_per_concept={per_concept}: concept {concept!r} has only {len(idx)} "
                "training images (at least one must stay in train)"
            )
        chosen.extend(rng.choice(idx, size=per_concept, replace=False).tolist())
    return sorted(int(i) for i in chosen)


def find_subjects(data_dir: str | os.PathLike) -> list[int]:
    """Subject numbers of the ``sub-XX`` folders holding both preprocessed files."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    found = []
    for p in sorted(root.glob("sub-*")):
        number = p.name[4:]
        if number.isdigit() and (p / TRAINING_FILE).is_file() and (p / TEST_FILE).is_file():
            found.append(int(number))
    return found


def load_things_eeg2(
    data_dir: str | os.PathLike,
    *,
    metadata_path: str | os.PathLike | None = None,
    subjects: Sequence[int] | None = None,
    average_repetitions: int | str = 1,
    test_average_repetitions: int | str = "all",
    validation_images_per_concept: int = 1,
    validation_seed: int = 0,
    image_root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.DatasetDict:
    """Load THINGS-EEG2's preprocessed release as a ``DatasetDict`` (``train``, ``validation``, ``test``).

    Args:
        data_dir: folder with ``sub-XX/preprocessed_eeg_training.npy`` and ``..._test.npy``.
        metadata_path: ``image_metadata.npy`` (default ``<data_dir>/image_metadata.npy``).
        subjects: subject numbers (default: all found).
        average_repetitions: train/validation: mean of consecutive groups of ``k`` repetitions
            (1 = none, ``"all"`` = one row per image).
        test_average_repetitions: the same for test (default ``"all"``).
        validation_images_per_concept: training images per concept held out as ``validation``
            (same images for every subject).
        validation_seed: seed of that draw.
        image_root: THINGS images (``training_images/<concept>/<file>``, ``test_images/...``).
        cache_dir: ``datasets`` cache (the key includes the parameters and the files' size/mtime).
    """
    builder = ThingsEEG2(
        cache_dir=None if cache_dir is None else os.fspath(cache_dir),
        data_dir_eeg=data_dir,
        metadata_path=metadata_path,
        subjects=None if subjects is None else tuple(subjects),
        average_repetitions=average_repetitions,
        test_average_repetitions=test_average_repetitions,
        validation_images_per_concept=validation_images_per_concept,
        validation_seed=validation_seed,
        image_root=image_root,
    )
    try:
        builder.download_and_prepare()
    except datasets.exceptions.DatasetGenerationError as err:
        # a bad file found while writing: surface its one-line error, not the datasets wrapper
        if isinstance(err.__cause__, (ValueError, FileNotFoundError)):
            raise err.__cause__ from None
        raise
    return builder.as_dataset()


LICENSE_NOTE = (
    "The EEG recordings belong to the THINGS-EEG2 release (Gifford et al., 2022; OSF "
    "https://osf.io/3jk45/), distributed under CC-BY 4.0; the THINGS images keep the THINGS "
    "database terms. This Parquet conversion adds no rights: cite the original work and comply "
    "with its terms."
)


def prepare_things_eeg2(
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    max_shard_size: int | str = "500MB",
    **load_kwargs: Any,
):
    """:func:`load_things_eeg2` then ``prepare_dataset``, with a THINGS-EEG2 dataset card.

    ``load_kwargs`` go to :func:`load_things_eeg2` (``metadata_path``, ``subjects``,
    ``average_repetitions``, ``test_average_repetitions``, ``validation_images_per_concept``,
    ``validation_seed``, ``image_root``, ``cache_dir``). Returns the output folder.
    """
    from .prepare import prepare_dataset

    ds = load_things_eeg2(data_dir, **load_kwargs)
    settings = {
        "average_repetitions": load_kwargs.get("average_repetitions", 1),
        "test_average_repetitions": load_kwargs.get("test_average_repetitions", "all"),
        "validation_images_per_concept": load_kwargs.get("validation_images_per_concept", 1),
        "validation_seed": load_kwargs.get("validation_seed", 0),
        "subjects": sorted(set(ds["train"]["subject"])),
        "source": os.path.abspath(os.fspath(data_dir)),
    }
    return prepare_dataset(
        ds, output_dir, overwrite=overwrite, max_shard_size=max_shard_size, preprocessing=settings,
        description=_DESCRIPTION + " Validation: training images held out per concept (same images for every "
        "subject); `label` lists the training concepts then the 200 unseen test concepts.",
        card_metadata={"pretty_name": "THINGS-EEG2 (preprocessed, brainvis-hf)", "license": "cc-by-4.0",
                       "license_name": None, "license_link": None,
                       "tags": ["eeg", "brain-computer-interface", "neuroscience", "eeg-to-image", "things-eeg2",
                                "zero-shot"]},
        citation=_CITATION, license_note=LICENSE_NOTE,
    )


# ----------------------------------------------------------------------------------------------
# Synthetic files of the real format
# ----------------------------------------------------------------------------------------------

CHANNEL_NAMES = ("Pz", "P3", "P7", "O1", "Oz", "O2", "P4", "P8", "P1", "P5", "PO7", "PO3", "POz", "PO4", "PO8", "P6", "P2")


@dataclass
class SyntheticThingsEEG2Files:
    """Where :func:`write_synthetic_things_eeg2` wrote what, and the concept embeddings it used."""

    output_dir: Path
    metadata_path: Path
    subjects: list[int]
    train_concepts: list[str]
    test_concepts: list[str]
    concept_embeddings: dict[str, np.ndarray]


def write_synthetic_things_eeg2(
    output_dir: str | os.PathLike,
    *,
    num_subjects: int = 2,
    num_train_concepts: int = 12,
    images_per_concept: int = 3,
    num_test_concepts: int = 8,
    train_repetitions: int = 4,
    test_repetitions: int = 8,
    num_channels: int = 17,
    num_samples: int = 100,
    embedding_dim: int = 8,
    concept_embeddings: dict[str, np.ndarray] | None = None,
    signal: bool = True,
    signal_strength: float = 1.0,
    seed: int = 0,
    overwrite: bool = False,
) -> SyntheticThingsEEG2Files:
    """Write a small THINGS-EEG2 preprocessed release of exactly the real structure.

    Every concept ``c`` has an embedding ``e_c`` (standard normal, ``embedding_dim`` wide, or
    taken from ``concept_embeddings`` keyed by concept words, e.g. CLIP text features); its
    evoked response is ``signal_strength * sum_j e_c[j] * B_j`` with fixed smooth
    channel x time patterns ``B_j``, so the EEG is a *linear function of the concept embedding*
    and a model that learns that map retrieves unseen test concepts (zero-shot). Each image adds
    a small image-specific response, each repetition unit-variance noise. ``signal=False``
    writes noise with the same structure (zero-shot at chance). Files are written with
    ``np.save`` of a dict, as in the release.
    """
    if min(num_subjects, num_train_concepts, images_per_concept, num_test_concepts, train_repetitions,
           test_repetitions, num_channels, num_samples, embedding_dim) < 1:
        raise ValueError("every count of write_synthetic_things_eeg2 must be >= 1")
    output_dir = Path(output_dir)
    metadata_path = output_dir / METADATA_FILE
    subject_dirs = [output_dir / f"sub-{s:02d}" for s in range(1, num_subjects + 1)]
    existing = [p for p in [metadata_path, *subject_dirs] if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{output_dir}: already holds {[p.name for p in existing]}; pass overwrite=True")
    output_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    n_concepts = num_train_concepts + num_test_concepts
    words = _synthetic_words(n_concepts)
    concepts = [f"{i + 1:05d}_{w.replace(' ', '_')}" for i, w in enumerate(words)]
    train_concepts, test_concepts = concepts[:num_train_concepts], concepts[num_train_concepts:]
    if concept_embeddings is not None:
        missing = [w for w in words if w not in concept_embeddings]
        if missing:
            raise ValueError(f"concept_embeddings lacks the concept(s) {missing[:5]} (keys are concept words)")
        emb = np.stack([np.asarray(concept_embeddings[w], dtype=np.float64) for w in words])
        emb = (emb - emb.mean(axis=0)) / (emb.std(axis=0) + 1e-8)
    else:
        emb = rng.standard_normal((n_concepts, embedding_dim))
    dim = emb.shape[1]

    t = np.arange(num_samples) / SAMPLING_RATE - 0.2
    times = t.copy()
    # smooth channel x time basis patterns, unit RMS
    basis = np.empty((dim, num_channels, num_samples))
    for j in range(dim):
        latency, width, freq = rng.uniform(0.05, 0.5), rng.uniform(0.04, 0.12), rng.uniform(2, 12)
        wave = np.cos(2 * np.pi * freq * (t - latency)) * np.exp(-0.5 * ((t - latency) / width) ** 2)
        spatial = rng.standard_normal(num_channels)
        basis[j] = np.outer(spatial, wave)
        basis[j] /= np.sqrt(np.mean(basis[j] ** 2))
    scale = signal_strength / np.sqrt(dim) if signal else 0.0
    concept_signal = scale * np.einsum("kd,dct->kct", emb, basis)

    train_files = [f"{c.split('_', 1)[1]}_{j + 1:02d}s.jpg" for c in train_concepts for j in range(images_per_concept)]
    train_img_concepts = [c for c in train_concepts for _ in range(images_per_concept)]
    test_files = [f"{c.split('_', 1)[1]}_01b.jpg" for c in test_concepts]
    image_jitter = {
        "training": 0.2 * scale * rng.standard_normal((len(train_files), num_channels, num_samples)),
        "test": 0.2 * scale * rng.standard_normal((len(test_files), num_channels, num_samples)),
    }
    evoked = {
        "training": concept_signal[np.repeat(np.arange(num_train_concepts), images_per_concept)] + image_jitter["training"],
        "test": concept_signal[num_train_concepts:] + image_jitter["test"],
    }
    for subject_dir in subject_dirs:
        gain = rng.uniform(0.8, 1.2, size=(num_channels, 1))
        subject_dir.mkdir(exist_ok=True)
        for part, reps, name in (("training", train_repetitions, TRAINING_FILE), ("test", test_repetitions, TEST_FILE)):
            base = evoked[part] * gain
            noise = rng.standard_normal((base.shape[0], reps, num_channels, num_samples))
            data = (base[:, None] + noise).astype(np.float32)
            _atomic_np_save({"preprocessed_eeg_data": data, "ch_names": list(_channel_names(num_channels)),
                             "times": times}, subject_dir / name)
    metadata = {
        "train_img_concepts": train_img_concepts,
        "train_img_files": train_files,
        "test_img_concepts": list(test_concepts),
        "test_img_files": test_files,
    }
    _atomic_np_save(metadata, metadata_path)
    return SyntheticThingsEEG2Files(
        output_dir, metadata_path, list(range(1, num_subjects + 1)), train_concepts, test_concepts,
        {w: emb[i] for i, w in enumerate(words)},
    )


_WORDS = (
    "aardvark", "accordion", "airplane", "alligator", "anchor", "apple", "armchair", "axe", "backpack", "bagel",
    "balloon", "banjo", "barrel", "basket", "bathtub", "beaver", "bee", "bell", "bicycle", "blender", "boat",
    "bottle", "bowl", "broom", "bucket", "butterfly", "cactus", "camel", "candle", "canoe", "carrot", "castle",
    "cello", "chair", "cheese", "cherry", "clock", "cloud", "coconut", "compass", "cookie", "crab", "crown",
    "cup", "dolphin", "donkey", "drum", "duck", "eagle", "elephant", "envelope", "feather", "fence", "flute",
    "fork", "fox", "frog", "giraffe", "glove", "goat", "guitar", "hammer", "harp", "helmet", "horse", "igloo",
    "kettle", "kite", "ladder", "lamp", "lemon", "lion", "lobster", "mango", "mitten", "monkey", "mushroom",
)


def _synthetic_words(n: int) -> list[str]:
    """Concept words: real THINGS-like words, then ``<word> <k>`` once they run out (all distinct)."""
    return [_WORDS[i % len(_WORDS)] + ("" if i < len(_WORDS) else f" {i // len(_WORDS) + 1}") for i in range(n)]


def _channel_names(n: int) -> list[str]:
    return [CHANNEL_NAMES[i] if i < len(CHANNEL_NAMES) else f"E{i + 1}" for i in range(n)]


def _atomic_np_save(obj: Any, path: Path) -> None:
    """``np.save(path, obj)`` (a pickled dict, as the release) via a temporary file and a rename."""
    buffer = io.BytesIO()
    np.save(buffer, obj, allow_pickle=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)

"""THINGS-EEG2 builder: files of the release's structure written here with plain ``np.save``
(independently of the synthetic writer), the restricted unpickler against planted payloads,
repetition averaging, the validation carve-out, and the synthetic writer."""

from __future__ import annotations

import io
import os
import pickle

import datasets
import numpy as np
import pytest

from brainvis_hf.data.things_eeg2 import (
    ThingsEEG2,
    carve_validation,
    concept_words,
    load_things_eeg2,
    safe_load_npy,
    write_synthetic_things_eeg2,
)

datasets.disable_progress_bars()

TRAIN_CONCEPTS = ["00001_aardvark", "00002_abacus", "00003_baseball_bat"]
TEST_CONCEPTS = ["00004_cat", "00005_dog"]
IMAGES = 4  # per training concept
REPS_TRAIN, REPS_TEST = 4, 6
C, T = 17, 100


def _eeg(subject, part, n_images, reps):
    # value encodes (subject, part, image, repetition, channel, time) so rows can be checked exactly
    i = np.arange(n_images)[:, None, None, None]
    r = np.arange(reps)[None, :, None, None]
    c = np.arange(C)[None, None, :, None]
    t = np.arange(T)[None, None, None, :]
    return (subject * 1000 + part * 500 + i * 10 + r + c * 0.01 + t * 1e-4).astype(np.float32)


def write_release(root, subjects=(1, 2)):
    train_concepts = [c for c in TRAIN_CONCEPTS for _ in range(IMAGES)]
    train_files = [f"{c.split('_', 1)[1]}_{k + 1:02d}s.jpg" for c in TRAIN_CONCEPTS for k in range(IMAGES)]
    np.save(root / "image_metadata.npy", {
        "train_img_concepts": np.array(train_concepts), "train_img_files": np.array(train_files),
        "test_img_concepts": np.array(TEST_CONCEPTS),
        "test_img_files": np.array([f"{c.split('_', 1)[1]}_01b.jpg" for c in TEST_CONCEPTS]),
    })
    for s in subjects:
        d = root / f"sub-{s:02d}"
        d.mkdir()
        times = np.linspace(-0.2, 0.79, T)
        names = [f"ch{k}" for k in range(C)]
        np.save(d / "preprocessed_eeg_training.npy",
                {"preprocessed_eeg_data": _eeg(s, 0, len(train_files), REPS_TRAIN), "ch_names": names, "times": times})
        np.save(d / "preprocessed_eeg_test.npy",
                {"preprocessed_eeg_data": _eeg(s, 1, len(TEST_CONCEPTS), REPS_TEST), "ch_names": names, "times": times})


@pytest.fixture
def release(tmp_path):
    root = tmp_path / "things"
    root.mkdir()
    write_release(root)
    return root


def test_counts_labels_and_values(release, tmp_path):
    ds = load_things_eeg2(release, cache_dir=tmp_path / "cache")
    names = ds["train"].features["label"].names
    assert names == TRAIN_CONCEPTS + TEST_CONCEPTS
    n_train_images = len(TRAIN_CONCEPTS) * IMAGES
    # 1 validation image per concept, every repetition a row (default), 2 subjects
    assert len(ds["validation"]) == 2 * len(TRAIN_CONCEPTS) * REPS_TRAIN
    assert len(ds["train"]) == 2 * (n_train_images - len(TRAIN_CONCEPTS)) * REPS_TRAIN
    assert len(ds["test"]) == 2 * len(TEST_CONCEPTS)  # test: mean of all 80 (here 6) repetitions
    for split in ("train", "validation"):
        labels = ds[split]["label"]
        assert set(labels) == {0, 1, 2}  # only training concepts
        assert sorted(ds[split]["subject"]) == sorted([1, 2] * (len(labels) // 2))
    assert set(ds["test"]["label"]) == {3, 4}  # only the unseen test concepts
    row = ds["test"].with_format("numpy")[0]
    assert row["eeg"].shape == (C, T) and row["eeg"].dtype == np.float32
    assert row["label_text"] == "cat" and row["image_name"] == "cat_01b"
    np.testing.assert_allclose(row["eeg"], _eeg(1, 1, 2, REPS_TEST)[0].mean(axis=0), rtol=1e-6)
    # each training image's rows: its repetitions, in order, for the right subject
    tr = ds["train"].with_format("numpy")
    first = tr[0]
    assert first["label_text"] == concept_words(TRAIN_CONCEPTS[first["label"]])
    i = (first["eeg_index"] % 100_000_000) // 1000
    r = first["eeg_index"] % 1000
    np.testing.assert_array_equal(first["eeg"], _eeg(first["subject"], 0, 12, REPS_TRAIN)[i, r])
    # counts per split, subject and concept: every training concept has IMAGES - 1 training images and
    # 1 validation image per subject, each with every repetition a row; every test concept 1 averaged row
    from collections import Counter

    expected = {
        "train": {(s, c): (IMAGES - 1) * REPS_TRAIN for s in (1, 2) for c in range(3)},
        "validation": {(s, c): REPS_TRAIN for s in (1, 2) for c in range(3)},
        "test": {(s, c): 1 for s in (1, 2) for c in (3, 4)},
    }
    for split, counts in expected.items():
        assert Counter(zip(ds[split]["subject"], ds[split]["label"])) == counts, split
        per_image = Counter(zip(ds[split]["subject"], ds[split]["image_name"]))
        assert set(per_image.values()) == {REPS_TRAIN if split != "test" else 1}, split
    # no image in two splits; eeg_index unique
    assert not set(ds["train"]["image_name"]) & set(ds["validation"]["image_name"])
    all_idx = [x for s in ds.values() for x in s["eeg_index"]]
    assert len(all_idx) == len(set(all_idx))


def test_baseball_bat_words():
    assert concept_words("00003_baseball_bat") == "baseball bat"


@pytest.mark.parametrize("k, train_rows_per_image, test_k, test_rows",
                         [(1, 4, 1, REPS_TEST), (2, 2, 3, 2), ("all", 1, 1, REPS_TEST), (4, 1, 6, 1), (3, 1, 4, 1)])
def test_repetition_averaging(release, tmp_path, k, train_rows_per_image, test_k, test_rows):
    ds = load_things_eeg2(release, subjects=[2], average_repetitions=k, test_average_repetitions=test_k,
                          cache_dir=tmp_path / "cache")
    assert len(ds["train"]) == len(TRAIN_CONCEPTS) * (IMAGES - 1) * train_rows_per_image
    assert len(ds["validation"]) == len(TRAIN_CONCEPTS) * train_rows_per_image
    assert len(ds["test"]) == len(TEST_CONCEPTS) * test_rows
    # every row is the mean of its own group g of k consecutive repetitions (a remainder is left out)
    for split, part, n_images, reps, kk in (("train", 0, 12, REPS_TRAIN, k), ("validation", 0, 12, REPS_TRAIN, k),
                                            ("test", 1, len(TEST_CONCEPTS), REPS_TEST, test_k)):
        kk = reps if kk == "all" else kk
        raw = _eeg(2, part, n_images, reps)
        for row in ds[split].with_format("numpy"):
            i, g = (row["eeg_index"] % 100_000_000) // 1000, row["eeg_index"] % 1000
            assert g < reps // kk
            np.testing.assert_allclose(row["eeg"], raw[i, g * kk : (g + 1) * kk].mean(axis=0), rtol=1e-6)


def test_bad_averaging_and_subjects(release, tmp_path):
    with pytest.raises(ValueError, match=r"cannot average 5 repetitions: the file has 4 per image"):
        load_things_eeg2(release, average_repetitions=5, cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match=r"average_repetitions=0: expected an int >= 1"):
        load_things_eeg2(release, average_repetitions=0, cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match=r"no sub-XX folder for subject\(s\) \[7\]; found \[1, 2\]"):
        load_things_eeg2(release, subjects=[7], cache_dir=tmp_path / "c")


def test_validation_carve_is_seeded_by_image():
    concepts = [c for c in "abc" for _ in range(10)]
    a, b = carve_validation(concepts, 2, 0), carve_validation(concepts, 2, 0)
    assert a == b and len(a) == 6
    assert sorted(concepts[i] for i in a) == ["a", "a", "b", "b", "c", "c"]
    assert carve_validation(concepts, 2, 1) != a
    with pytest.raises(ValueError, match="concept 'a' has only 10 training images"):
        carve_validation(concepts, 10, 0)


class _System:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __reduce__(self):
        import builtins

        return (builtins.eval, ("__import__('os').getcwd()",))


def _npy_with_payload(path, payload):
    """An object-dtype .npy whose pickle carries ``payload`` inside the saved dict."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": ()})
    body = pickle.dumps(np.array({"preprocessed_eeg_data": payload}, dtype=object), protocol=3)
    path.write_bytes(header.getvalue() + body)


@pytest.mark.parametrize("payload", ["system", "eval"])
def test_planted_payload_is_refused(release, tmp_path, payload):
    marker = tmp_path / "pwned"
    target = release / "sub-01" / "preprocessed_eeg_training.npy"
    _npy_with_payload(target, _System(marker) if payload == "system" else _Eval())
    # the payload really is live: plain np.load(allow_pickle=True) would run it
    if payload == "system":
        np.load(target, allow_pickle=True)
        assert marker.exists()
        marker.unlink()
    with pytest.raises(ValueError) as info:
        safe_load_npy(target)
    message = str(info.value)
    assert "\n" not in message and str(target) in message and "refusing to load" in message
    assert ("posix.system" in message or "os.system" in message) if payload == "system" else "builtins.eval" in message
    with pytest.raises(ValueError, match="refusing to load"):
        load_things_eeg2(release, cache_dir=tmp_path / "cache")
    assert not marker.exists()


def test_restricted_unpickler_reads_plain_values(tmp_path):
    value = {"a": np.arange(6, dtype=np.float64).reshape(2, 3), "names": ["x", "y"], "s": np.array(["u", "vw"]),
             "n": 3, "f": np.float32(1.5)}
    np.save(tmp_path / "ok.npy", value)
    got = safe_load_npy(tmp_path / "ok.npy")
    np.testing.assert_array_equal(got["a"], value["a"])
    assert got["names"] == ["x", "y"] and got["s"].tolist() == ["u", "vw"] and got["n"] == 3 and got["f"] == 1.5
    np.save(tmp_path / "plain.npy", np.ones((2, 2)))
    np.testing.assert_array_equal(safe_load_npy(tmp_path / "plain.npy"), np.ones((2, 2)))
    (tmp_path / "junk.npy").write_bytes(b"hello")
    with pytest.raises(ValueError, match=r"junk.npy: not a NumPy .npy file"):
        safe_load_npy(tmp_path / "junk.npy")


def test_synthetic_writer_format_and_signal(tmp_path):
    files = write_synthetic_things_eeg2(tmp_path / "s", num_subjects=2, num_train_concepts=5, images_per_concept=3,
                                        num_test_concepts=4, train_repetitions=4, test_repetitions=6)
    raw = np.load(tmp_path / "s" / "sub-01" / "preprocessed_eeg_training.npy", allow_pickle=True).item()
    assert set(raw) == {"preprocessed_eeg_data", "ch_names", "times"}
    assert raw["preprocessed_eeg_data"].shape == (15, 4, 17, 100) and len(raw["ch_names"]) == 17
    test = np.load(tmp_path / "s" / "sub-02" / "preprocessed_eeg_test.npy", allow_pickle=True).item()
    assert test["preprocessed_eeg_data"].shape == (4, 6, 17, 100)
    meta = np.load(files.metadata_path, allow_pickle=True).item()
    assert len(meta["train_img_files"]) == 15 and len(meta["test_img_concepts"]) == 4
    with pytest.raises(FileExistsError):
        write_synthetic_things_eeg2(tmp_path / "s")
    ds = load_things_eeg2(tmp_path / "s", cache_dir=tmp_path / "cache")
    assert ds["train"].features["eeg"].shape == (17, 100)
    # the concept signal is a linear function of the embedding: the test concepts' averaged EEG
    # is better predicted from their embeddings by the map fitted on *training* concepts than by chance
    x = np.stack(ds["train"].with_format("numpy")["eeg"]).reshape(len(ds["train"]), -1)
    emb = np.stack([files.concept_embeddings[t] for t in ds["train"]["label_text"]])
    w, *_ = np.linalg.lstsq(emb, x, rcond=None)
    test_x = np.stack(ds["test"].with_format("numpy")["eeg"]).reshape(len(ds["test"]), -1)
    test_words = sorted(set(ds["test"]["label_text"]))
    pred = np.stack([files.concept_embeddings[t] for t in test_words]) @ w
    sim = np.corrcoef(test_x, pred)[: len(test_x), len(test_x):]
    hits = [test_words[j] == t for j, t in zip(sim.argmax(axis=1), ds["test"]["label_text"])]
    assert np.mean(hits) >= 0.75  # chance 0.25


def test_builder_is_instantiable_directly(release, tmp_path):
    builder = ThingsEEG2(data_dir_eeg=release, cache_dir=str(tmp_path / "cache"), validation_images_per_concept=2)
    builder.download_and_prepare()
    ds = builder.as_dataset()
    assert len(ds["validation"]) == 2 * 2 * len(TRAIN_CONCEPTS) * REPS_TRAIN
    assert "Gifford" in builder.info.citation and "not Zhu et al. 2024" in builder.info.description


def test_prepared_folders_with_the_same_name_do_not_share_a_cache(tmp_path):
    """Regression: load_dataset(DIR) keyed its cache on the folder name and card, so a second
    'prepared' folder of identical sizes silently loaded the first one's values (found when a
    no-signal control retrieved concepts as well as the signal run)."""
    from brainvis_hf.data import load_prepared_dataset, prepare_dataset

    def build(value):
        features = datasets.Features({
            "eeg": datasets.Array2D((2, 3), "float32"), "label": datasets.ClassLabel(names=["a", "b"]),
            "label_text": datasets.Value("string"), "subject": datasets.Value("int32"),
            "image_name": datasets.Value("string"), "eeg_index": datasets.Value("int64"),
        })
        rows = {"eeg": [np.full((2, 3), value, np.float32)] * 2, "label": [0, 1], "label_text": ["a", "b"],
                "subject": [1, 1], "image_name": ["x", "y"], "eeg_index": [0, 1]}
        return datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=features)})

    cache = tmp_path / "hf-cache"
    first = prepare_dataset(build(1.0), tmp_path / "one" / "prepared")
    second = prepare_dataset(build(2.0), tmp_path / "two" / "prepared")
    assert load_prepared_dataset(first, cache_dir=cache)["train"][0]["eeg"][0][0] == 1.0
    loaded = load_prepared_dataset(second, cache_dir=cache)["train"]
    assert loaded[0]["eeg"][0][0] == 2.0
    assert loaded.features["label"].names == ["a", "b"]
    prepare_dataset(build(3.0), first, overwrite=True)  # rewritten in place: reloaded
    assert load_prepared_dataset(first, cache_dir=cache)["train"][0]["eeg"][0][0] == 3.0


def test_cli_prepares_a_synthetic_release_with_a_things_card(tmp_path, capsys):
    from brainvis_hf.cli import main
    from brainvis_hf.data import load_prepared_dataset

    raw, out = tmp_path / "raw", tmp_path / "prepared"
    assert main(["data", "prepare-things-eeg2", "--synthetic", "--data", str(raw), "--output", str(out),
                 "--average-repetitions", "2"]) == 0
    ds = load_prepared_dataset(out, cache_dir=tmp_path / "cache")
    assert ds["train"].features["eeg"].shape == (17, 100)
    assert len(ds["test"]) == 2 * 8 and len(ds["validation"]) == 2 * 12 * 2  # defaults: 2 subjects, 12 concepts
    card = (out / "README.md").read_text()
    assert "Gifford" in card and "CC-BY 4.0" in card and "not Zhu et al. 2024" in card
    assert "Spampinato" in card  # only to say it is *not* that data set
    assert "license: cc-by-4.0" in card and "| 0 | 00001_aardvark | aardvark |" in card
    assert (out / "splits.json").is_file()
    # a planted payload is refused with one line naming the file
    target = raw / "sub-02" / "preprocessed_eeg_test.npy"
    _npy_with_payload(target, _Eval())
    assert main(["data", "prepare-things-eeg2", "--data", str(raw), "--output", str(tmp_path / "p2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(target) in err[0] and "refusing to load" in err[0]

"""Protocols that cannot leak: split hashes written at preparation and recorded by every run,
once-only test evaluation, subject protocols (per-subject, leave-one-subject-out) and the
label-shuffled control, with the temporal-adjacency probe it runs where the data declare their
recording order.

Data: 4 classes x 2 subjects of 17 x 100 noise with a class-specific sinusoid near Nyquist
(47..50 Hz at 100 Hz), which the tiny frequency encoder learns in a few epochs. Its
``recording_order`` is a block design: each (subject, class) block holds that class's train,
validation and test recordings in random order, so recording order alone gives the labels away
(the EEG carries no drift, so the label-shuffled control still sits at chance).
"""

from __future__ import annotations

import json
import math

import datasets
import numpy as np
import pytest
import torch

from brainvis_hf.training.protocols import (
    binomial_p_above,
    shuffled_label_dataset,
    split_hashes,
    split_overlap,
    subject_folds,
    summarise_over_subjects,
)

datasets.disable_progress_bars()
QUIET = {"disable_tqdm": True, "report_to": []}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_data(num_classes=4, per_class=(24, 6, 6), subjects=(1, 2), seed=0, signal=True):
    rng = np.random.default_rng(seed)
    t = np.arange(100) / 100
    features = datasets.Features({
        "eeg": datasets.Array2D((17, 100), "float32"),
        "label": datasets.ClassLabel(names=[f"c{k}" for k in range(num_classes)]),
        "label_text": datasets.Value("string"), "subject": datasets.Value("int32"),
        "image_name": datasets.Value("string"), "eeg_index": datasets.Value("int64"),
        "recording_order": datasets.Value("int64"),
    })
    block = sum(per_class)  # one block per (subject, class): its recordings of every split, shuffled in time
    times = np.random.default_rng(seed + 1).permuted(np.tile(np.arange(block), (num_classes * len(subjects), 1)), axis=1)
    first = dict(zip(("train", "validation", "test"), np.cumsum((0,) + tuple(per_class))))
    out, index = {}, 0
    for split, n in zip(("train", "validation", "test"), per_class):
        rows = {k: [] for k in features}
        for s in subjects:
            for k in range(num_classes):
                for j in range(n):
                    x = rng.normal(size=(17, 100))
                    if signal:
                        x = x + 1.5 * np.sin(2 * np.pi * (47 + k) * t + rng.uniform(0, 2 * np.pi))
                    rows["eeg"].append((0.1 * x).astype(np.float32))
                    rows["label"].append(k)
                    rows["label_text"].append(f"c{k}")
                    rows["subject"].append(s)
                    rows["image_name"].append(f"img_{split}_{k}_{j}")
                    rows["eeg_index"].append(index)
                    b = subjects.index(s) * num_classes + k
                    rows["recording_order"].append(int(b * block + times[b, first[split] + j]))
                    index += 1
        out[split] = datasets.Dataset.from_dict(rows, features=features)
    return datasets.DatasetDict(out)


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def data_dir(data, tmp_path_factory):
    from brainvis_hf.data import prepare_dataset

    return prepare_dataset(data, tmp_path_factory.mktemp("protocols") / "prepared")


def test_split_hashes_ignore_order_and_see_moved_rows(data):
    base = split_hashes(data)
    assert set(base["splits"]) == {"train", "validation", "test"} and base["splits"]["test"]["num_rows"] == 48
    shuffled = datasets.DatasetDict({k: v.shuffle(seed=1) for k, v in data.items()})
    assert split_hashes(shuffled) == base
    moved = datasets.DatasetDict({
        "train": datasets.concatenate_datasets([data["train"], data["test"].select([0])]),
        "validation": data["validation"], "test": data["test"].select(range(1, 48)),
    })
    changed = split_hashes(moved)
    assert changed["sha256"] != base["sha256"]
    assert changed["splits"]["validation"] == base["splits"]["validation"]
    assert changed["splits"]["train"]["sha256"] != base["splits"]["train"]["sha256"]


def test_prepare_writes_the_manifest_and_a_changed_split_is_refused(data, data_dir, tmp_path):
    from brainvis_hf.data import load_prepared_dataset
    from brainvis_hf.training.protocols import split_record

    manifest = json.loads((data_dir / "splits.json").read_text())
    assert manifest["sha256"] == split_hashes(data)["sha256"]
    assert manifest["overlap"]["test/train"] == {"recordings": 0, "images": 0}
    record = split_record(data_dir, load_prepared_dataset(data_dir))
    assert record["sha256"] == manifest["sha256"] and record["manifest"] is True
    # a folder whose manifest says otherwise (rows edited after preparation) is refused, naming the split
    import shutil

    edited = tmp_path / "edited"
    shutil.copytree(data_dir, edited)
    manifest["splits"]["test"]["sha256"] = "0" * 64
    (edited / "splits.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"splits.json: split\(s\) \['test'\] no longer match the hashes"):
        split_record(edited, load_prepared_dataset(edited))


def test_a_recording_in_two_splits_is_refused(data):
    leaky = datasets.DatasetDict({"train": data["train"], "test": datasets.concatenate_datasets(
        [data["test"], data["train"].select([3])])})
    with pytest.raises(ValueError, match=r"1 recording\(s\) are in both split 'test' and split 'train'"):
        split_overlap(leaky)


def test_subject_folds(data):
    per_subject = subject_folds(data, "per-subject")
    assert list(per_subject) == ["sub-01", "sub-02"]
    for name, fold in per_subject.items():
        s = int(name[4:])
        assert all(set(fold[split]["subject"]) == {s} for split in fold)
        assert len(fold["train"]) == 96 and len(fold["test"]) == 24
    loso = subject_folds(data, "loso")
    fold = loso["sub-01"]
    assert set(fold["train"]["subject"]) == {2} and set(fold["validation"]["subject"]) == {2}
    assert set(fold["test"]["subject"]) == {1} and len(fold["test"]) == 24
    with pytest.raises(ValueError, match="Unknown subject protocol 'lolo'"):
        subject_folds(data, "lolo")


def test_summary_is_mean_and_sample_std():
    summary = summarise_over_subjects({"a": {"test": {"accuracy": 0.5, "runtime": 3.0}},
                                       "b": {"test": {"accuracy": 0.7}}})
    assert summary["test"]["accuracy"]["mean"] == pytest.approx(0.6)
    assert summary["test"]["accuracy"]["std"] == pytest.approx(math.sqrt(0.02))
    assert "runtime" not in summary["test"]


def test_shuffled_labels_keep_counts_and_test(data):
    shuffled = shuffled_label_dataset(data, seed=3)
    for split in ("train", "validation"):
        before, after = np.array(data[split]["label"]), np.array(shuffled[split]["label"])
        assert np.array_equal(np.bincount(before), np.bincount(after)) and (before != after).mean() > 0.5
        assert all(t == f"c{k}" for k, t in zip(after, shuffled[split]["label_text"]))
        assert shuffled[split]["eeg_index"] == data[split]["eeg_index"]
    assert shuffled["test"]["label"] == data["test"]["label"]


def test_binomial_tail_matches_the_sum():
    for k, n, p in ((3, 10, 0.25), (0, 5, 0.5), (10, 10, 0.1), (17, 40, 0.3)):
        exact = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))
        assert binomial_p_above(k, n, p) == pytest.approx(exact, rel=1e-9)


def test_runs_record_the_hash_and_evaluate_test_once(data_dir, tmp_path):
    from transformers import TrainerCallback

    from brainvis_hf.training import train_stage

    class Evaluations(TrainerCallback):
        def __init__(self):
            self.prefixes = []

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            self.prefixes.append(sorted({k.split("_")[0] for k in metrics if k.endswith("_loss")}))

    seen = Evaluations()
    result = train_stage("freq", data_dir, tmp_path / "run", preset="things-eeg2-tiny",
                         training_overrides={**QUIET, "num_train_epochs": 3}, callbacks=[seen])
    manifest = json.loads((data_dir / "splits.json").read_text())
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["data"]["splits"]["sha256"] == manifest["sha256"] == result.metrics["data"]["splits"]["sha256"]
    assert manifest["sha256"] in (tmp_path / "run" / "README.md").read_text()
    # selection: one validation evaluation per epoch; then validation and test once each, at the end
    assert seen.prefixes == [["eval"]] * 3 + [["validation"], ["test"]]

    paper = train_stage("freq", data_dir, tmp_path / "paper", preset="things-eeg2-tiny", protocol="paper",
                        training_overrides={**QUIET, "num_train_epochs": 1})
    assert paper.metrics["selection_split"] == "test"
    assert "best epoch selected on the **test** split" in (tmp_path / "paper" / "README.md").read_text()


@pytest.mark.slow
def test_label_shuffled_control_sits_at_chance_while_the_run_learns(data_dir, tmp_path, capsys):
    from brainvis_hf.cli import main

    code = main(["train", "freq", "--data", str(data_dir), "--output", str(tmp_path / "run"), "--preset",
                 "things-eeg2-tiny", "--num-train-epochs", "10", "--report-to", "none", "--controls"])
    assert code == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["evaluation"]["test"]["accuracy"] > 0.9  # chance 0.25
    control = metrics["controls"]["shuffled_labels"]
    assert control["above_chance"] is False and control["p_value"] >= 0.01
    assert control["chance"] == 0.25 and control["num_test"] == 48
    # the data declare their recording order (a block design): the probe runs and exposes it
    probe = metrics["controls"]["temporal_adjacency"]
    assert probe["ran"] is True and probe["order_column"] == "recording_order" and probe["num_queries"] == 48
    assert probe["accuracy"] > 0.9 and probe["above_chance"] is True
    assert json.loads((tmp_path / "run" / "controls.json").read_text())["temporal_adjacency"] == probe
    card = (tmp_path / "run" / "README.md").read_text()
    assert "## Controls" in card and "| temporal adjacency (`recording_order`, 2 neighbours, no EEG) |" in card
    assert "**The temporal-adjacency probe is above chance" in card
    out = capsys.readouterr().out
    assert "label-shuffled control" in out
    assert f"temporal-adjacency probe: test accuracy {probe['accuracy']:.4f}" in out
    assert "ABOVE CHANCE (the recording order gives the labels away)" in out


@pytest.mark.slow
def test_leave_one_subject_out_from_the_cli(data_dir, tmp_path):
    from brainvis_hf.cli import main

    code = main(["train", "freq", "--data", str(data_dir), "--output", str(tmp_path / "loso"), "--preset",
                 "things-eeg2-tiny", "--num-train-epochs", "4", "--report-to", "none", "--subject-protocol", "loso"])
    assert code == 0
    report = json.loads((tmp_path / "loso" / "subject_protocol.json").read_text())
    assert sorted(report["folds"]) == ["sub-01", "sub-02"]
    accs = [report["folds"][f]["test"]["accuracy"] for f in ("sub-01", "sub-02")]
    assert report["summary"]["test"]["accuracy"]["mean"] == pytest.approx(np.mean(accs))
    assert report["summary"]["test"]["accuracy"]["std"] == pytest.approx(np.std(accs, ddof=1))
    fold_metrics = json.loads((tmp_path / "loso" / "sub-01" / "metrics.json").read_text())
    assert fold_metrics["data"]["num_test"] == 24 and fold_metrics["data"]["splits"]["manifest"] is True
    assert "**mean +- std**" in (tmp_path / "loso" / "README.md").read_text()


def test_subject_protocol_refuses_flags_it_cannot_honour(data_dir, tmp_path, capsys):
    from brainvis_hf.cli import main

    assert main(["train", "freq", "--data", str(data_dir), "--output", str(tmp_path / "x"), "--subject-protocol",
                 "loso", "--controls"]) == 2
    assert "--subject-protocol cannot be combined with --controls" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_controls_refuse_non_classification_stages(data_dir, tmp_path):
    from brainvis_hf.training.protocols import run_controls

    with pytest.raises(ValueError, match=r"--controls applies to the classification stages .*not 'align'"):
        run_controls("align", data_dir, tmp_path)


def test_controls_card_says_when_the_probe_could_not_run():
    from brainvis_hf.training.protocols import controls_markdown

    shuffled = {"test_accuracy": 0.25, "chance": 0.25, "classes_matched": 1, "num_test_classes": 4,
                "p_value": 0.6, "above_chance": False}
    card = controls_markdown({"shuffled_labels": shuffled, "temporal_adjacency": {
        "ran": False, "order_column": "recording_order",
        "reason": "the data have no 'recording_order' column in train and test (no declared recording order)"}})
    assert "The control sits at chance, as it must." in card and "temporal adjacency (" not in card
    assert "The temporal-adjacency probe did not run: the data have no 'recording_order' column" in card
    probe = {"ran": True, "order_column": "recording_order", "num_neighbours": 2, "accuracy": 0.27, "chance": 0.25,
             "p_value": 0.4, "above_chance": False}
    card = controls_markdown({"shuffled_labels": shuffled, "temporal_adjacency": probe})
    assert "| temporal adjacency (`recording_order`, 2 neighbours, no EEG) | 0.2700 | 0.2500 | - | 0.4 |" in card
    assert "The temporal-adjacency probe sits at chance" in card


def test_the_probe_sees_the_block_design_of_the_protocol_data(data):
    """What run_controls reports on these data (its training-free part); the slow --controls test checks the wiring."""
    from brainvis_hf.evaluation import temporal_adjacency_probe

    probe = temporal_adjacency_probe(data)
    assert probe["accuracy"] > 0.9 and probe["above_chance"] is True and probe["chance"] == 0.25
    without = datasets.DatasetDict({k: v.remove_columns("recording_order") for k, v in data.items()})
    with pytest.raises(ValueError, match="split 'test' has no column 'recording_order' to order recordings by"):
        temporal_adjacency_probe(without)


def test_split_hash_names_have_one_home_in_data_splits():
    """data/prepare.py writes splits.json, so the hashes live in data/ (data never imports training);
    the old import paths give the same objects."""
    import brainvis_hf.training
    from brainvis_hf.data import splits
    from brainvis_hf.training import protocols

    for name in ("split_hashes", "write_split_manifest", "read_split_manifest", "split_record", "split_overlap", "SPLITS_MANIFEST"):
        assert getattr(protocols, name) is getattr(splits, name)
    assert brainvis_hf.training.split_hashes is splits.split_hashes
    assert brainvis_hf.training.split_record is splits.split_record

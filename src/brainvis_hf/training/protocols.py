"""Evaluation protocols that cannot leak: split hashes, subject protocols, label-shuffled controls.

See ``docs/protocols.md`` for the reasons (block-design confounds, Li et al. 2020) and the
citations.

* **Split hashes** (home: ``brainvis_hf.data.splits``, re-exported here). :func:`split_hashes` is a SHA-256 of each split's row identities (sorted
  ``(eeg_index, subject, image_name, label)``); ``brainvis data prepare`` writes them to
  ``DIR/splits.json`` (:func:`write_split_manifest`) and every training run records them in its
  ``metrics.json`` (:func:`split_record`), refusing data whose splits no longer match the
  manifest. Two runs with the same hash trained and were tested on exactly the same rows.
* **Leakage checks.** :func:`split_overlap` counts recordings and images shared between splits;
  a recording in two splits is an error, shared images are reported.
* **Subject protocols.** :func:`subject_folds` builds the per-subject folds (train, select and
  test within one subject) or the leave-one-subject-out folds (train and select on the other
  subjects, test on the held-out one); :func:`run_subject_protocol` trains a stage on every
  fold and reports the mean and standard deviation over subjects.
* **Temporal-adjacency probe** (home: ``brainvis_hf.evaluation.controls``, re-exported here).
  :func:`temporal_adjacency_probe` classifies test recordings from their neighbours in
  recording order alone; far above chance means a block design. :func:`run_controls` runs it
  whenever the data declare their recording order (a ``recording_order`` column).
* **Label-shuffled control.** :func:`shuffled_label_dataset` permutes the labels of the train
  and validation splits (test untouched); :func:`run_controls` trains the same stage on it.
  Its test accuracy must sit at chance; a control above chance means the inputs carry the
  labels through something other than the stimulus (e.g. recording order).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import datasets
import numpy as np
import torch

from ..data.prepare import load_prepared_dataset, prepare_dataset
from ..data.splits import (  # noqa: F401  (re-exported: their home is data/splits.py)
    SPLITS_MANIFEST,
    read_split_manifest,
    split_hashes,
    split_overlap,
    split_record,
    write_split_manifest,
)
from ..evaluation.controls import (  # noqa: F401  (re-exported: their home is evaluation/controls.py)
    RECORDING_ORDER_COLUMN,
    binomial_p_above,
    chance_level,
    temporal_adjacency_probe,
)
from .run import train_stage
from .stages import get_stage

SUBJECT_PROTOCOLS = ("per-subject", "loso")


# ----------------------------------------------------------------------------------------------
# Subject protocols
# ----------------------------------------------------------------------------------------------


def subject_folds(dataset_dict, protocol: str) -> dict[str, Any]:
    """``{"sub-XX": DatasetDict}`` of a subject protocol.

    ``per-subject``: each split restricted to subject XX. ``loso`` (leave one subject out):
    ``train`` and ``validation`` from every other subject, ``test`` = all of subject XX's
    recordings of the test split. Subjects come from the ``subject`` column.
    """

    if protocol not in SUBJECT_PROTOCOLS:
        raise ValueError(f"Unknown subject protocol {protocol!r}; expected one of {', '.join(SUBJECT_PROTOCOLS)}")
    subjects = sorted({int(s) for split in dataset_dict.values() for s in split["subject"]})
    if protocol == "loso" and len(subjects) < 2:
        raise ValueError(f"leave-one-subject-out needs at least 2 subjects; the data have {subjects}")
    folds = {}
    for s in subjects:
        fold = {}
        for name, split in dataset_dict.items():
            subject_column = np.asarray(split["subject"])
            if protocol == "per-subject" or name == "test":
                keep = np.flatnonzero(subject_column == s)
            else:
                keep = np.flatnonzero(subject_column != s)
            fold[name] = split.select(keep.tolist())
        if any(len(d) == 0 for n, d in fold.items() if n in ("train", "validation", "test")):
            empty = [n for n, d in fold.items() if len(d) == 0]
            raise ValueError(f"subject {s}: split(s) {empty} are empty under protocol {protocol!r}")
        folds[f"sub-{s:02d}"] = datasets.DatasetDict(fold)
    return folds


def _copy_side_files(data_dir: Path, fold_dir: Path) -> None:
    """CLIP targets are per image: the fold shares them (symlink, or a copy where links fail)."""
    source = data_dir / "clip_targets"
    if source.is_dir():
        target = fold_dir / "clip_targets"
        try:
            target.symlink_to(source.resolve(), target_is_directory=True)
        except OSError:
            shutil.copytree(source, target)


def summarise_over_subjects(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation (ddof=1; 0 for one subject) over folds of every numeric final metric."""
    values: dict[str, dict[str, list[float]]] = {}
    for fold in results.values():
        for split, metrics in fold.items():
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and not key.endswith(
                        ("runtime", "per_second", "epoch")):
                    values.setdefault(split, {}).setdefault(key, []).append(float(value))
    summary: dict[str, Any] = {}
    for split, metrics in values.items():
        summary[split] = {
            key: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}
            for key, v in metrics.items()
        }
    return summary


def run_subject_protocol(
    stage: str,
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    subject_protocol: str,
    *,
    init: Sequence[str | os.PathLike] = (),
    **train_kwargs: Any,
) -> dict[str, Any]:
    """Train ``stage`` on every fold of a subject protocol; write ``subject_protocol.json`` and a card.

    Each fold's data are written as a prepared folder ``output_dir/folds/sub-XX/data`` (sharing
    the CLIP targets) and its run goes to ``output_dir/sub-XX``. ``init`` folders may contain
    ``{fold}``, replaced by the fold name, to chain stages fold by fold (e.g.
    ``--init runs/time/{fold}``).

    Returns:
        ``{"protocol", "stage", "folds": {fold: final evaluation}, "summary": mean/std per metric}``.
        ``train_kwargs`` go to :func:`~.run.train_stage` (including its own ``protocol``:
        selection on validation, or the paper's on test).
    """
    if get_stage(stage).runner is not None:
        raise ValueError(f"--subject-protocol applies to the EEG stages, not {stage!r}")
    data_dir, output_dir = Path(data_dir), Path(output_dir)
    dataset_dict = load_prepared_dataset(data_dir)
    folds = subject_folds(dataset_dict, subject_protocol)
    results: dict[str, Any] = {}
    for name, fold in folds.items():
        fold_data = output_dir / "folds" / name / "data"
        prepare_dataset(fold, fold_data, overwrite=True,
                        description=f"Fold {name} of protocol {subject_protocol!r} of {data_dir}.")
        write_split_manifest(fold_data, fold)
        _copy_side_files(data_dir, fold_data)
        fold_init = [str(p).replace("{fold}", name) for p in init]
        result = train_stage(stage, fold_data, output_dir / name, init=fold_init, **train_kwargs)
        results[name] = result.metrics["evaluation"]
    report = {"protocol": subject_protocol, "stage": stage, "data": str(data_dir), "folds": results,
              "summary": summarise_over_subjects(results)}
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "subject_protocol.json").write_text(json.dumps(_finite(report), indent=2, allow_nan=False))
    (output_dir / "README.md").write_text(subject_protocol_markdown(report))
    return report


def subject_protocol_markdown(report: Mapping[str, Any]) -> str:
    """A card for a subject-protocol run: the per-subject and mean +- std figures of the test split."""
    title = {"loso": "leave-one-subject-out", "per-subject": "per-subject"}.get(report["protocol"], report["protocol"])
    lines = [f"# BrainVis `{report['stage']}`: {title} protocol", "",
             f"Data: `{report['data']}`. One run per subject; figures are on each fold's test split "
             "(selection on its validation split).", ""]
    summary = report["summary"].get("test", {})
    keys = [k for k in ("accuracy", "top3_accuracy", "macro_f1", "cosine", "loss") if k in summary]
    if keys:
        lines += ["| fold | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for fold, evaluation in report["folds"].items():
            test = evaluation.get("test", {})
            lines.append(f"| {fold} | " + " | ".join(f"{test.get(k, float('nan')):.4f}" for k in keys) + " |")
        lines.append("| **mean +- std** | " + " | ".join(
            f"**{summary[k]['mean']:.4f} +- {summary[k]['std']:.4f}**" for k in keys) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Label-shuffled control
# ----------------------------------------------------------------------------------------------


def shuffled_label_dataset(dataset_dict, *, seed: int = 0, splits: Sequence[str] = ("train", "validation")):
    """A copy whose ``label`` (and ``label_text``) are permuted within each of ``splits``.

    The permutation keeps every class's count, so a model can only learn the class priors;
    ``test`` keeps its true labels, so the control's test accuracy measures what the model
    learnt about the stimulus: it must be at chance.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name, split in dataset_dict.items():
        if name not in splits:
            out[name] = split
            continue
        order = rng.permutation(len(split))
        labels = np.asarray(split["label"])[order]
        replaced = split.remove_columns(["label"]).add_column("label", labels.tolist(), feature=split.features["label"])
        if "label_text" in split.column_names:
            texts = np.asarray(split["label_text"], dtype=object)[order]
            replaced = replaced.remove_columns(["label_text"]).add_column(
                "label_text", texts.tolist(), feature=split.features["label_text"])
        out[name] = replaced.select_columns(split.column_names)
    return datasets.DatasetDict(out)


def run_controls(
    stage: str,
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    seed: int = 0,
    alpha: float = 0.01,
    order_column: str = RECORDING_ORDER_COLUMN,
    **train_kwargs: Any,
) -> dict[str, Any]:
    """Train ``stage`` on label-shuffled data and test it on the true test labels; where the data
    carry their recording order, also run the temporal-adjacency probe.

    Writes ``output_dir/controls/shuffled_labels/`` (data and run) and ``output_dir/controls.json``;
    when ``output_dir/metrics.json`` exists (the main run), adds ``"controls"`` to it and appends
    a "Controls" section to its ``README.md``.

    With ``init`` (pretrained folders) the control starts from them; folders trained on the
    true labels of this train split (time-finetune -> timefreq) can lift the control above chance
    through their features, so for a strict control run the whole chain on the shuffled data
    (kept in ``output_dir/controls/shuffled_labels/data``).

    When ``train`` and ``test`` have an ``order_column`` (default ``recording_order``: the data
    set's declared recording order), :func:`~brainvis_hf.evaluation.temporal_adjacency_probe`
    classifies the test recordings from their training neighbours in that order, per subject.

    Returns:
        ``{"shuffled_labels": {"test_accuracy", "chance", "num_test", "p_value", "above_chance", ...},
        "temporal_adjacency": probe result, or {"ran": False, "reason": ...}}``. For the shuffled
        labels ``above_chance`` is ``p_value < alpha``, where ``p_value`` is the larger of two
        one-sided exact binomial tests: test hits against the majority-class rate, and classes
        whose majority prediction is their own label against ``1 / num_labels``. For the probe it
        is its own binomial test at ``alpha``. Either flags a confound.
    """
    if get_stage(stage).kind != "classification":
        raise ValueError(f"--controls applies to the classification stages (time-finetune, freq, timefreq), not {stage!r}")
    data_dir, output_dir = Path(data_dir), Path(output_dir)
    dataset_dict = load_prepared_dataset(data_dir)
    if "test" not in dataset_dict:
        raise ValueError(f"The data in {data_dir} have no test split; the shuffled-label control is evaluated on it")
    control_root = output_dir / "controls" / "shuffled_labels"
    shuffled = shuffled_label_dataset(dataset_dict, seed=seed)
    control_data = prepare_dataset(shuffled, control_root / "data", overwrite=True,
                                   description=f"Label-shuffled control of {data_dir} (train and validation labels permuted).")
    write_split_manifest(control_data, shuffled)
    _copy_side_files(data_dir, control_data)
    result = train_stage(stage, control_data, control_root / "run", seed=seed, **train_kwargs)
    test = dataset_dict["test"]
    labels = np.asarray(test["label"])
    predictions = _predict_classes(result.model, test)
    accuracy = float(np.mean(predictions == labels))
    n = len(labels)
    chance = chance_level(dataset_dict)
    sample_p = binomial_p_above(int(np.sum(predictions == labels)), n, chance)
    # A control that separates the stimuli well maps each stimulus class to one (shuffled) label:
    # its test hits come class by class, not sample by sample, so the sample-level binomial test
    # alone is anti-conservative. The class-level test counts the classes whose majority
    # prediction is their own label, against Binomial(K, 1/K) (a random class -> label mapping).
    classes = np.unique(labels)
    num_labels = int(dataset_dict["train"].features["label"].num_classes)
    matched = sum(int(np.bincount(predictions[labels == c], minlength=num_labels).argmax() == c) for c in classes)
    class_p = binomial_p_above(matched, len(classes), 1.0 / num_labels)
    p_value = max(sample_p, class_p)
    controls = {"shuffled_labels": {"test_accuracy": accuracy, "chance": chance, "num_test": n,
                                    "classes_matched": matched, "num_test_classes": int(len(classes)),
                                    "p_value_samples": sample_p, "p_value_classes": class_p, "p_value": p_value,
                                    "alpha": alpha, "above_chance": bool(p_value < alpha), "seed": seed,
                                    "run": str(control_root / "run")}}
    if all(order_column in dataset_dict[name].column_names for name in ("train", "test")):
        controls["temporal_adjacency"] = {"ran": True, **temporal_adjacency_probe(
            dataset_dict, order_column=order_column, alpha=alpha)}
    else:
        controls["temporal_adjacency"] = {
            "ran": False, "order_column": order_column,
            "reason": f"the data have no {order_column!r} column in train and test (no declared recording order)"}
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "controls.json").write_text(json.dumps(_finite(controls), indent=2, allow_nan=False))
    metrics_path = output_dir / "metrics.json"
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        metrics["controls"] = controls
        metrics_path.write_text(json.dumps(_finite(metrics), indent=2, allow_nan=False))
        card = output_dir / "README.md"
        if card.is_file():
            card.write_text(card.read_text().rstrip("\n") + "\n\n" + controls_markdown(controls))
    return controls


def _predict_classes(model, dataset, batch_size: int = 256) -> np.ndarray:
    """Argmax class of a classification model on every row of ``dataset`` (eval mode, no grad)."""
    model = getattr(model, "module", model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    eeg = dataset.with_format("numpy", columns=["eeg"])
    out = []
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            batch = torch.from_numpy(np.asarray(eeg[start : start + batch_size]["eeg"], dtype=np.float32)).to(device)
            out.append(model(eeg_values=batch).logits.float().argmax(dim=-1).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out)


def controls_markdown(controls: Mapping[str, Any]) -> str:
    """The card section of the controls."""
    c = controls["shuffled_labels"]
    verdict = (
        "**The control is above chance: the recordings carry the labels through something other than the "
        "stimulus (for example recording order in a block design; see docs/protocols.md). Do not trust the "
        "accuracy above.**"
        if c["above_chance"] else "The control sits at chance, as it must."
    )
    rows = (
        "| control | test accuracy | chance (majority class) | classes matched | one-sided p |\n|---|---|---|---|---|\n"
        f"| label-shuffled training | {c['test_accuracy']:.4f} | {c['chance']:.4f} | "
        f"{c['classes_matched']} of {c['num_test_classes']} | {c['p_value']:.3g} |\n"
    )
    probe = controls.get("temporal_adjacency") or {}
    if probe.get("ran"):
        rows += (f"| temporal adjacency (`{probe['order_column']}`, {probe['num_neighbours']} neighbours, no EEG) | "
                 f"{probe['accuracy']:.4f} | {probe['chance']:.4f} | - | {probe['p_value']:.3g} |\n")
        probe_verdict = (
            "**The temporal-adjacency probe is above chance: neighbours in recording order predict the test labels "
            "without any EEG, so the split design lets temporal proximity stand in for the stimulus (block design; "
            "see docs/protocols.md).**"
            if probe["above_chance"] else "The temporal-adjacency probe sits at chance: recording order does not give "
            "the test labels away."
        )
    else:
        probe_verdict = (f"The temporal-adjacency probe did not run: {probe.get('reason', 'no recording order')}."
                         if probe else "")
    return "## Controls\n\n" + rows + "\n" + verdict + "\n" + (f"\n{probe_verdict}\n" if probe_verdict else "")


def _finite(value: Any) -> Any:
    """NaN/Inf -> None, so the JSON is strict."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

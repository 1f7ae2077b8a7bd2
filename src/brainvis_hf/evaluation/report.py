"""``evaluate_generated``: all metrics of a ``brainvis generate`` output folder, written as
``metrics.json``, ``metrics.md`` and PNG plots (the library function behind
``brainvis evaluate``).

Folder format (docs/architecture.md): ``manifest.json`` with ``eegs`` (one entry per EEG:
``eeg_id``, ``true_label``, ``ground_truth``, ``predicted_label``, ``probs``) and ``images``
(one entry per generated image: ``eeg_id``, ``sample``, ``file``), image paths relative to the
folder.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..generation_manifest import MANIFEST_NAME, check_manifest_paths
from ..plots import plot_confusion_matrix, plot_message, plot_per_class_ga
from .classification_metrics import eeg_classification_metrics
from .features import (
    FeatureExtractorUnavailableError,
    _open_rgb,
    TransformersImageFeatureExtractor,
    extract_features,
    load_inception_feature_extractor,
)
from .generation_metrics import frechet_distance, inception_score, n_way_top_k_hit_rates
from .image_classifier import DEFAULT_IMAGE_CLASSIFIER, classify_images, load_image_classifier
from .structural_similarity import ssim


@dataclass
class GeneratedFolder:
    """A validated ``brainvis generate`` output folder."""

    root: Path
    manifest: dict[str, Any]
    eegs: list[dict[str, Any]]  # manifest order
    image_files: list[Path]  # generated images, manifest order
    image_eeg_index: np.ndarray  # index into `eegs` of each generated image
    ground_truth_files: list[Path]  # one per EEG
    class_names: list[str]


def _fail(root: Path, message: str) -> ValueError:
    return ValueError(f"{root / MANIFEST_NAME}: {message}")


def read_generated_folder(generated_dir: str | Path) -> GeneratedFolder:
    """Read and check a ``brainvis generate`` output folder: the manifest's structure, that every
    listed file exists, that every EEG has ``num_images_per_eeg`` images and a ground truth,
    and that ``images/`` holds no image missing from the manifest."""
    root = Path(generated_dir)
    manifest_path = root / MANIFEST_NAME
    if not root.is_dir():
        raise FileNotFoundError(f"generated folder not found: {root}")
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} not found: is {root} the output folder of `brainvis generate`?")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{manifest_path} is not valid JSON: {err}") from err
    if not isinstance(manifest, dict):
        raise _fail(root, f"expected a JSON object at the top level; got {type(manifest).__name__}")
    check_manifest_paths(manifest, root, manifest_path)  # no file outside the folder is read
    for key in ("eegs", "images"):
        if not isinstance(manifest.get(key), list) or not manifest[key]:
            raise _fail(root, f"expected a non-empty list under {key!r}; got {manifest.get(key)!r:.80}")
    eegs = manifest["eegs"]
    index_of: dict[str, int] = {}
    for i, entry in enumerate(eegs):
        if not isinstance(entry, dict) or "eeg_id" not in entry:
            raise _fail(root, f"eegs[{i}] must be an object with an 'eeg_id'; got {entry!r:.80}")
        eeg_id = str(entry["eeg_id"])
        if eeg_id in index_of:
            raise _fail(root, f"eeg_id {eeg_id!r} is listed twice in 'eegs'")
        index_of[eeg_id] = i

    image_files, image_eeg_index = [], []
    seen_files = set()
    for i, entry in enumerate(manifest["images"]):
        if not isinstance(entry, dict) or "eeg_id" not in entry or "file" not in entry:
            raise _fail(root, f"images[{i}] must be an object with 'eeg_id' and 'file'; got {entry!r:.80}")
        eeg_id = str(entry["eeg_id"])
        if eeg_id not in index_of:
            raise _fail(root, f"images[{i}] ({entry['file']}) refers to eeg_id {eeg_id!r}, which is not in 'eegs'")
        path = root / entry["file"]
        if not path.is_file():
            raise FileNotFoundError(f"generated image {path} listed in {manifest_path} (images[{i}]) does not exist")
        if path.resolve() in seen_files:
            raise _fail(root, f"image file {entry['file']} is listed twice in 'images'")
        seen_files.add(path.resolve())
        image_files.append(path)
        image_eeg_index.append(index_of[eeg_id])
    image_eeg_index_array = np.asarray(image_eeg_index, dtype=np.int64)

    images_dir = root / "images"
    if images_dir.is_dir():
        unlisted = sorted(p.name for p in images_dir.iterdir() if p.suffix.lower() == ".png" and p.resolve() not in seen_files)
        if unlisted:
            raise _fail(root, f"{len(unlisted)} image(s) in {images_dir} are not listed in the manifest: {unlisted[:5]}")

    counts = np.bincount(image_eeg_index_array, minlength=len(eegs))
    expected = manifest.get("num_images_per_eeg")
    if expected is not None:
        wrong = [(str(eegs[i]["eeg_id"]), int(c)) for i, c in enumerate(counts) if c != expected]
        if wrong:
            raise _fail(root, f"num_images_per_eeg is {expected} but these EEGs have a different number of images (eeg_id, count): {wrong[:5]}")
    elif len(set(counts.tolist())) > 1:
        raise _fail(root, f"EEGs have different numbers of generated images ({sorted(set(counts.tolist()))}); expected the same for all")

    ground_truth_files = []
    for i, entry in enumerate(eegs):
        if counts[i] == 0:
            raise _fail(root, f"eeg_id {entry['eeg_id']!r} has no generated image in 'images'")
        if not entry.get("ground_truth"):
            raise _fail(
                root,
                f"eeg_id {entry['eeg_id']!r} has no ground truth ('ground_truth' is {entry.get('ground_truth')!r}); "
                "the generation metrics need the ground-truth image of every EEG",
            )
        path = root / entry["ground_truth"]
        if not path.is_file():
            raise FileNotFoundError(f"ground-truth image {path} of eeg_id {entry['eeg_id']!r} (listed in {manifest_path}) does not exist")
        ground_truth_files.append(path)

    class_names = manifest.get("class_names") or []
    return GeneratedFolder(root, manifest, eegs, image_files, image_eeg_index_array, ground_truth_files, list(class_names))


def _class_groups(folder: GeneratedFolder) -> dict[str, np.ndarray]:
    """EEG class name -> indices of its generated images, in class-id order; EEGs without a true
    label are grouped under ``"unknown"`` (last)."""
    groups: dict[int, list[int]] = {}
    for image_index, eeg_index in enumerate(folder.image_eeg_index):
        label = folder.eegs[eeg_index].get("true_label")
        groups.setdefault(-1 if label is None else int(label), []).append(image_index)
    result = {}
    for label in sorted(groups, key=lambda value: (value < 0, value)):
        if label < 0:
            name = "unknown"
        elif label < len(folder.class_names):
            name = str(folder.class_names[label])
        else:
            name = str(label)
        result[name] = np.asarray(groups[label], dtype=np.int64)
    return result


def per_class_generation_accuracy(
    probs: np.ndarray, target: np.ndarray, groups: dict[str, np.ndarray], hit_rates, rates: np.ndarray
) -> dict[str, dict[str, float]]:
    """Per EEG class: its GA, its false-alarm rate and the difference.

    ``ga`` is the mean per-image GA of the class's images. ``false_alarm`` is the same score
    for the *other* classes' images, scored as if the class's target were theirs: how often the
    classifier names this class whatever the image shows. A classifier that files every noise
    image under one class gives that class GA 1 and false alarm 1, so ``above_false_alarm``
    (``ga - false_alarm``, the hit minus false-alarm rate of signal detection) is ~0 for noise
    and ~GA for images that show their class. ``hit_rates(probs, target)`` is the GA protocol.
    """
    result = {}
    for name, members in groups.items():
        others = np.setdiff1d(np.arange(len(target)), members)
        false_alarm = float("nan")
        if others.size:
            targets = np.unique(target[members])
            false_alarm = float(np.mean([hit_rates(probs[others], np.full(others.size, t)).mean() for t in targets]))
        ga = float(np.mean(rates[members]))
        result[name] = {"ga": ga, "false_alarm": false_alarm, "above_false_alarm": ga - false_alarm}
    return result


def _eeg_metrics(folder: GeneratedFolder) -> dict[str, Any]:
    rows = [e for e in folder.eegs if e.get("true_label") is not None and e.get("probs") is not None]
    if not rows:
        return {"computed": False, "reason": "no EEG in the manifest has both 'true_label' and 'probs'"}
    lengths = {len(e["probs"]) for e in rows}
    if len(lengths) > 1:
        raise _fail(folder.root, f"the 'probs' lists of the EEGs have different lengths: {sorted(lengths)}")
    result = eeg_classification_metrics(np.asarray([e["probs"] for e in rows], dtype=np.float64), np.asarray([int(e["true_label"]) for e in rows]))
    result["confusion_matrix"] = result["confusion_matrix"].tolist()
    result["computed"] = True
    return result


def _resolve_feature_extractor(feature_extractor: Any) -> tuple[Any, str, str | None]:
    """-> (module or None, description, reason when None)."""
    if feature_extractor is None or feature_extractor == "inception":
        try:
            return load_inception_feature_extractor(), "inception-v3 (FID standard)", None
        except FeatureExtractorUnavailableError as err:
            if feature_extractor == "inception":
                raise
            return None, "inception-v3 (FID standard)", str(err)
    if feature_extractor == "none":
        return None, "none", "disabled (feature_extractor='none')"
    if isinstance(feature_extractor, str):
        return TransformersImageFeatureExtractor.from_pretrained(feature_extractor), feature_extractor, None
    return feature_extractor, type(feature_extractor).__name__, None


def _fmt(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value * scale:.{digits}f}"


def metrics_markdown(metrics: dict[str, Any]) -> str:
    """The papers' results table (EEG top-1, GA N-way top-k, IS, FID, SSIM) as Markdown."""
    ga = metrics["generation_accuracy"]
    eeg = metrics["eeg_classification"]
    fid_entry = metrics["fid"]
    header = f"| Model | EEG top-1 (%) ↑ | GA {ga['n_way']}-way top-{ga['top_k']} (%) ↑ | IS ↑ | FID ↓ | SSIM ↑ |"
    row = (
        f"| {metrics.get('model') or 'brainvis'} | {_fmt(eeg.get('top1_accuracy'), 100)} | {_fmt(ga['value'], 100)} | "
        f"{_fmt(metrics['inception_score']['mean'])} ± {_fmt(metrics['inception_score']['std'])} | "
        f"{_fmt(fid_entry['value'])} | {_fmt(metrics['ssim']['mean'], 1, 3)} |"
    )
    lines = [header, "|---|---|---|---|---|---|", row, ""]
    mode = "exact expected value" if ga["exact"] else f"{ga['num_trials']} trials per image, seed {ga['seed']}"
    lines.append(f"- GA: {metrics['num_generated_images']} generated images, {mode}, classifier `{metrics['classifier']}`.")
    lines.append(f"- IS: {metrics['inception_score']['splits']} split(s), probabilities of the same classifier.")
    if fid_entry["computed"]:
        lines.append(f"- FID: features `{fid_entry['feature_extractor']}`, generated vs ground-truth images.")
    else:
        lines.append(f"- FID: not computed ({fid_entry['reason']}).")
    lines.append(f"- SSIM: generated vs its ground truth, ground truth resized to {metrics['ssim']['size'][0]} x {metrics['ssim']['size'][1]} (bicubic).")
    if eeg.get("computed"):
        lines.append(
            f"- EEG classification on {eeg['num_samples']} EEGs: top-3 {_fmt(eeg['top3_accuracy'], 100)}%, "
            f"top-5 {_fmt(eeg['top5_accuracy'], 100)}%, macro-F1 {_fmt(eeg['macro_f1'], 1, 3)}."
        )
    else:
        lines.append(f"- EEG classification: not computed ({eeg['reason']}).")
    return "\n".join(lines) + "\n"


def _plot_confusion(eeg: dict[str, Any], class_names: list[str], path: Path) -> None:
    if not eeg.get("computed"):
        plot_message(f"EEG confusion matrix not computed:\n{eeg['reason']}", path)
        return
    matrix = np.asarray(eeg["confusion_matrix"])
    names = class_names if len(class_names) == matrix.shape[0] else None
    title = f"EEG classification (top-1 {eeg['top1_accuracy'] * 100:.1f}%, n = {eeg['num_samples']})"
    plot_confusion_matrix(matrix, path, class_names=names, title=title)


def evaluate_generated(
    generated_dir: str | Path,
    classifier: Any = DEFAULT_IMAGE_CLASSIFIER,
    feature_extractor: Any = None,
    *,
    n_way: int = 50,
    top_k: int = 1,
    num_trials: int = 50,
    seed: int | None = 0,
    exact: bool = False,
    inception_splits: int = 10,
    output_dir: str | Path | None = None,
    batch_size: int = 16,
    device: Any = None,
) -> dict[str, Any]:
    """Compute GA, IS, FID, SSIM and EEG classification metrics of a ``brainvis generate`` folder
    and write ``metrics.json``, ``metrics.md``, ``confusion_matrix.png`` and ``per_class_ga.png``.

    Args:
        generated_dir: output folder of ``brainvis generate`` (see docs/architecture.md).
        classifier: image classifier for GA and IS: Hub repo id / folder of an
            ``AutoModelForImageClassification`` (default ImageNet-1k BEiT-L/16), or a
            ``(model, image_processor)`` tuple. The true class of each generated image is the
            classifier's argmax on its ground-truth image.
        feature_extractor: FID features: ``None`` (standard Inception-v3 when available,
            otherwise FID is recorded as not computed with the reason), ``"inception"``
            (required; error if unavailable), ``"none"`` (skip), a transformers repo id /
            folder (:class:`TransformersImageFeatureExtractor`), or an ``nn.Module``.
        n_way, top_k, num_trials, seed, exact: GA settings (:func:`n_way_top_k_accuracy`).
        inception_splits: IS splits (capped at the number of generated images).
        output_dir: where to write the files (default: ``generated_dir``).
        batch_size: images per forward pass; device: ``None`` -> CUDA when available.

    Returns:
        The dict written to ``metrics.json``.
    """
    for name, value in (("top_k", top_k), ("num_trials", num_trials), ("inception_splits", inception_splits), ("batch_size", batch_size)):
        if int(value) < 1:
            raise ValueError(f"`{name}` must be >= 1; got {value}")
    folder = read_generated_folder(generated_dir)
    extractor, extractor_name, reason = _resolve_feature_extractor(feature_extractor)  # fail early
    output = Path(output_dir) if output_dir is not None else folder.root
    output.mkdir(parents=True, exist_ok=True)

    # images are opened batch by batch (paths), so memory does not grow with the folder size
    generated, ground_truth = folder.image_files, folder.ground_truth_files
    with Image.open(generated[0]) as first:
        width, height = first.size

    if isinstance(classifier, (tuple, list)):
        model, processor = classifier
        classifier_name = getattr(model, "name_or_path", None) or type(model).__name__
    else:
        model, processor = load_image_classifier(str(classifier), device)
        classifier_name = str(classifier)
    num_labels = int(model.config.num_labels)
    if not 2 <= n_way <= num_labels:
        raise ValueError(f"n_way ({n_way}) must be between 2 and the number of classifier labels ({num_labels}, classifier {classifier_name})")
    probs_generated = classify_images(generated, model, batch_size=batch_size, image_processor=processor)
    probs_ground_truth = classify_images(ground_truth, model, batch_size=batch_size, image_processor=processor)
    gt_class = probs_ground_truth.argmax(axis=1)
    target = gt_class[folder.image_eeg_index]

    # generation accuracy, overall and per EEG class
    rates = n_way_top_k_hit_rates(probs_generated, target, n_way, top_k, num_trials, seed, exact)
    per_class = per_class_generation_accuracy(
        probs_generated, target, _class_groups(folder),
        lambda p, t: n_way_top_k_hit_rates(p, t, n_way, top_k, num_trials, seed, exact), rates,
    )
    per_class_ga = {name: row["ga"] for name, row in per_class.items()}

    splits = min(inception_splits, len(generated))
    is_mean, is_std = inception_score(probs_generated, splits=splits)

    # FID: generated vs ground truth, both at the generated images' size
    fid_entry: dict[str, Any] = {"computed": False, "value": None, "feature_extractor": extractor_name, "reason": reason}
    if extractor is not None:
        if len(generated) < 2 or len(ground_truth) < 2:
            fid_entry["reason"] = "FID needs at least 2 generated and 2 ground-truth images"
        else:
            features_generated = extract_features(extractor, generated, batch_size=batch_size, device=device, image_size=(height, width), desc="FID features (generated)")
            features_ground_truth = extract_features(extractor, ground_truth, batch_size=batch_size, device=device, image_size=(height, width), desc="FID features (ground truth)")
            fid_entry.update(computed=True, value=frechet_distance(features_generated, features_ground_truth), reason=None, num_features=int(features_generated.shape[1]))

    # SSIM: each generated image vs its ground truth resized to the generated image's size
    ssim_values = []
    cached_index, reference_image = -1, None
    for path, eeg_index in tqdm(list(zip(generated, folder.image_eeg_index)), desc="SSIM", leave=False):
        image = _open_rgb(path)
        if eeg_index != cached_index:
            cached_index, reference_image = eeg_index, _open_rgb(ground_truth[eeg_index])
        reference = reference_image if reference_image.size == image.size else reference_image.resize(image.size, Image.BICUBIC)
        ssim_values.append(ssim(np.asarray(image), np.asarray(reference)))

    eeg = _eeg_metrics(folder)
    metrics: dict[str, Any] = {
        "generated_dir": str(folder.root),
        "model": folder.manifest.get("model"),
        "classifier": classifier_name,
        "num_classifier_labels": num_labels,
        "num_eegs": len(folder.eegs),
        "num_generated_images": len(generated),
        "summary": {
            f"ga_{n_way}way_top{top_k}": float(np.mean(rates)),
            "inception_score": is_mean,
            "fid": fid_entry["value"],
            "ssim": float(np.mean(ssim_values)),
            "eeg_top1_accuracy": eeg.get("top1_accuracy"),
        },
        "generation_accuracy": {
            "value": float(np.mean(rates)), "n_way": n_way, "top_k": top_k, "num_trials": num_trials,
            "seed": seed, "exact": exact, "per_image": rates.tolist(),
            "ground_truth_classifier_labels": gt_class.tolist(),
        },
        "per_class_ga": per_class_ga,
        "per_class_ga_false_alarm": {name: row["false_alarm"] for name, row in per_class.items()},
        "per_class_ga_above_false_alarm": {name: row["above_false_alarm"] for name, row in per_class.items()},
        "inception_score": {"mean": is_mean, "std": is_std, "splits": splits},
        "fid": fid_entry,
        "ssim": {"mean": float(np.mean(ssim_values)), "std": float(np.std(ssim_values)), "size": [height, width], "per_image": ssim_values},
        "eeg_classification": eeg,
    }
    from .._io import dumps_strict, finite_or_none

    (output / "metrics.json").write_text(dumps_strict(finite_or_none(metrics), output / "metrics.json", indent=2), encoding="utf-8")
    (output / "metrics.md").write_text(metrics_markdown(metrics), encoding="utf-8")
    _plot_confusion(eeg, folder.class_names, output / "confusion_matrix.png")
    plot_per_class_ga(per_class, n_way, top_k, output / "per_class_ga.png")
    return metrics

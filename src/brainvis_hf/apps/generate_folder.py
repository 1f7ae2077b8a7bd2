"""Generate images for many EEG recordings into a folder (the library side of ``brainvis generate``).

Output folder (docs/architecture.md, read by ``brainvis evaluate`` and the demo)::

    OUT/images/<eeg_id>_<k>.png     refined images (k = sample index)
    OUT/stage1/<eeg_id>_<k>.png     stage-1 images (when refinement is on)
    OUT/ground_truth/<eeg_id>.png   ground-truth image, when known
    OUT/manifest.json               EEGs (true / predicted labels, probabilities) and images
    OUT/contact_sheet.png           ground truth | stage 1 | refined, one row per EEG

Every image has its own seed, ``seed + eeg_number * num_images_per_eeg + k`` (``eeg_number`` is
the numeric EEG id), so an image does not depend on batching, on the number of processes or on
which run produced it. That makes resuming safe: images already written and recorded are
skipped. A run's part file keeps the records of the interrupted runs before it until the final
merge, so any number of interruptions loses nothing and repeats nothing (docs/reliability.md). Under ``accelerate launch`` the images still to do are split into contiguous shares
(like ``PartialState.split_between_processes``); every process records its own part file and the
main process merges them into ``manifest.json``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import PIL.Image
from tqdm.auto import tqdm

from .._io import atomic_write, remove_stale_temporaries
from ..generation_manifest import (  # noqa: F401  (check_manifest_paths: re-exported, its home is generation_manifest.py)
    MANIFEST_NAME,
    PARTS_DIR,
    check_manifest_paths,
    load_manifest_document,
    merge_manifests,
    read_manifest,
    write_manifest,
)
from ..ids import SAFE_ID_RULE, is_safe_id
CONTACT_SHEET_NAME = "contact_sheet.png"
# settings that must match when resuming into an existing folder
_RESUME_KEYS = (
    "num_images_per_eeg",
    "num_inference_steps",
    "guidance_scale",
    "refine",
    "refine_num_inference_steps",
    "refine_strength",
    "refine_guidance_scale",
    "seed",
    "height",
    "width",
)


@dataclass
class EEGRecord:
    """One EEG recording to generate from.

    Args:
        eeg_id: stable id (file names, manifest); digits for the inputs we read.
        eeg: ``C x T`` float array (raw recordings are cut to the model's window by the pipeline).
        number: the integer the per-image seeds derive from (the numeric ``eeg_id``).
        true_label / true_label_name: ground-truth class index and words, when known.
        ground_truth: the stimulus image (PIL) or a path to it, when known.
    """

    eeg_id: str
    eeg: np.ndarray
    number: int
    true_label: int | None = None
    true_label_name: str | None = None
    ground_truth: Any = None


@dataclass
class GenerationSettings:
    """Arguments of the pipeline call shared by every image of a folder."""

    num_images_per_eeg: int = 4
    num_inference_steps: int = 50
    guidance_scale: float = 1.0
    refine: bool = True
    refine_num_inference_steps: int = 100
    refine_strength: float = 0.85
    refine_guidance_scale: float = 7.5
    seed: int = 0
    height: int | None = None
    width: int | None = None
    batch_size: int = 8
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``"eeg"`` (BrainVis) or ``"class_name"``: the *oracle* control of the demo, where stage 1 is
    #: prompted with the text embedding of each record's true class words (no EEG) and the
    #: refinement with the same words -- what the class prompt alone gives
    prompt_source: str = "eeg"

    def image_seed(self, record: EEGRecord, sample: int) -> int:
        """Seed of image ``sample`` of ``record``."""
        return self.seed + record.number * self.num_images_per_eeg + sample

    def as_dict(self) -> dict[str, Any]:
        out = {key: getattr(self, key) for key in _RESUME_KEYS}
        if self.prompt_source != "eeg":  # recorded (and checked on resume) only when it is not the default
            out["prompt_source"] = self.prompt_source
        return out


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def parse_indices(text: str | None) -> list[int] | None:
    """``"0,5,10-12"`` -> ``[0, 5, 10, 11, 12]`` (ranges are inclusive); ``None`` stays ``None``."""
    if text is None:
        return None
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if match is None:
            raise ValueError(f"--indices: cannot read {part!r}; expected comma-separated integers or ranges like 10-20.")
        start, end = int(match.group(1)), int(match.group(2) or match.group(1))
        if end < start:
            raise ValueError(f"--indices: range {part!r} ends before it starts.")
        out.extend(range(start, end + 1))
    if not out:
        raise ValueError("--indices: no index given.")
    return out


def _select(count: int, indices: Sequence[int] | None, what: str) -> list[int]:
    if indices is None:
        return list(range(count))
    bad = [i for i in indices if not 0 <= i < count]
    if bad:
        raise ValueError(f"{what}: indices {bad[:10]} are out of range; it holds {count} recordings (0..{count - 1}).")
    return list(dict.fromkeys(indices))


def _array_records(array: np.ndarray, path: Path, indices: Sequence[int] | None) -> list[EEGRecord]:
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"{path}: expected an EEG array of shape (C, T) or (N, C, T), got shape {array.shape}.")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{path}: expected a floating-point EEG array, got dtype {array.dtype}.")
    with np.errstate(over="ignore"):  # reported below, naming the recordings
        records = [EEGRecord(eeg_id=str(i), eeg=np.asarray(array[i], dtype=np.float32), number=i) for i in _select(len(array), indices, str(path))]
    overflow = [r.eeg_id for r in records if np.isfinite(array[int(r.eeg_id)]).all() and not np.isfinite(r.eeg).all()]
    if overflow:  # finite float64 values beyond float32's range would become Inf silently
        raise ValueError(
            f"{path}: recording(s) {', '.join(overflow[:10])} overflow float32 (largest magnitude "
            f"{float(np.abs(array[int(overflow[0])]).max()):.3g}); standardise the EEG (z-score each channel)."
        )
    return records


def _signals_records(data: dict, path: Path, indices: Sequence[int] | None, image_root: str | os.PathLike | None) -> list[EEGRecord]:
    from ..data.eeg_imagenet import image_path
    from ..data.labels import WNID_TO_WORDS

    recordings, labels, images = data["dataset"], data["labels"], data["images"]
    records = []
    for i in _select(len(recordings), indices, str(path)):
        rec = recordings[i]
        label = int(rec["label"])
        wnid = labels[label]
        gt = None
        if image_root is not None:
            gt = image_path(image_root, images[int(rec["image"])])
            if not gt.is_file():
                raise FileNotFoundError(f"ground-truth image of recording {i} not found: {gt} (from --image-root)")
        records.append(
            EEGRecord(
                eeg_id=str(i),
                eeg=rec["eeg"].float().numpy(),
                number=i,
                true_label=label,
                true_label_name=WNID_TO_WORDS.get(wnid, wnid),
                ground_truth=gt,
            )
        )
    return records


def _prepared_records(data_dir: Path, split: str, indices: Sequence[int] | None) -> list[EEGRecord]:
    from ..data import load_prepared_dataset

    splits = load_prepared_dataset(data_dir)
    if split not in splits:
        raise ValueError(f"{data_dir}: no split {split!r}; it has {', '.join(splits)} (choose one with --split).")
    ds = splits[split]
    rows = _select(len(ds), indices, f"{data_dir} split {split!r}")
    ds = ds.select(rows)
    has_image = "image" in ds.column_names
    records = []
    for row in ds:
        eeg_index = int(row["eeg_index"])
        records.append(
            EEGRecord(
                eeg_id=str(eeg_index),
                eeg=np.asarray(row["eeg"], dtype=np.float32),
                number=eeg_index,
                true_label=int(row["label"]),
                true_label_name=str(row["label_text"]),
                ground_truth=row["image"] if has_image else None,
            )
        )
    return records


def load_eeg_records(
    source: str | os.PathLike,
    *,
    split: str = "test",
    indices: Sequence[int] | None = None,
    image_root: str | os.PathLike | None = None,
    model_config=None,
) -> list[EEGRecord]:
    """Read the EEG recordings to generate from.

    Args:
        source: a prepared data folder (``brainvis data prepare``; uses ``split``, ground truth from
            its ``image`` column), a ``.npy`` array or ``.pt`` tensor of shape ``(C, T)`` or
            ``(N, C, T)``, an EEG-ImageNet signals file (``.pth`` dict with ``dataset``,
            ``labels``, ``images``; ground truth from ``image_root``), or an MNE epochs file
            (``*-epo.fif``; needs ``model_config`` and the ``mne`` extra: channels picked by the
            model's ``ch_names``, resampled to its ``sfreq``, cut to its window; EEG id = epoch index).
        indices: rows (prepared split, arrays, epochs) or recording indices (signals file) to use.
        model_config: the EEG encoder's configuration (for MNE input).
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"--eeg: {path} does not exist.")
    if path.is_dir():
        return _prepared_records(path, split, indices)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise ValueError(f"{path}: not a plain numeric .npy array ({err}).") from err
        return _array_records(array, path, indices)
    if suffix == ".fif" or path.name.lower().endswith((".fif.gz",)):
        if model_config is None:
            raise ValueError(f"--eeg: {path}: MNE input needs the model's configuration (model_config).")
        import mne

        from ..data.mne_io import epochs_to_eeg_values

        try:
            epochs = mne.read_epochs(path, preload=True, verbose="error")
        except Exception as err:  # MNE raises several types for files that are not epochs
            raise ValueError(f"--eeg: {path}: cannot read it as MNE epochs ({type(err).__name__}: {err}).") from err
        try:
            array = epochs_to_eeg_values(epochs, model_config)
        except ValueError as err:
            raise ValueError(f"--eeg: {path}: {err}") from None
        return _array_records(array, path, indices)
    if suffix in (".pt", ".pth"):
        from ..data.eeg_imagenet import load_signals, safe_torch_load

        data = safe_torch_load(path)
        if isinstance(data, dict) and "dataset" in data:
            return _signals_records(load_signals(path), path, indices, image_root)
        import torch

        if not isinstance(data, torch.Tensor):
            raise ValueError(
                f"{path}: expected a tensor of shape (C, T) or (N, C, T) or an EEG-ImageNet signals dict, "
                f"got {type(data).__name__}."
            )
        if not data.dtype.is_floating_point:
            raise ValueError(f"{path}: expected a floating-point EEG tensor, got dtype {data.dtype}.")
        return _array_records(data.numpy() if data.dtype == torch.float64 else data.float().numpy(), path, indices)
    raise ValueError(f"--eeg: {path} is neither a prepared data folder nor a .npy / .pt / .pth / -epo.fif file.")


# ---------------------------------------------------------------------------------------------
# Sharding (the manifest: generation_manifest.py)
# ---------------------------------------------------------------------------------------------


def shard(items: Sequence[Any], rank: int, world_size: int) -> list[Any]:
    """Contiguous share of ``items`` for process ``rank`` of ``world_size`` (the first
    ``len % world_size`` processes get one more), as ``accelerate``'s ``split_between_processes``."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}.")
    per, extra = divmod(len(items), world_size)
    start = rank * per + min(rank, extra)
    return list(items[start : start + per + (1 if rank < extra else 0)])


_write_json = write_manifest  # the old private name


def _save_png(image: PIL.Image.Image, path: Path) -> None:
    atomic_write(path, lambda p: image.convert("RGB").save(p, format="PNG"))


def _check_resumable(existing: dict[str, Any], header: dict[str, Any], output_dir: Path) -> None:
    old, new = existing.get("generation", {}), header["generation"]
    changed = [f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in _RESUME_KEYS if k in old and old[k] != new[k]]
    if old.get("eeg_source") and new.get("eeg_source") and old["eeg_source"] != new["eeg_source"]:
        # EEG ids of arrays are row numbers: another input would collide with the images already there
        changed.append(f"eeg_source: {old['eeg_source']!r} -> {new['eeg_source']!r}")
    if existing.get("model") not in (None, header["model"]):
        changed.insert(0, f"model: {existing.get('model')!r} -> {header['model']!r}")
    if changed:
        raise ValueError(
            f"{output_dir} already holds images generated with other settings ({'; '.join(changed)}); "
            "use another --output folder to generate with these."
        )


def _done_images(existing: dict[str, Any] | None, output_dir: Path, refine: bool) -> set[tuple[str, int]]:
    done = set()
    for entry in (existing or {}).get("images", []):
        files = [entry.get("file")] + ([entry.get("stage1_file")] if refine else [])
        if all(f and (output_dir / f).is_file() for f in files):
            done.add((str(entry["eeg_id"]), int(entry["sample"])))
    return done


# ---------------------------------------------------------------------------------------------
# Contact sheet
# ---------------------------------------------------------------------------------------------


def write_contact_sheet(
    output_dir: str | os.PathLike, manifest: dict[str, Any], *, max_rows: int = 16, thumb: int = 128
) -> Path | None:
    """``contact_sheet.png``: one row per EEG (first ``max_rows``): ground truth | stage-1 images |
    refined images, under a caption with the true and predicted class words."""
    from PIL import ImageDraw, ImageFont

    root = Path(output_dir)
    eegs = manifest.get("eegs", [])[:max_rows]
    if not eegs:
        return None
    n = int(manifest.get("num_images_per_eeg") or 1)
    by_eeg: dict[str, dict[int, dict]] = {}
    for entry in manifest.get("images", []):
        by_eeg.setdefault(str(entry["eeg_id"]), {})[int(entry["sample"])] = entry
    has_stage1 = any(e.get("stage1_file") for e in manifest.get("images", []))
    columns = [("ground truth", None)] + ([("stage 1", "stage1_file")] * n if has_stage1 else []) + [("refined" if has_stage1 else "generated", "file")] * n
    font = ImageFont.load_default()
    caption_h, header_h, pad = 16, 18, 4
    width = pad + len(columns) * (thumb + pad)
    height = header_h + len(eegs) * (caption_h + thumb + pad) + pad
    sheet = PIL.Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (title, _) in enumerate(columns):
        if c == 0 or title != columns[c - 1][0]:
            draw.text((pad + c * (thumb + pad), 3), title, fill="black", font=font)

    def paste(rel: str | None, x: int, y: int) -> None:
        if rel and (root / rel).is_file():
            with PIL.Image.open(root / rel) as im:
                # enlarging (a 32-pixel demo image -> 128): nearest neighbour keeps the pixels sharp
                resample = PIL.Image.NEAREST if max(im.size) <= thumb else PIL.Image.BICUBIC
                sheet.paste(im.convert("RGB").resize((thumb, thumb), resample), (x, y))
        else:
            draw.rectangle([x, y, x + thumb - 1, y + thumb - 1], outline="gray", fill=(235, 235, 235))
            draw.text((x + 4, y + thumb // 2 - 6), "n/a", fill="gray", font=font)

    for r, eeg in enumerate(eegs):
        y = header_h + r * (caption_h + thumb + pad)
        true_name = eeg.get("true_label_name") or "?"
        pred_name = eeg.get("predicted_label_name") or "?"
        mark = "" if eeg.get("true_label") is None else (" (correct)" if eeg.get("true_label") == eeg.get("predicted_label") else "")
        caption = f"EEG {eeg['eeg_id']}: true {true_name}" + (
            f" | predicted {pred_name}{mark}" if eeg.get("predicted_label_name") else "")
        draw.text((pad, y + 2), caption, fill="black", font=font)
        samples = by_eeg.get(str(eeg["eeg_id"]), {})
        for c, (_, key) in enumerate(columns):
            x = pad + c * (thumb + pad)
            if key is None:
                rel = eeg.get("ground_truth")
            else:
                k = (c - 1) % n
                rel = samples.get(k, {}).get(key)
            paste(rel, x, y + caption_h)
    path = root / CONTACT_SHEET_NAME
    _save_png(sheet, path)
    return path


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------


def _ground_truth_image(value: Any) -> PIL.Image.Image | None:
    if value is None:
        return None
    if isinstance(value, PIL.Image.Image):
        return value
    if isinstance(value, dict) and value.get("bytes"):
        import io

        return PIL.Image.open(io.BytesIO(value["bytes"]))
    if isinstance(value, dict) and value.get("path"):
        value = value["path"]
    return PIL.Image.open(value)


def _call_pipe(pipe, eeg: np.ndarray, settings: GenerationSettings, seeds: list[int], class_words: list[str] | None = None):
    inputs: dict[str, Any] = {}
    if settings.prompt_source == "class_name":  # oracle: the true class words instead of the EEG
        prompt_embeds, _ = pipe.encode_prompt(class_words)
        eeg, inputs = None, {"prompt_embeds": prompt_embeds, "refine_prompt": list(class_words)}
    return pipe(
        eeg,
        **inputs,
        num_images_per_prompt=1,
        num_inference_steps=settings.num_inference_steps,
        guidance_scale=settings.guidance_scale,
        refine=settings.refine,
        refine_strength=settings.refine_strength,
        refine_guidance_scale=settings.refine_guidance_scale,
        refine_num_inference_steps=settings.refine_num_inference_steps,
        height=settings.height,
        width=settings.width,
        generator=pipe.generators_from_seeds(seeds),
        max_batch_size=settings.batch_size,
        output_type="pil",
        return_stage1_images=settings.refine,
        **settings.extra,
    )


def generate_to_folder(
    pipe,
    records: Sequence[EEGRecord],
    output_dir: str | os.PathLike,
    settings: GenerationSettings | None = None,
    *,
    model_name: str = "",
    rank: int = 0,
    world_size: int = 1,
    barrier: Callable[[], None] | None = None,
    contact_sheet_rows: int = 16,
    show_progress: bool = True,
    eeg_source: str | None = None,
) -> dict[str, Any] | None:
    """Generate every missing image of ``records`` into ``output_dir`` (see the module docstring).

    Args:
        pipe: a :class:`BrainVisPipeline` (already on its device).
        records: the EEG recordings (:func:`load_eeg_records`).
        settings: the pipeline arguments and the base seed.
        model_name: recorded as ``model`` in the manifest.
        rank, world_size, barrier: this process's index, the number of processes and a function
            that waits for all of them (``PartialState().wait_for_everyone``); one process by default.
        contact_sheet_rows: EEGs shown in ``contact_sheet.png``.
        eeg_source: where the recordings come from (e.g. the resolved input path and split),
            recorded in the manifest; resuming a folder from another source is refused, since the
            EEG ids (row numbers for arrays) would collide.

    Returns:
        The merged manifest on the main process (rank 0), ``None`` on the others.
    """
    settings = settings or GenerationSettings()
    barrier = barrier or (lambda: None)
    root = Path(output_dir)
    for record in records:
        if not is_safe_id(record.eeg_id):
            raise ValueError(f"EEG id {record.eeg_id!r} cannot be used in a file name ({SAFE_ID_RULE}).")
    windows = {}
    for record in records:  # validate and cut every recording before generating anything
        try:
            windows[record.eeg_id] = pipe.prepare_eeg_values(record.eeg)[0].numpy()
        except (TypeError, ValueError) as err:
            raise ValueError(f"EEG {record.eeg_id}: {err}") from None
    if settings.prompt_source not in ("eeg", "class_name"):
        raise ValueError(f"prompt_source must be 'eeg' or 'class_name'; got {settings.prompt_source!r}")
    if settings.prompt_source == "class_name":
        unnamed = [r.eeg_id for r in records if not r.true_label_name]
        if unnamed:
            raise ValueError(f"prompt_source='class_name' needs each record's true class words; EEG {', '.join(unnamed[:5])} has none")
    n = settings.num_images_per_eeg
    class_names = [str(v) for _, v in sorted((int(k), v) for k, v in (pipe.eeg_encoder.config.id2label or {}).items())]
    header = {
        "model": model_name,
        "num_images_per_eeg": n,
        "class_names": class_names,
        "generation": {**settings.as_dict(), "eeg_source": eeg_source},
    }
    if root.exists() and not root.is_dir():
        raise ValueError(f"output folder {root} is an existing file, not a folder; give a new folder or the folder of a previous run.")
    subfolders = ("images", "stage1", "ground_truth", PARTS_DIR) if settings.refine else ("images", "ground_truth", PARTS_DIR)
    for sub in subfolders:
        (root / sub).mkdir(parents=True, exist_ok=True)
    if rank == 0:  # temporary files of a run that crashed or ran out of disk space
        remove_stale_temporaries(root, *(root / sub for sub in subfolders))

    existing = read_manifest(root)
    if existing is not None:
        _check_resumable(existing, header, root)
    done = _done_images(existing, root, settings.refine)
    todo = [(r, k) for r, record in enumerate(records) for k in range(n) if (record.eeg_id, k) not in done]
    barrier()  # every process has read the same state before anyone writes
    mine = shard(todo, rank, world_size)

    part_path = root / PARTS_DIR / f"rank{rank:03d}.json"
    # keep what this rank's part file already records: a run interrupted before the merge below
    # must not lose the images of the runs before it (they are in `existing`, not yet in manifest.json)
    previous_part = load_manifest_document(part_path, root, tolerate_invalid=True) if part_path.is_file() else None
    part: dict[str, Any] = {**header, "eegs": [], "images": list((previous_part or {}).get("images", []))}
    eeg_entries: dict[str, dict] = {str(e["eeg_id"]): e for e in (previous_part or {}).get("eegs", [])}
    fresh_eegs: set[str] = set()
    pipe.set_progress_bar_config(disable=True)
    bar = tqdm(total=len(mine), desc=f"generating (process {rank})" if world_size > 1 else "generating", unit="image",
               disable=not show_progress, position=rank)  # fmt: skip
    for start in range(0, len(mine), settings.batch_size):
        batch = mine[start : start + settings.batch_size]
        batch_records = [records[r] for r, _ in batch]
        eeg = np.stack([windows[rec.eeg_id] for rec in batch_records])
        seeds = [settings.image_seed(rec, k) for rec, (_, k) in zip(batch_records, batch)]
        words = [rec.true_label_name for rec in batch_records] if settings.prompt_source == "class_name" else None
        try:
            out = _call_pipe(pipe, eeg, settings, seeds, words)
        except ValueError as err:  # finite EEG that overflows the encoder: name the recordings
            rows = getattr(err, "batch_indices", None)
            if rows is None:
                raise
            ids = [batch_records[i].eeg_id for i in rows]
            message = str(err).split(": ", 1)[1] if str(err).startswith("recording(s)") else str(err)
            raise ValueError(f"EEG {', '.join(ids[:10])} ({eeg_source or 'input'}): {message}") from None
        for i, (record, (_, k)) in enumerate(zip(batch_records, batch)):
            entry = {"eeg_id": record.eeg_id, "sample": k, "seed": seeds[i], "file": f"images/{record.eeg_id}_{k}.png",
                     "stage1_file": f"stage1/{record.eeg_id}_{k}.png" if settings.refine else None}  # fmt: skip
            _save_png(out.images[i], root / entry["file"])
            if settings.refine:
                _save_png(out.stage1_images[i], root / entry["stage1_file"])
            if record.eeg_id not in fresh_eegs:
                fresh_eegs.add(record.eeg_id)
                gt = _ground_truth_image(record.ground_truth)
                gt_rel = f"ground_truth/{record.eeg_id}.png" if gt is not None else None
                if gt is not None and not (root / gt_rel).is_file():
                    _save_png(gt, root / gt_rel)
                eeg_entries[record.eeg_id] = {
                    "eeg_id": record.eeg_id,
                    "true_label": record.true_label,
                    "true_label_name": record.true_label_name,
                    "ground_truth": gt_rel,
                }
                if out.predicted_label_ids is not None:  # the EEG encoder ran (not the oracle)
                    eeg_entries[record.eeg_id].update(
                        predicted_label=int(out.predicted_label_ids[i]), predicted_label_name=out.predicted_labels[i],
                        probs=[round(float(p), 6) for p in out.predicted_probs[i]],
                    )
            part["images"].append(entry)
        part["eegs"] = list(eeg_entries.values())
        write_manifest(part_path, part)  # recorded: a crash after this point loses nothing
        bar.update(len(batch))
    bar.close()

    barrier()
    manifest = None
    if rank == 0:
        documents = ([existing] if existing is not None else []) + [header]
        parts = sorted((root / PARTS_DIR).glob("*.json"))
        for path in parts:
            document = load_manifest_document(path, root, tolerate_invalid=True)
            if document is not None:
                documents.append(document)
        previous = [str(e["eeg_id"]) for e in (existing or {}).get("eegs", [])]
        manifest = merge_manifests(documents, eeg_order=previous + [r.eeg_id for r in records])
        manifest = {key: manifest[key] for key in ("model", "num_images_per_eeg", "class_names", "generation", "eegs", "images")}
        write_manifest(root / MANIFEST_NAME, manifest)
        for path in parts:
            path.unlink()
        write_contact_sheet(root, manifest, max_rows=contact_sheet_rows)
    barrier()
    return manifest

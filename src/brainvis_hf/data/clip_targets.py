"""CLIP targets of the alignment stage: one coarse and one fine text embedding per image.

BrainVis aligns an EEG recording with two CLIP text-encoder outputs of the image the subject
saw (reference section 4):

- **coarse**: the last hidden state (``L x D``, 77 x 768 for ViT-L/14) of the class words, e.g.
  ``"sorrel horse"``;
- **fine**: the same for a caption of the image written by BLIP-2 (OPT-2.7b).

They depend on the image only, so they are computed once per image (2,000 images in
EEG-ImageNet, not once per recording) and stored next to the prepared data set::

    DIR/clip_targets/index.json                 models, sizes, and per chunk: image names,
                                                class texts, captions
    DIR/clip_targets/chunk-00000.safetensors    "coarse", "fine": (N x L x D) float16

The computation is resumable: images are processed in a fixed order, in chunks; a chunk whose
file is already listed in the index is skipped. :func:`load_clip_targets` returns the mapping
``image_name -> (coarse, fine)`` that :class:`~brainvis_hf.data.BrainVisDataCollator` takes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

CLIP_TARGETS_DIRNAME = "clip_targets"
INDEX_NAME = "index.json"
DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"
DEFAULT_CAPTIONER = "Salesforce/blip2-opt-2.7b"
FORMAT_VERSION = 1

Captioner = Callable[[Sequence[Any]], list[str]]


class Blip2Captioner:
    """Captions PIL images with a BLIP-2 model (``Blip2ForConditionalGeneration`` + processor).

    Args:
        model: a ``Blip2ForConditionalGeneration``.
        processor: its ``Blip2Processor``.
        max_new_tokens: caption length limit.
        prompt: optional text prompt (BLIP-2 captions without one by default).
    """

    def __init__(self, model, processor, *, max_new_tokens: int = 30, prompt: str | None = None):
        self.model = model.eval()
        self.processor = processor
        self.max_new_tokens = max_new_tokens
        self.prompt = prompt
        self.name = getattr(model, "name_or_path", "") or type(model).__name__

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, *, device: str | torch.device | None = None, dtype: torch.dtype | None = None, **kwargs
    ) -> "Blip2Captioner":
        """Load BLIP-2 from the Hub or a local folder (fp16 on a GPU by default)."""
        from transformers import Blip2ForConditionalGeneration, Blip2Processor

        device = torch.device(device) if device is not None else _default_device()
        if dtype is None:
            dtype = torch.float16 if device.type == "cuda" else torch.float32
        processor = Blip2Processor.from_pretrained(name_or_path)
        model = Blip2ForConditionalGeneration.from_pretrained(name_or_path, dtype=dtype).to(device)
        captioner = cls(model, processor, **kwargs)
        captioner.name = name_or_path
        return captioner

    @torch.no_grad()
    def __call__(self, images: Sequence[Any]) -> list[str]:
        images = [image.convert("RGB") for image in images]
        if self.prompt is None:
            inputs = self.processor(images=images, return_tensors="pt")
        else:
            inputs = self.processor(images=images, text=[self.prompt] * len(images), return_tensors="pt")
        inputs = inputs.to(self.model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        generated = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens)
        if self.prompt is not None and "input_ids" in inputs and generated.shape[1] > inputs["input_ids"].shape[1]:
            # decoder-only language models echo the prompt; keep only the continuation
            if torch.equal(generated[:, : inputs["input_ids"].shape[1]], inputs["input_ids"]):
                generated = generated[:, inputs["input_ids"].shape[1] :]
        texts = self.processor.batch_decode(generated, skip_special_tokens=True)
        return [text.strip() for text in texts]


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def clip_targets_dir(data_dir: str | os.PathLike) -> Path:
    """``DIR/clip_targets`` of a prepared data folder."""
    return Path(data_dir) / CLIP_TARGETS_DIRNAME


def has_clip_targets(data_dir: str | os.PathLike) -> bool:
    """Whether ``data_dir`` holds a (non-empty) ``clip_targets/index.json``."""
    index = _read_index(clip_targets_dir(data_dir))
    return bool(index and index.get("chunks"))


def _unique_images(dataset_dict) -> tuple[list[str], list[str], list[tuple[str, int]]]:
    """Image names (sorted), their class words, and where to find each image (split, row)."""
    first: dict[str, tuple[str, str, int]] = {}
    for split in sorted(dataset_dict.keys()):
        ds = dataset_dict[split]
        missing = [c for c in ("image_name", "label_text") if c not in ds.column_names]
        if missing:
            raise ValueError(f"Split {split!r} of the prepared data set lacks column(s) {missing}; got {ds.column_names}")
        names = ds["image_name"]
        texts = ds["label_text"]
        for row, (name, text) in enumerate(zip(names, texts)):
            if name not in first:
                first[name] = (text, split, row)
            elif first[name][0] != text:
                raise ValueError(
                    f"Image {name!r} has two class texts in the data set: {first[name][0]!r} and {text!r}"
                )
    names = sorted(first)
    return names, [first[n][0] for n in names], [(first[n][1], first[n][2]) for n in names]


def _read_index(folder: Path) -> dict[str, Any] | None:
    from .._io import read_json_file

    path = folder / INDEX_NAME
    if not path.is_file():
        return None
    index = read_json_file(path, "CLIP-target index", "recompute the targets with `brainvis data clip-targets`")
    chunks = index.get("chunks") if isinstance(index, dict) else None
    if not isinstance(chunks, list) or not all(
        isinstance(c, dict) and isinstance(c.get("file"), str) and isinstance(c.get("image_names"), list) for c in chunks
    ):
        raise ValueError(f"{path}: expected an object whose 'chunks' list holds {{'file': ..., 'image_names': [...]}} "
                         "entries; recompute the targets with `brainvis data clip-targets`.")  # fmt: skip
    return index


def _write_index(folder: Path, index: dict[str, Any]) -> None:
    tmp = folder / (INDEX_NAME + ".tmp")
    tmp.write_text(json.dumps(index, indent=1, allow_nan=False))
    os.replace(tmp, folder / INDEX_NAME)


@torch.no_grad()
def encode_texts(texts: Sequence[str], tokenizer, text_encoder, *, batch_size: int = 16) -> torch.Tensor:
    """CLIP text-encoder last hidden states of ``texts``, padded to the tokenizer's max length.

    Returns a ``(len(texts), L, D)`` float32 CPU tensor (``L`` = 77 for CLIP).
    """
    max_length = min(tokenizer.model_max_length, text_encoder.config.max_position_embeddings)
    device = text_encoder.device
    out = []
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(
            list(texts[start : start + batch_size]),
            padding="max_length",
            max_length=max_length,
            truncation=True,
            return_tensors="pt",
        )
        hidden = text_encoder(input_ids=tokens.input_ids.to(device)).last_hidden_state
        out.append(hidden.float().cpu())
    return torch.cat(out)


def _load_clip_text(clip_model, device, tokenizer=None, text_encoder=None):
    if text_encoder is not None and tokenizer is not None:
        return tokenizer, text_encoder.to(device).eval(), getattr(text_encoder, "name_or_path", "") or "custom"
    from transformers import CLIPTextModel, CLIPTokenizer

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    tokenizer = CLIPTokenizer.from_pretrained(clip_model)
    text_encoder = CLIPTextModel.from_pretrained(clip_model, dtype=dtype).to(device).eval()
    return tokenizer, text_encoder, str(clip_model)


def compute_clip_targets(
    data_dir: str | os.PathLike,
    clip_model: str | os.PathLike = DEFAULT_CLIP_MODEL,
    captioner: str | os.PathLike | Captioner | None = DEFAULT_CAPTIONER,
    *,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    chunk_size: int = 256,
    tokenizer=None,
    text_encoder=None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> Path:
    """Compute and store the coarse and fine CLIP targets of every image of a prepared data set.

    Args:
        data_dir: a folder written by ``brainvis data prepare``.
        clip_model: Hub id or folder of a CLIP model with a text tower (``CLIPTokenizer`` +
            ``CLIPTextModel``). Ignored when ``tokenizer`` and ``text_encoder`` are given.
        captioner: Hub id or folder of a BLIP-2 model, or a callable ``list[PIL.Image] ->
            list[str]``, or ``None`` (no captions: the fine target is then the coarse one, and
            the data set needs no images).
        batch_size: images (and texts) per forward pass.
        device: where the models run (default: CUDA when available).
        chunk_size: images per stored chunk (the unit of resumption).
        tokenizer, text_encoder: an already loaded CLIP tokenizer / text model (tests, reuse).
        overwrite: recompute everything even if chunks exist.
        show_progress: show a progress bar.

    Returns:
        The ``DIR/clip_targets`` folder.

    Raises:
        ValueError: when a captioner is requested but the data set has no ``image`` column, or
            when existing chunks were computed with other models (use ``overwrite=True``).
    """
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from .prepare import load_prepared_dataset

    data_dir = Path(data_dir)
    device = torch.device(device) if device is not None else _default_device()
    dataset_dict = load_prepared_dataset(data_dir)
    names, class_texts, locations = _unique_images(dataset_dict)
    if not names:
        raise ValueError(f"The prepared data set in {data_dir} has no rows")

    needs_images = captioner is not None
    if needs_images:
        without = [s for s in dataset_dict if "image" not in dataset_dict[s].column_names]
        if without:
            raise ValueError(
                f"A captioner was requested but split(s) {without} of {data_dir} have no 'image' column; "
                "prepare the data with an image root (brainvis data prepare --image-root DIR), "
                "or pass captioner=None (CLI: --captioner none) to use the class words as fine targets too."
            )

    tokenizer, text_encoder, clip_name = _load_clip_text(clip_model, device, tokenizer, text_encoder)
    caption_fn: Captioner | None
    if captioner is None:
        caption_fn, captioner_name = None, None
    elif callable(captioner):
        caption_fn = captioner
        captioner_name = getattr(captioner, "name", None) or getattr(captioner, "__name__", type(captioner).__name__)
    else:
        caption_fn = Blip2Captioner.from_pretrained(str(captioner), device=device)
        captioner_name = str(captioner)

    folder = clip_targets_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    index = None if overwrite else _read_index(folder)
    settings = {"clip_model": clip_name, "captioner": captioner_name, "chunk_size": chunk_size}
    if index is not None:
        previous = {k: index.get(k) for k in settings}
        if previous != settings:
            raise ValueError(
                f"{folder} already holds targets computed with {previous}, not {settings}; "
                "pass overwrite=True (CLI: --overwrite) to recompute them."
            )
    if index is None:
        index = {"format_version": FORMAT_VERSION, **settings, "dtype": "float16", "chunks": []}
    done = {chunk["file"] for chunk in index["chunks"] if (folder / chunk["file"]).is_file()}
    index["chunks"] = [c for c in index["chunks"] if c["file"] in done]

    starts = list(range(0, len(names), chunk_size))
    progress = tqdm(total=len(names), desc="CLIP targets", unit="image", disable=not show_progress)
    for chunk_id, start in enumerate(starts):
        file_name = f"chunk-{chunk_id:05d}.safetensors"
        chunk_names = names[start : start + chunk_size]
        if file_name in done:
            listed = next(c for c in index["chunks"] if c["file"] == file_name)
            if listed["image_names"] != chunk_names:
                raise ValueError(
                    f"{folder / file_name} holds other images than expected (the data set changed); "
                    "pass overwrite=True to recompute."
                )
            progress.update(len(chunk_names))
            continue
        chunk_texts = class_texts[start : start + chunk_size]
        coarse = encode_texts(chunk_texts, tokenizer, text_encoder, batch_size=batch_size)
        if caption_fn is None:
            captions = list(chunk_texts)
            fine = coarse.clone()
        else:
            captions = []
            for sub in range(0, len(chunk_names), batch_size):
                end = start + min(sub + batch_size, len(chunk_names))
                images = [dataset_dict[split][row]["image"] for split, row in locations[start + sub : end]]
                if any(image is None for image in images):
                    raise ValueError(f"Some images of chunk {chunk_id} in {data_dir} are missing (None)")
                batch_captions = list(caption_fn(images))
                if len(batch_captions) != len(images):
                    raise ValueError(f"The captioner returned {len(batch_captions)} captions for {len(images)} images")
                captions.extend(batch_captions)
            fine = encode_texts(captions, tokenizer, text_encoder, batch_size=batch_size)
        save_file(
            {"coarse": coarse.half().contiguous(), "fine": fine.half().contiguous()},
            str(folder / file_name),
            metadata={"format": "pt"},
        )
        index.update(sequence_length=int(coarse.shape[1]), hidden_size=int(coarse.shape[2]))
        index["chunks"].append(
            {"file": file_name, "image_names": chunk_names, "class_texts": list(chunk_texts), "captions": captions}
        )
        index["chunks"].sort(key=lambda c: c["file"])
        _write_index(folder, index)
        progress.update(len(chunk_names))
    progress.close()
    return folder


def load_clip_target_index(data_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``index.json`` of ``DIR/clip_targets`` (models used, sizes, names, captions)."""
    folder = clip_targets_dir(data_dir)
    index = _read_index(folder)
    if index is None or not index.get("chunks"):
        raise FileNotFoundError(
            f"No CLIP targets in {folder} (expected {folder / INDEX_NAME}); compute them with "
            f"`brainvis data clip-targets --data {data_dir}`."
        )
    return index


def load_clip_targets(
    data_dir: str | os.PathLike, *, dtype: torch.dtype | None = None
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Mapping ``image_name -> (coarse, fine)`` (each ``L x D``) of a prepared data folder.

    Args:
        data_dir: the prepared data folder holding ``clip_targets/``.
        dtype: cast the targets (stored as float16) to this dtype; ``None`` keeps float16.

    Raises:
        FileNotFoundError: when the folder has no CLIP targets (or a chunk file is missing).
    """
    from safetensors.torch import load_file

    from .._io import check_safetensors_file, confined_path

    folder = clip_targets_dir(data_dir)
    index = load_clip_target_index(data_dir)
    targets: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    expected_shape = None
    if isinstance(index.get("sequence_length"), int) and isinstance(index.get("hidden_size"), int):
        expected_shape = (index["sequence_length"], index["hidden_size"])
    for i, chunk in enumerate(index["chunks"]):
        path = confined_path(folder, chunk["file"], folder / INDEX_NAME, f"chunks[{i}].file")
        if not path.is_file():
            raise FileNotFoundError(f"CLIP target chunk {path} listed in {folder / INDEX_NAME} is missing")
        check_safetensors_file(path)
        tensors = load_file(str(path))
        if "coarse" not in tensors or "fine" not in tensors:
            raise ValueError(f"{path}: expected tensors 'coarse' and 'fine', got {sorted(tensors)}; recompute the targets.")
        coarse, fine = tensors["coarse"], tensors["fine"]
        # every target must have the same L x D (the model's prompt shape): checked here, before training
        shape = tuple(coarse.shape[1:])
        if coarse.ndim != 3 or (expected_shape is not None and shape != expected_shape):
            raise ValueError(
                f"{path}: CLIP targets of shape {tuple(coarse.shape)}; expected (images, "
                f"{', '.join(map(str, expected_shape)) if expected_shape else 'L, D'}) like the other chunks "
                f"({folder / INDEX_NAME}); recompute the targets with `brainvis data clip-targets`."
            )
        expected_shape = shape
        if dtype is not None:
            coarse, fine = coarse.to(dtype), fine.to(dtype)
        if coarse.shape[0] != len(chunk["image_names"]) or fine.shape != coarse.shape:
            raise ValueError(
                f"{path}: expected {len(chunk['image_names'])} coarse and fine targets of equal shape; "
                f"got coarse {tuple(coarse.shape)} and fine {tuple(fine.shape)}"
            )
        for i, name in enumerate(chunk["image_names"]):
            targets[name] = (coarse[i], fine[i])
    return targets


def check_clip_targets_cover(targets: Mapping[str, Any], image_names: Sequence[str], where: str) -> None:
    """Raise a ``ValueError`` naming the images of ``where`` that have no CLIP target."""
    missing = sorted(set(image_names) - set(targets))
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(
            f"{len(missing)} image(s) of {where} have no CLIP target ({shown}); "
            "recompute them with `brainvis data clip-targets`."
        )

"""A small image classifier trained on a prepared data set's stimulus images.

The generation accuracy (GA) of the paper scores generated images with an ImageNet classifier.
On the synthetic demo data (class colours and stripes, not ImageNet photos) an ImageNet model
says nothing, so :func:`train_image_classifier` trains a tiny ``ResNetForImageClassification``
(82 k parameters, ``config.id2label`` = the class words) on the training images and saves it with
its image processor, like any ``transformers`` model: ``brainvis evaluate --classifier DIR`` and
:func:`brainvis_hf.evaluation.image_classifier.load_image_classifier` load it unchanged.

Augmentation (circular shifts, blur, pixel noise) makes it judge colour and stripe pattern
rather than exact pixels, so slightly blurry generated images of a class are still recognised.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from transformers import ResNetConfig, ResNetForImageClassification, ViTImageProcessor

from ..data.labels import WNID_TO_WORDS
from ..data.prepare import load_prepared_dataset
from .diffusion import load_image_text_data


def build_small_image_classifier(id2label: dict[int, str], *, seed: int = 0):
    """A random tiny ``ResNetForImageClassification`` (basic blocks, widths 16-32-64)."""
    config = ResNetConfig(
        num_channels=3, embedding_size=16, hidden_sizes=[16, 32, 64], depths=[1, 1, 1], layer_type="basic",
        downsample_in_first_stage=False, num_labels=len(id2label),
        id2label={int(k): v for k, v in id2label.items()}, label2id={v: int(k) for k, v in id2label.items()},
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ResNetForImageClassification(config)
    return model


def build_image_processor(image_size: int):
    """Resize to ``image_size`` squared, scale to [-1, 1] (mean = std = 0.5)."""
    return ViTImageProcessor(size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3, image_std=[0.5] * 3)


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Circular shifts, a random box blur on half the images, Gaussian pixel noise (sd 0 to 0.15)."""
    n = len(batch)
    shifts = torch.randint(0, batch.shape[-1], (2,), generator=generator).tolist()
    batch = batch.roll(shifts=tuple(shifts), dims=(-2, -1))
    blurred = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(batch, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    blur = (torch.rand(n, 1, 1, 1, generator=generator) < 0.5).float()
    batch = blur * blurred + (1 - blur) * batch
    sigma = 0.15 * torch.rand(n, 1, 1, 1, generator=generator)
    return batch + sigma * torch.randn(batch.shape, generator=generator)


@dataclass
class ImageClassifierResult:
    output_dir: Path
    metrics: dict[str, Any]


def _accuracy(model, pixel_values: torch.Tensor, labels: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(pixel_values=pixel_values[i : i + 128]).logits for i in range(0, len(pixel_values), 128)])
    return float((logits.argmax(-1).numpy() == labels).mean())


def train_image_classifier(
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    splits: Sequence[str] = ("train",),
    eval_splits: Sequence[str] = ("validation", "test"),
    image_size: int = 32,
    max_steps: int = 800,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    seed: int = 0,
    overwrite_output_dir: bool = False,
    log: Callable[[str], None] | None = None,
) -> ImageClassifierResult:
    """Train :func:`build_small_image_classifier` on the images of ``splits`` and save it.

    Writes ``output_dir/`` = ``config.json`` + ``model.safetensors`` + ``preprocessor_config.json``
    (loadable with ``AutoModelForImageClassification`` / ``AutoImageProcessor``) and
    ``metrics.json`` (training time, accuracy on the images of ``eval_splits``).
    """
    log = log or (lambda message: None)
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        if not overwrite_output_dir:
            raise FileExistsError(f"{output_dir} is not empty; pass overwrite_output_dir=True or choose another folder")
        shutil.rmtree(output_dir)
    started = time.perf_counter()
    data = load_image_text_data(data_dir, image_size=image_size, splits=splits)
    names = load_prepared_dataset(data_dir)[splits[0]].features["label"].names
    id2label = {i: data.class_names.get(i, WNID_TO_WORDS.get(name, name)) for i, name in enumerate(names)}
    model = build_small_image_classifier(id2label, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-2)
    labels = torch.from_numpy(data.labels)
    model.train()
    history = []
    for step in range(max_steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate * min(1.0, (step + 1) / 50) * 0.5 * (1 + np.cos(np.pi * step / max_steps))
        index = torch.randint(0, len(labels), (batch_size,), generator=generator)
        logits = model(pixel_values=_augment(data.pixel_values[index], generator)).logits
        loss = torch.nn.functional.cross_entropy(logits, labels[index], label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % 50 == 0 or step == max_steps - 1:
            history.append({"step": step + 1, "loss": float(loss.detach())})
            if (step + 1) % 200 == 0:
                log(f"      classifier step {step + 1}/{max_steps}: loss {history[-1]['loss']:.3f}")
    model.eval()
    metrics: dict[str, Any] = {
        "model": "ResNetForImageClassification (tiny)",
        "num_labels": len(id2label),
        "num_train_images": len(labels),
        "image_size": image_size,
        "max_steps": max_steps,
        "seed": seed,
        "train_accuracy": _accuracy(model, data.pixel_values, data.labels),
        "log_history": history,
    }
    for split in eval_splits:
        try:
            held_out = load_image_text_data(data_dir, image_size=image_size, splits=(split,))
        except ValueError:
            continue
        metrics[f"{split}_accuracy"] = _accuracy(model, held_out.pixel_values, held_out.labels)
        metrics[f"{split}_images"] = len(held_out.labels)
    metrics["train_runtime_s"] = round(time.perf_counter() - started, 2)
    model.save_pretrained(output_dir, safe_serialization=True)
    build_image_processor(image_size).save_pretrained(output_dir)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, allow_nan=False), encoding="utf-8")
    return ImageClassifierResult(output_dir=output_dir, metrics=metrics)


__all__ = ["ImageClassifierResult", "build_image_processor", "build_small_image_classifier", "train_image_classifier"]

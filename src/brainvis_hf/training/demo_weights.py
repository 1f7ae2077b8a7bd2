"""The demo's trained diffusion components and image classifier, shipped in the package.

``brainvis demo`` needs a diffusion model that has learned its synthetic class images (colours
and stripes) and a classifier of those images for the generation accuracy. Both are small and
trained on a CPU by :func:`build_demo_weights` (fixed seeds, one thread), which wrote the copies
under ``brainvis_hf/demo_weights/``:

* ``diffusion/``: a ``StableDiffusionPipeline`` folder (small ``AutoencoderKL``, 32 x 32 images,
  16 x 16 x 4 latents; 1 M-parameter UNet; the tiny CLIP text model of
  :mod:`brainvis_hf.pipelines.tiny`, seed 0, frozen; PLMS scheduler);
* ``image_classifier/``: a tiny ``ResNetForImageClassification`` + image processor;
* ``manifest.json``: SHA-256 of every file, the settings and library versions used.

Regenerate them (about 25 min on one core) and check that they are bit for bit the shipped ones::

    OMP_NUM_THREADS=1 python scripts/build_demo_weights.py --output /tmp/demo_weights --check

Bit-for-bit equality holds for the same torch version on the same kind of CPU (float kernels
may differ between builds and instruction sets); the manifest records both.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import diffusers
import torch
import transformers

from .._io import sha256_file
from ..data import load_eeg_imagenet, write_synthetic_eeg_imagenet
from ..data.prepare import prepare_dataset
from .diffusion import load_diffusion_components, train_diffusion
from .image_classifier import train_image_classifier

DEMO_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "demo_weights"
MANIFEST_NAME = "manifest.json"

#: the synthetic data the shipped weights were trained on (the demo's own defaults, seed 0)
DEMO_DATA = dict(num_images_per_class=10, num_subjects=2, difficulty=0.3, image_size=32)
#: training sizes of the shipped weights
DEMO_DIFFUSION_TRAINING = dict(vae_steps=800, max_steps=1500, batch_size=32, learning_rate=1e-3, use_ema=True,
                               ema_decay=0.995, conditioning_dropout=0.1, save_steps=500)
DEMO_CLASSIFIER_TRAINING = dict(max_steps=800, batch_size=64, learning_rate=3e-3)


def demo_diffusion_dir() -> Path:
    """Folder of the shipped demo diffusion components (a ``StableDiffusionPipeline`` folder)."""
    return DEMO_WEIGHTS_DIR / "diffusion"


def demo_image_classifier_dir() -> Path:
    """Folder of the shipped demo image classifier (``brainvis evaluate --classifier DIR``)."""
    return DEMO_WEIGHTS_DIR / "image_classifier"


def load_demo_diffusion_components() -> dict[str, Any]:
    """``vae / text_encoder / tokenizer / unet / scheduler`` of the shipped demo weights (CPU, eval).

    Raises:
        FileNotFoundError: when the package has no demo weights (regenerate them, see the module
            docstring).
    """
    folder = demo_diffusion_dir()
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(
            f"{folder}: the demo diffusion weights are missing; regenerate them with "
            "`python scripts/build_demo_weights.py --output DIR` or train them with train_demo_diffusion"
        )
    return load_diffusion_components(folder)


def write_demo_data(output_dir: str | os.PathLike, *, seed: int = 0) -> Path:
    """Synthesise the demo's data set (:data:`DEMO_DATA`, images included) and prepare it in
    ``output_dir/prepared``; returns that folder."""
    output_dir = Path(output_dir)
    files = write_synthetic_eeg_imagenet(output_dir / "synthetic", seed=seed, with_images=True, show_progress=False, **DEMO_DATA)
    dataset = load_eeg_imagenet(files.eeg_path, files.splits_path, image_root=files.image_root, cache_dir=output_dir / ".cache")
    prepared = prepare_dataset(dataset, output_dir / "prepared", description="Synthetic EEG-ImageNet (brainvis demo weights)")
    shutil.rmtree(output_dir / ".cache", ignore_errors=True)
    return Path(prepared)


def train_demo_diffusion(
    output_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    **overrides: Any,
):
    """Train the demo's diffusion components from scratch (what ``brainvis demo --train-diffusion`` runs).

    Args:
        output_dir: the run folder (a ``StableDiffusionPipeline`` folder + metrics, see
            :func:`~brainvis_hf.training.diffusion.train_diffusion`).
        data_dir: a prepared data folder with images (the demo's ``data/prepared``); default: the
            demo's synthetic data set is written to a temporary folder first.
        seed: seeds the data (when written here) and the training.
        **overrides: replace entries of :data:`DEMO_DIFFUSION_TRAINING` (e.g. ``max_steps``).
    """
    settings = {**DEMO_DIFFUSION_TRAINING, **overrides}
    with tempfile.TemporaryDirectory(prefix="brainvis-demo-data-") as tmp:
        data = Path(data_dir) if data_dir is not None else write_demo_data(tmp, seed=seed)
        return train_diffusion(data, output_dir, seed=seed, log=log, **settings)


def train_demo_image_classifier(
    output_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    **overrides: Any,
):
    """Train the demo's image classifier (GA) on the training images of ``data_dir`` (default: the
    demo's synthetic data set, written to a temporary folder)."""
    settings = {**DEMO_CLASSIFIER_TRAINING, **overrides}
    with tempfile.TemporaryDirectory(prefix="brainvis-demo-data-") as tmp:
        data = Path(data_dir) if data_dir is not None else write_demo_data(tmp, seed=seed)
        return train_image_classifier(data, output_dir, seed=seed, log=log, **settings)


def weight_hashes(root: str | os.PathLike) -> dict[str, str]:
    """SHA-256 of every ``*.safetensors`` file under ``root`` (relative paths, sorted)."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*.safetensors"))}


_KEEP = {
    "diffusion": ("model_index.json", "vae", "text_encoder", "tokenizer", "unet", "scheduler", "metrics.json"),
    "image_classifier": ("config.json", "model.safetensors", "preprocessor_config.json", "metrics.json"),
}


def build_demo_weights(output_dir: str | os.PathLike, *, seed: int = 0, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the shipped demo weights into ``output_dir/{diffusion,image_classifier}`` and write
    ``output_dir/manifest.json``. Runs with one torch thread on the CPU (deterministic)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory(prefix="brainvis-demo-weights-") as tmp:
            tmp = Path(tmp)
            data = write_demo_data(tmp / "data", seed=seed)
            diffusion = train_demo_diffusion(tmp / "diffusion", data_dir=data, seed=seed, log=log, device="cpu")
            classifier = train_demo_image_classifier(tmp / "image_classifier", data_dir=data, seed=seed, log=log)
            for name, keep in _KEEP.items():
                target = output_dir / name
                shutil.rmtree(target, ignore_errors=True)
                target.mkdir()
                for entry in keep:
                    source = tmp / name / entry
                    if source.is_dir():
                        shutil.copytree(source, target / entry)
                    elif source.is_file():
                        shutil.copyfile(source, target / entry)
    finally:
        torch.set_num_threads(previous)
    manifest = {
        "command": "OMP_NUM_THREADS=1 python scripts/build_demo_weights.py --output DIR",
        "seed": seed,
        "data": DEMO_DATA,
        "diffusion_training": DEMO_DIFFUSION_TRAINING,
        "classifier_training": DEMO_CLASSIFIER_TRAINING,
        "diffusion_metrics": {k: v for k, v in diffusion.metrics.items() if "history" not in k},
        "classifier_metrics": {k: v for k, v in classifier.metrics.items() if "history" not in k},
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__, "python": platform.python_version()},
        "machine": platform.machine(),
        "sha256": weight_hashes(output_dir),
    }
    (output_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, allow_nan=False), encoding="utf-8")
    return manifest


__all__ = [
    "DEMO_CLASSIFIER_TRAINING",
    "DEMO_DATA",
    "DEMO_DIFFUSION_TRAINING",
    "DEMO_WEIGHTS_DIR",
    "build_demo_weights",
    "demo_diffusion_dir",
    "demo_image_classifier_dir",
    "load_demo_diffusion_components",
    "train_demo_diffusion",
    "train_demo_image_classifier",
    "weight_hashes",
    "write_demo_data",
]

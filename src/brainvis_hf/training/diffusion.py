"""Diffusion training stage: teach the pipeline's UNet the data set's images, conditioned on the
CLIP text embeddings of their class names.

``train_diffusion(data_dir, output_dir, ...)`` follows diffusers' ``train_text_to_image`` recipe:
latents from the VAE (scaled by ``vae.config.scaling_factor``), Gaussian noise added with the
training scheduler's ``add_noise`` at uniformly drawn timesteps, an MSE loss on the noise (or
``v``) the UNet predicts, AdamW with warm-up, gradient clipping, optional EMA
(``diffusers.training_utils.EMAModel``) and optional LoRA through PEFT on the UNet's attention
projections (``to_q``, ``to_k``, ``to_v``, ``to_out.0``). The prompt of an image is its class
words (``label_text``, the text of the alignment model's *coarse* CLIP target), encoded by the
pipeline's own (frozen) text encoder; a fraction of the prompts is replaced by the empty prompt
so that classifier-free guidance (the refinement stage's) works.

Two uses:

* ``init=SD_FOLDER`` adapts a Stable Diffusion v1.x model (e.g. v1.5) to the user's images, in
  full or with ``lora=True`` (then only the adapters are saved, as
  ``pytorch_lora_weights.safetensors``, loadable with ``StableDiffusionPipeline.load_lora_weights``).
* ``init=None`` trains from scratch, for the CPU demo: a small ``AutoencoderKL`` is first trained
  as an autoencoder on the images, then a small UNet; the text encoder is the tiny CLIP text model
  of :mod:`brainvis_hf.pipelines.tiny` (seed 0, the one the demo's CLIP targets use).

The output folder is a ``StableDiffusionPipeline`` folder (safetensors) -- pass it as
``stable_diffusion`` to :func:`brainvis_hf.pipelines.assemble.assemble_brainvis_pipeline` or load
it with :func:`load_diffusion_components` -- plus ``metrics.json`` (strict JSON),
``loss_curve.png``, ``samples.png`` (one image per class) and ``checkpoints/checkpoint-N`` folders
(safetensors + JSON, resumable with ``resume_from_checkpoint="last"``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from diffusers import AutoencoderKL
from diffusers.training_utils import EMAModel
from diffusers.utils import convert_state_dict_to_diffusers
from PIL import Image
from safetensors.torch import load_file, save_file

from ..pipelines.tiny import (
    build_sd15_scheduler,
    build_tiny_clip_text_model,
    build_tiny_clip_tokenizer,
    build_tiny_unet,
    build_tiny_vae,
)
from ..data.clip_targets import encode_texts
from ..data.prepare import load_prepared_dataset
from ..hub.upload import push_folder_to_hub
from ..plots import plot_diffusion_losses
from .stages import RunOptions, Stage, TrainingResult, UNET_ATTENTION_LORA

# Imported where used: `diffusers.StableDiffusionPipeline` (importing it loads every pipeline's
# image processors: seconds, and warnings without torchvision) and `peft` (seconds; LoRA runs only).

_logger = logging.getLogger(__name__)

LORA_TARGET_MODULES = UNET_ATTENTION_LORA.names
LORA_WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
LORA_INFO_NAME = "brainvis_diffusion_lora.json"
CHECKPOINTS_DIR = "checkpoints"
#: image side of the demo's synthetic images (``DemoSettings.image_size``)
DEMO_IMAGE_SIZE = 32


# ----------------------------------------------------------------------------------------------
# Small models for training from scratch
# ----------------------------------------------------------------------------------------------


def build_small_vae(seed: int = 0, image_size: int = DEMO_IMAGE_SIZE, block_out_channels: tuple[int, ...] = (16, 32)):
    """A small random ``AutoencoderKL``: 4 latent channels, scale factor ``2 ** (len(blocks) - 1)``
    (32 x 32 images -> 16 x 16 latents by default; 0.17 M parameters)."""
    return build_tiny_vae(seed, tuple(block_out_channels), norm_num_groups=8, sample_size=image_size)


def build_small_unet(
    seed: int = 0,
    sample_size: int = DEMO_IMAGE_SIZE // 2,
    cross_attention_dim: int = 32,
    block_out_channels: tuple[int, int] = (32, 64),
    pooled_text_conditioning: bool = True,
):
    """A small random ``UNet2DConditionModel`` with Stable Diffusion v1.x's block types
    (cross-attention on the lower resolution and in the middle block; 1 M parameters).

    ``pooled_text_conditioning`` adds diffusers' ``addition_embed_type="text"``: an attention
    pooling of the prompt embedding is added to the timestep embedding, so every ResNet block
    sees the prompt. The UNet still takes only ``encoder_hidden_states`` (the pipeline's inputs
    do not change); on the demo data the class is learnt several times faster with it.
    """
    return build_tiny_unet(
        seed, cross_attention_dim, sample_size, tuple(block_out_channels), attention_head_dim=8, norm_num_groups=8,
        addition_embed_type="text" if pooled_text_conditioning else None,
        addition_embed_type_num_heads=max(1, cross_attention_dim // 8),
    )


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


@dataclass
class ImageTextData:
    """The unique images of a prepared data set, as the diffusion stage uses them."""

    pixel_values: torch.Tensor  # (N, 3, H, W) float32 in [-1, 1]
    prompts: list[str]
    labels: np.ndarray  # (N,) int64
    image_names: list[str]
    class_names: dict[int, str] = field(default_factory=dict)


def _to_square(image, size: int):
    """Centre crop to a square and resize (bicubic) to ``size`` x ``size``, RGB."""
    image = image.convert("RGB")
    w, h = image.size
    side = min(w, h)
    if (w, h) != (side, side):
        left, top = (w - side) // 2, (h - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if side != size:
        image = image.resize((size, size), Image.BICUBIC)
    return image


def load_image_text_data(
    data_dir: str | os.PathLike, *, image_size: int, splits: Sequence[str] = ("train",)
) -> ImageTextData:
    """Unique images (by ``image_name``) of ``splits`` of a prepared data folder, with their class words.

    Raises:
        ValueError: when a split is missing or has no ``image`` column (prepare the data with an
            image root), naming the folder.
    """
    dataset_dict = load_prepared_dataset(data_dir)
    seen: dict[str, int] = {}
    pixels, prompts, labels, names = [], [], [], []
    class_names: dict[int, str] = {}
    for split in splits:
        if split not in dataset_dict:
            raise ValueError(f"{data_dir}: no split {split!r} (has {sorted(dataset_dict)})")
        ds = dataset_dict[split]
        if "image" not in ds.column_names:
            raise ValueError(
                f"{data_dir}: split {split!r} has no 'image' column; the diffusion stage trains on the stimulus "
                "images: prepare the data with an image root (brainvis data prepare --image-root DIR)"
            )
        ds = ds.select_columns(["image", "image_name", "label", "label_text"])
        for row in ds:
            name = row["image_name"]
            if name in seen:
                continue
            if row["image"] is None:
                raise ValueError(f"{data_dir}: split {split!r}: image {name!r} is missing (None)")
            seen[name] = len(names)
            array = np.asarray(_to_square(row["image"], image_size), dtype=np.float32)
            pixels.append(torch.from_numpy(array).permute(2, 0, 1) / 127.5 - 1.0)
            prompts.append(str(row["label_text"]))
            labels.append(int(row["label"]))
            names.append(name)
            class_names.setdefault(int(row["label"]), str(row["label_text"]))
    if not names:
        raise ValueError(f"{data_dir}: splits {list(splits)} hold no images")
    return ImageTextData(torch.stack(pixels), prompts, np.asarray(labels, dtype=np.int64), names, class_names)


@torch.no_grad()
def encode_prompts(prompts: Sequence[str], tokenizer, text_encoder, *, batch_size: int = 64) -> torch.Tensor:
    """Last hidden states ``(N, 77, D)`` of the text encoder, padded to the tokenizer's max length
    (what the pipeline's ``encode_prompt`` and the coarse CLIP targets compute)."""
    return encode_texts(list(prompts), tokenizer, text_encoder, batch_size=batch_size)


# ----------------------------------------------------------------------------------------------
# VAE (from scratch): trained briefly as an autoencoder
# ----------------------------------------------------------------------------------------------


def train_vae(
    vae,
    pixel_values: torch.Tensor,
    *,
    max_steps: int = 800,
    batch_size: int = 32,
    learning_rate: float = 2e-3,
    kl_weight: float = 1e-4,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``vae`` to reconstruct ``pixel_values`` (MSE + ``kl_weight`` x KL per latent element),
    with random flips and circular shifts as augmentation, then set ``scaling_factor`` so that
    the latents have unit standard deviation (Stable Diffusion's convention, 0.18215 for its VAE).

    Returns:
        ``{"loss_history": [...], "reconstruction_mse": ..., "scaling_factor": ...}``.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=learning_rate, weight_decay=0.0)
    vae.train()
    history = []
    n = len(pixel_values)
    for step in range(max_steps):
        lr = learning_rate * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / max_steps)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = pixel_values[torch.randint(0, n, (batch_size,), generator=generator)]
        if bool(torch.rand((), generator=generator) < 0.5):
            batch = batch.flip(-1)
        shifts = torch.randint(0, batch.shape[-1], (2,), generator=generator).tolist()
        batch = batch.roll(shifts=tuple(shifts), dims=(-2, -1))
        posterior = vae.encode(batch).latent_dist
        latents = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        reconstruction = vae.decode(latents).sample
        mse = torch.nn.functional.mse_loss(reconstruction, batch)
        kl = posterior.kl().mean() / latents[0].numel()
        loss = mse + kl_weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        if step % 50 == 0 or step == max_steps - 1:
            history.append({"step": step + 1, "vae_mse": float(mse.detach()), "vae_kl": float(kl.detach())})
            if log is not None and step % 200 == 0:
                log(f"      vae step {step + 1}/{max_steps}: mse {float(mse.detach()):.4f}")
    vae.eval()
    with torch.no_grad():
        means, mses = [], []
        for start in range(0, n, 64):
            batch = pixel_values[start : start + 64]
            posterior = vae.encode(batch).latent_dist
            means.append(posterior.mean)
            mses.append(torch.nn.functional.mse_loss(vae.decode(posterior.mean).sample, batch, reduction="sum"))
        latents = torch.cat(means)
        scaling = float(1.0 / latents.std())
        mse = float(sum(mses) / pixel_values.numel())
    vae.register_to_config(scaling_factor=scaling)
    return {"loss_history": history, "reconstruction_mse": mse, "scaling_factor": scaling}


# ----------------------------------------------------------------------------------------------
# Checkpoints (safetensors + JSON: nothing is unpickled on resume)
# ----------------------------------------------------------------------------------------------


def _optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().contiguous().clone()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_from_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for key, value in meta["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _trainable(unet) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in unet.named_parameters() if p.requires_grad}


def _save_checkpoint(folder: Path, *, unet, optimizer, ema, generator: torch.Generator, state: dict[str, Any]) -> None:
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous().clone() for k, v in _trainable(unet).items()}, str(tmp / "trainable.safetensors"))
    tensors, meta = _optimizer_to_tensors(optimizer)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "optimizer.json").write_text(json.dumps(meta, allow_nan=False), encoding="utf-8")
    if ema is not None:
        ema_state = ema.state_dict()
        save_file({str(i): p.detach().contiguous().clone() for i, p in enumerate(ema_state.pop("shadow_params"))},
                  str(tmp / "ema.safetensors"))
        (tmp / "ema.json").write_text(json.dumps(ema_state, allow_nan=False), encoding="utf-8")
    save_file({"generator": generator.get_state()}, str(tmp / "rng.safetensors"))
    (tmp / "state.json").write_text(json.dumps(state, indent=1, allow_nan=False), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def _load_checkpoint(folder: Path, *, unet, optimizer, ema, generator: torch.Generator) -> dict[str, Any]:
    trainable = _trainable(unet)
    saved = load_file(str(folder / "trainable.safetensors"))
    if set(saved) != set(trainable):
        raise ValueError(
            f"{folder}: the checkpoint's trainable parameters do not match this run's "
            f"({len(saved)} saved vs {len(trainable)}); resume with the same init/lora settings"
        )
    with torch.no_grad():
        for name, value in saved.items():
            trainable[name].copy_(value)
    _optimizer_from_tensors(
        optimizer, load_file(str(folder / "optimizer.safetensors")),
        json.loads((folder / "optimizer.json").read_text(encoding="utf-8")),
    )
    if ema is not None:
        if not (folder / "ema.safetensors").is_file():
            raise ValueError(f"{folder}: the checkpoint has no EMA state but this run uses EMA (use_ema=True)")
        shadow = load_file(str(folder / "ema.safetensors"))
        ema_state = json.loads((folder / "ema.json").read_text(encoding="utf-8"))
        ema_state["shadow_params"] = [shadow[str(i)] for i in range(len(shadow))]
        ema.load_state_dict(ema_state)
    generator.set_state(load_file(str(folder / "rng.safetensors"))["generator"])
    return json.loads((folder / "state.json").read_text(encoding="utf-8"))


def _last_checkpoint(output_dir: Path) -> Path | None:
    folders = [p for p in (output_dir / CHECKPOINTS_DIR).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return max(folders, key=lambda p: int(p.name.split("-")[-1])) if folders else None


# ----------------------------------------------------------------------------------------------
# The stage
# ----------------------------------------------------------------------------------------------


@dataclass
class DiffusionTrainingResult:
    """What :func:`train_diffusion` wrote and measured."""

    output_dir: Path
    metrics: dict[str, Any]
    loss_curve: Path | None
    samples: Path | None


def _load_init(init: str | os.PathLike):
    from diffusers import StableDiffusionPipeline

    try:
        sd = StableDiffusionPipeline.from_pretrained(
            str(init), safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"--init {init}: not a Stable Diffusion v1.x folder or repo ({err})") from err
    return {name: getattr(sd, name) for name in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}


def _from_scratch_components(image_size: int, seed: int, text_encoder_seed: int, vae_channels, unet_channels):
    tokenizer = build_tiny_clip_tokenizer()
    text_encoder = build_tiny_clip_text_model(seed=text_encoder_seed, tokenizer=tokenizer)
    vae = build_small_vae(seed=seed, image_size=image_size, block_out_channels=tuple(vae_channels))
    unet = build_small_unet(
        seed=seed + 1,
        sample_size=image_size // 2 ** (len(vae.config.block_out_channels) - 1),
        cross_attention_dim=text_encoder.config.hidden_size,
        block_out_channels=tuple(unet_channels),
    )
    return {"vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "unet": unet,
            "scheduler": build_sd15_scheduler()}


def _prepare_output_dir(output_dir: Path, resume: bool, overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"{output_dir} exists and is not a folder")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not resume:
        if not overwrite:
            raise FileExistsError(
                f"{output_dir} is not empty; pass resume_from_checkpoint='last' to continue its run, "
                "overwrite_output_dir=True to start afresh, or choose another folder"
            )
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)


def train_diffusion(
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    init: str | os.PathLike | None = None,
    lora: bool = False,
    lora_rank: int = 4,
    lora_alpha: int | None = None,
    max_steps: int = 3000,
    batch_size: int = 32,
    learning_rate: float | None = None,
    lr_warmup_steps: int = 100,
    weight_decay: float = 1e-2,
    max_grad_norm: float = 1.0,
    use_ema: bool = False,
    ema_decay: float = 0.999,
    conditioning_dropout: float = 0.1,
    prediction_type: str | None = None,
    image_size: int | None = None,
    splits: Sequence[str] = ("train",),
    vae_steps: int = 800,
    vae: str | os.PathLike | None = None,
    vae_block_out_channels: tuple[int, ...] = (16, 32),
    unet_block_out_channels: tuple[int, int] = (32, 64),
    seed: int = 0,
    text_encoder_seed: int = 0,
    save_steps: int = 500,
    logging_steps: int = 25,
    resume_from_checkpoint: str | os.PathLike | None = None,
    overwrite_output_dir: bool = False,
    sample_images: bool = True,
    device: str | torch.device | None = None,
    log: Callable[[str], None] | None = None,
) -> DiffusionTrainingResult:
    """Train (``init=None``) or fine-tune (``init=SD_FOLDER``) the UNet on a prepared data set's images.

    Args:
        data_dir: a prepared data folder with an ``image`` column (``brainvis data prepare
            --image-root``); each unique image is used once per epoch, prompted with its class words.
        output_dir: the run folder (see the module docstring).
        init: a Stable Diffusion v1.x folder or Hub id to adapt; ``None`` trains a small VAE
            (``vae_steps`` autoencoder steps) and UNet from scratch with the tiny CLIP text model.
        lora: train LoRA adapters (PEFT, rank ``lora_rank``) on the UNet's attention projections
            only and save just them (needs ``init``).
        max_steps: optimizer steps of the UNet.
        batch_size: images per step.
        learning_rate: AdamW learning rate (default 1e-3 from scratch, 1e-4 with LoRA, 1e-5 for a
            full fine-tune), constant after ``lr_warmup_steps`` linear warm-up steps.
        use_ema: keep an exponential moving average of the trained weights (``ema_decay``) and
            save it as the model.
        conditioning_dropout: fraction of prompts replaced by the empty prompt (for
            classifier-free guidance).
        prediction_type: ``"epsilon"`` or ``"v_prediction"``; default: the init's scheduler's
            (``epsilon`` for SD v1.5), ``v_prediction`` from scratch. With ``v`` the UNet
            predicts the image at high noise levels, where the colour and layout -- the class --
            are decided; with ``epsilon`` a small UNet learns the images but hardly the class.
            Written to the saved scheduler's config, so the pipeline samples accordingly.
        image_size: training resolution (default: the UNet's ``sample_size`` x the VAE's scale
            factor, 512 for SD v1.5; 32 from scratch).
        splits: the data set splits whose images are used (the test images stay unseen).
        seed: seeds the models built from scratch and all training randomness (one
            ``torch.Generator``, saved in checkpoints: a resumed run equals an uninterrupted one).
        vae: from scratch, a trained ``AutoencoderKL`` folder to use instead of training one.
        vae_block_out_channels, unet_block_out_channels: widths of the VAE and UNet built from
            scratch (multiples of 8; the VAE's scale factor is ``2 ** (len(...) - 1)``).
        text_encoder_seed: seed of the tiny CLIP text model (from scratch only).
        save_steps: write ``checkpoints/checkpoint-N`` every this many steps (and at the end).
        resume_from_checkpoint: ``"last"`` or a checkpoint folder to continue from.
        overwrite_output_dir: replace a non-empty ``output_dir``.
        sample_images: write ``samples.png``, one image generated per class prompt.
        device: where to train (default: CUDA when available).
        log: receives progress lines (default: silent).

    Returns:
        :class:`DiffusionTrainingResult`.
    """
    from diffusers import DDPMScheduler, StableDiffusionPipeline

    log = log or (lambda message: None)
    output_dir = Path(output_dir)
    data_dir = Path(data_dir)
    if lora and init is None:
        raise ValueError("lora=True adapts a pretrained UNet: pass init=SD_FOLDER (LoRA on a random UNet learns little)")
    if max_steps < 1 or batch_size < 1 or save_steps < 1:
        raise ValueError(f"max_steps, batch_size and save_steps must be >= 1; got {max_steps}, {batch_size}, {save_steps}")
    if not 0.0 <= conditioning_dropout < 1.0:
        raise ValueError(f"conditioning_dropout must be in [0, 1); got {conditioning_dropout}")
    if not data_dir.is_dir():
        raise FileNotFoundError(f"--data {data_dir}: no such folder")
    resume = resume_from_checkpoint not in (None, False, "")
    _prepare_output_dir(output_dir, resume, overwrite_output_dir)
    checkpoint = None
    if resume:
        if str(resume_from_checkpoint) in ("last", "latest", "True", "true"):
            checkpoint = _last_checkpoint(output_dir)
            if checkpoint is None:
                raise FileNotFoundError(f"resume_from_checkpoint=last: no checkpoint in {output_dir / CHECKPOINTS_DIR}")
        else:
            checkpoint = Path(resume_from_checkpoint)
            if not (checkpoint / "state.json").is_file():
                raise FileNotFoundError(f"resume_from_checkpoint={checkpoint}: not a checkpoint folder (no state.json)")
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    learning_rate = learning_rate if learning_rate is not None else (1e-3 if init is None else 1e-4 if lora else 1e-5)
    started = time.perf_counter()

    # components -------------------------------------------------------------------------------
    if init is None:
        components = _from_scratch_components(
            image_size or DEMO_IMAGE_SIZE, seed, text_encoder_seed, vae_block_out_channels, unet_block_out_channels
        )
    else:
        components = _load_init(init)
    if vae is not None:
        if init is not None:
            raise ValueError("vae= replaces the VAE of a model trained from scratch; with init=SD_FOLDER the init's VAE is used")
        components["vae"] = AutoencoderKL.from_pretrained(str(vae))
    vae_given = vae is not None
    vae, text_encoder, tokenizer, unet = (components[k] for k in ("vae", "text_encoder", "tokenizer", "unet"))
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    image_size = image_size or unet.config.sample_size * scale
    if image_size % scale:
        raise ValueError(f"image_size={image_size} is not a multiple of the VAE's scale factor {scale}")
    data = load_image_text_data(data_dir, image_size=image_size, splits=splits)
    log(f"      {len(data.prompts)} images of {len(data.class_names)} classes at {image_size} x {image_size}")

    # VAE: trained as an autoencoder first (from scratch), saved once, reused on resume
    vae_metrics: dict[str, Any] = {}
    vae_dir = output_dir / CHECKPOINTS_DIR / "vae"
    if init is None and not vae_given:
        if (vae_dir / "vae_metrics.json").is_file():
            vae = AutoencoderKL.from_pretrained(vae_dir)
            vae_metrics = json.loads((vae_dir / "vae_metrics.json").read_text(encoding="utf-8"))
        else:
            log(f"      training the VAE as an autoencoder ({vae_steps} steps)")
            vae_metrics = train_vae(vae, data.pixel_values, max_steps=vae_steps, seed=seed, log=log)
            vae.save_pretrained(vae_dir, safe_serialization=True)
            (vae_dir / "vae_metrics.json").write_text(json.dumps(vae_metrics, allow_nan=False), encoding="utf-8")
        components["vae"] = vae
    vae.requires_grad_(False).eval().to(device)
    text_encoder.requires_grad_(False).eval().to(device)

    # cached latent distributions and prompt embeddings (frozen VAE and text encoder)
    with torch.no_grad():
        means, stds = [], []
        for start in range(0, len(data.pixel_values), 16):
            posterior = vae.encode(data.pixel_values[start : start + 16].to(device)).latent_dist
            means.append(posterior.mean.cpu())
            stds.append(posterior.std.cpu())
        latent_mean, latent_std = torch.cat(means), torch.cat(stds)
        unique_prompts = sorted(set(data.prompts))
        embeds = encode_prompts(unique_prompts + [""], tokenizer, text_encoder)
        prompt_index = torch.tensor([unique_prompts.index(p) for p in data.prompts])
        empty_index = len(unique_prompts)
    scaling_factor = float(vae.config.scaling_factor)

    # UNet: full or LoRA ----------------------------------------------------------------------
    unet.to(device)
    if lora:
        from peft import LoraConfig

        unet.requires_grad_(False)
        unet.add_adapter(LoraConfig(
            r=lora_rank, lora_alpha=lora_alpha or lora_rank, init_lora_weights="gaussian",
            target_modules=list(LORA_TARGET_MODULES),
        ))
    else:
        unet.requires_grad_(True)
    unet.train()
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    ema = None
    if use_ema:
        ema = EMAModel(params, decay=ema_decay)
    if prediction_type is None:
        prediction_type = "v_prediction" if init is None else components["scheduler"].config.prediction_type
    if prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction'; got {prediction_type!r}")
    components["scheduler"] = type(components["scheduler"]).from_config(
        components["scheduler"].config, prediction_type=prediction_type
    )
    noise_scheduler = DDPMScheduler.from_config(components["scheduler"].config)
    generator = torch.Generator().manual_seed(seed + 2)

    step, history = 0, []
    if checkpoint is not None:
        state = _load_checkpoint(checkpoint, unet=unet, optimizer=optimizer, ema=ema, generator=generator)
        step, history = int(state["step"]), list(state["log_history"])
        log(f"      resumed from {checkpoint} at step {step}")
    if ema is not None:
        ema.to(device)

    n = len(data.prompts)
    running, count = 0.0, 0
    while step < max_steps:
        lr = learning_rate * min(1.0, (step + 1) / max(lr_warmup_steps, 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        index = torch.randint(0, n, (batch_size,), generator=generator)
        latents = (latent_mean[index] + latent_std[index] * torch.randn(latent_mean[index].shape, generator=generator))
        latents = latents * scaling_factor
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (batch_size,), generator=generator)
        drop = torch.rand(batch_size, generator=generator) < conditioning_dropout
        cond = embeds[torch.where(drop, torch.full_like(prompt_index[index], empty_index), prompt_index[index])]
        latents, noise, timesteps, cond = latents.to(device), noise.to(device), timesteps.to(device), cond.to(device)
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        target = noise if prediction_type == "epsilon" else noise_scheduler.get_velocity(latents, noise, timesteps)
        prediction = unet(noisy, timesteps, cond).sample
        loss = torch.nn.functional.mse_loss(prediction.float(), target.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        if ema is not None:
            ema.step(params)
        step += 1
        running += float(loss.detach())
        count += 1
        if step % logging_steps == 0 or step == max_steps:
            history.append({"step": step, "loss": running / count, "learning_rate": lr})
            running, count = 0.0, 0
            if step % (logging_steps * 10) == 0 or step == max_steps:
                log(f"      unet step {step}/{max_steps}: loss {history[-1]['loss']:.4f}")
        if step % save_steps == 0 or step == max_steps:
            _save_checkpoint(
                output_dir / CHECKPOINTS_DIR / f"checkpoint-{step}", unet=unet, optimizer=optimizer, ema=ema,
                generator=generator, state={"step": step, "log_history": history},
            )
    unet.eval()
    if ema is not None:
        ema.copy_to(params)

    # save --------------------------------------------------------------------------------------

    scheduler = components["scheduler"]
    if lora:
        from peft.utils import get_peft_model_state_dict

        StableDiffusionPipeline.save_lora_weights(
            save_directory=str(output_dir),
            unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)),
            safe_serialization=True,
        )
        info = {"base_model": str(init), "rank": lora_rank, "alpha": lora_alpha or lora_rank,
                "target_modules": list(LORA_TARGET_MODULES)}
        (output_dir / LORA_INFO_NAME).write_text(json.dumps(info, indent=1, allow_nan=False), encoding="utf-8")
    else:
        pipe = StableDiffusionPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
        pipe.save_pretrained(output_dir, safe_serialization=True)

    losses = [h["loss"] for h in history]
    head = losses[: max(1, len(losses) // 10)]
    tail = losses[-max(1, len(losses) // 10) :]
    metrics = {
        "stage": "diffusion",
        "init": None if init is None else str(init),
        "lora": lora,
        "use_ema": use_ema,
        "global_step": step,
        "num_images": n,
        "num_classes": len(data.class_names),
        "image_size": image_size,
        "prompts": "class words (label_text)",
        "prediction_type": prediction_type,
        "conditioning_dropout": conditioning_dropout,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "loss_first": float(np.mean(head)) if losses else None,
        "loss_last": float(np.mean(tail)) if losses else None,
        "trainable_parameters": int(sum(p.numel() for p in params)),
        "unet_parameters": int(sum(p.numel() for p in unet.parameters())),
        "seed": seed,
        "train_runtime_s": round(time.perf_counter() - started, 2),
        "vae": {k: v for k, v in vae_metrics.items() if k != "loss_history"},
        "log_history": history,
        "vae_log_history": vae_metrics.get("loss_history", []),
        "torch_version": torch.__version__,
    }
    curve = _plot_losses(history, vae_metrics.get("loss_history", []), output_dir / "loss_curve.png")
    samples = None
    if sample_images and not lora:
        samples = _sample_grid(
            vae, text_encoder, tokenizer, unet, scheduler, data.class_names, output_dir / "samples.png", seed=seed,
            device=device,
        )
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, allow_nan=False), encoding="utf-8")
    return DiffusionTrainingResult(output_dir=output_dir, metrics=metrics, loss_curve=curve, samples=samples)


def _plot_losses(history: list[dict[str, Any]], vae_history: list[dict[str, Any]], path: Path) -> Path | None:
    try:
        return plot_diffusion_losses(history, vae_history, path)
    except ImportError:  # matplotlib is in the `train` extra
        return None


@torch.no_grad()
def generate_from_prompts(
    components: dict[str, Any],
    prompts: Sequence[str] | None = None,
    *,
    prompt_embeds: torch.Tensor | None = None,
    num_inference_steps: int = 50,
    guidance_scale: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
) -> np.ndarray:
    """Images ``(N, H, W, 3)`` uint8 from text prompts or prompt embeddings, with
    ``StableDiffusionPipeline`` on the given components (one generator per image, seeds
    ``seed, seed + 1, ...``). A quick check of what the UNet learned."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        **{k: components[k] for k in ("vae", "text_encoder", "tokenizer", "unet")},
        scheduler=type(components["scheduler"]).from_config(components["scheduler"].config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    if prompt_embeds is None:
        prompt_embeds = encode_prompts(list(prompts), components["tokenizer"], components["text_encoder"])
    negative = None
    if guidance_scale > 1:
        negative = encode_prompts([""], components["tokenizer"], components["text_encoder"]).expand_as(prompt_embeds)
    out = []
    for start in range(0, len(prompt_embeds), batch_size):
        chunk = prompt_embeds[start : start + batch_size]
        generators = [torch.Generator().manual_seed(seed + start + i) for i in range(len(chunk))]
        images = pipe(
            prompt_embeds=chunk, negative_prompt_embeds=None if negative is None else negative[start : start + len(chunk)],
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, generator=generators,
            output_type="np",
        ).images
        out.append((np.clip(images, 0, 1) * 255).round().astype(np.uint8))
    return np.concatenate(out)


def _sample_grid(vae, text_encoder, tokenizer, unet, scheduler, class_names, path: Path, *, seed: int, device) -> Path:
    prompts = [class_names[k] for k in sorted(class_names)]
    components = {"vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "unet": unet, "scheduler": scheduler}
    images = generate_from_prompts(components, prompts, num_inference_steps=25, seed=seed)
    cols = min(10, len(images))
    rows = math.ceil(len(images) / cols)
    h, w = images.shape[1:3]
    sheet = np.full((rows * (h + 2), cols * (w + 2), 3), 255, dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        sheet[r * (h + 2) : r * (h + 2) + h, c * (w + 2) : c * (w + 2) + w] = image
    zoom = max(1, 128 // h)
    Image.fromarray(sheet).resize((sheet.shape[1] * zoom, sheet.shape[0] * zoom), Image.NEAREST).save(path)
    return path


def load_diffusion_components(folder: str | os.PathLike, *, base_model: str | os.PathLike | None = None) -> dict[str, Any]:
    """``vae / text_encoder / tokenizer / unet / scheduler`` of a :func:`train_diffusion` output.

    A full run's folder is a ``StableDiffusionPipeline`` folder; a LoRA run's adapters are loaded
    onto ``base_model`` (default: the base recorded at training time) and fused into the UNet.
    """
    from diffusers import StableDiffusionPipeline

    folder = Path(folder)
    kwargs = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if (folder / LORA_WEIGHTS_NAME).is_file():
        info = json.loads((folder / LORA_INFO_NAME).read_text(encoding="utf-8")) if (folder / LORA_INFO_NAME).is_file() else {}
        base = base_model or info.get("base_model")
        if base is None:
            raise ValueError(f"{folder}: LoRA adapters without a base model; pass base_model=SD_FOLDER")
        sd = StableDiffusionPipeline.from_pretrained(str(base), **kwargs)
        sd.load_lora_weights(str(folder))
        sd.fuse_lora()
        sd.unload_lora_weights()
    elif (folder / "model_index.json").is_file():
        sd = StableDiffusionPipeline.from_pretrained(str(folder), **kwargs)
    else:
        raise FileNotFoundError(f"{folder}: neither a Stable Diffusion folder (model_index.json) nor LoRA adapters ({LORA_WEIGHTS_NAME})")
    return {name: getattr(sd, name) for name in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}


__all__ = [
    "DiffusionTrainingResult",
    "ImageTextData",
    "build_small_unet",
    "build_small_vae",
    "encode_prompts",
    "generate_from_prompts",
    "load_diffusion_components",
    "load_image_text_data",
    "train_diffusion",
    "train_vae",
]


# ----------------------------------------------------------------------------------------------
# `brainvis train diffusion`: the stage's runner (its Stage entry names it)
# ----------------------------------------------------------------------------------------------

#: ``TrainingArguments`` names the diffusion stage understands -> its :func:`train_diffusion` keyword
_TRAINER_NAMES = {
    "max_steps": "max_steps",
    "per_device_train_batch_size": "batch_size",
    "learning_rate": "learning_rate",
    "warmup_steps": "lr_warmup_steps",
    "weight_decay": "weight_decay",
    "max_grad_norm": "max_grad_norm",
    "save_steps": "save_steps",
    "logging_steps": "logging_steps",
}
#: :func:`train_diffusion` keywords a ``--training-arg NAME=VALUE`` may set directly
_OWN_NAMES = ("use_ema", "ema_decay", "conditioning_dropout", "prediction_type", "image_size", "splits", "vae_steps",
              "vae", "vae_block_out_channels", "unet_block_out_channels", "text_encoder_seed", "sample_images")


def run_diffusion_stage(stage: Stage, data_dir: Path, output_dir: Path, options: RunOptions) -> TrainingResult:
    """``train_stage("diffusion", ...)``: :func:`train_diffusion` with the options every stage takes.

    ``--init`` (0 or 1) is the Stable Diffusion model to adapt, ``--lora`` / ``--lora-r`` /
    ``--lora-alpha`` its adapters, ``--seed``, ``--resume-from-checkpoint``, ``--overwrite-output``
    and ``--push-to-hub`` mean what they mean for the other stages. Trainer options map to their
    :func:`train_diffusion` counterparts (``--max-steps``, ``--per-device-train-batch-size``,
    ``--learning-rate``, ``--warmup-steps``, ...; ``--use-cpu`` trains on the CPU); its other
    keywords can be given with ``--training-arg`` (e.g. ``use_ema=true``). Options that have no
    meaning here (``--preset`` other than the default, ``--config``, ``--training-config``, the
    paper protocol, ``--merge-lora``, ...) are an error naming them.
    """
    stage.check_init_count(options.init)
    defaults = RunOptions()
    unused = [flag for flag, value, default in (
        ("--preset", options.preset, defaults.preset), ("--config", options.config, None),
        ("--training-config", options.training_config, None), ("--protocol", options.protocol, defaults.protocol),
        ("--lora-dropout", options.lora_dropout, defaults.lora_dropout), ("--merge-lora", options.merge_lora, False),
        ("--linear-probe-every", options.linear_probe_every_n_epochs, None),
    ) if value != default]
    if options.callbacks:
        unused.append("callbacks (TrainerCallback)")
    if unused:
        raise ValueError(f"Stage {stage.name!r} does not take {', '.join(unused)} (see docs/diffusion-training.md)")
    kwargs: dict[str, Any] = {}
    unknown = []
    for name, value in options.training_overrides.items():
        if name in _TRAINER_NAMES:
            kwargs[_TRAINER_NAMES[name]] = int(value) if name in ("max_steps", "save_steps", "logging_steps") else value
        elif name in _OWN_NAMES:
            kwargs[name] = value
        elif name == "use_cpu":
            kwargs["device"] = "cpu" if value else None
        elif name not in ("report_to", "disable_tqdm"):
            unknown.append(name)
    if unknown:
        raise ValueError(
            f"Stage {stage.name!r} does not take the training option(s) {unknown}; it takes "
            f"{sorted([*_TRAINER_NAMES, *_OWN_NAMES, 'use_cpu'])}"
        )
    resume = options.resume_from_checkpoint
    result = train_diffusion(
        data_dir, output_dir, init=options.init[0] if options.init else None, lora=options.lora,
        lora_rank=options.lora_r, lora_alpha=options.lora_alpha, seed=options.seed,
        resume_from_checkpoint="last" if resume is True else resume, overwrite_output_dir=options.overwrite_output,
        log=_logger.info, **kwargs,
    )
    metrics = dict(result.metrics)
    if options.push_to_hub:
        metrics["hub_commit"] = push_folder_to_hub(
            output_dir, options.push_to_hub, private=options.hub_private, token=options.hub_token,
            commit_message=f"brainvis train {stage.name}", ignore_patterns=(f"{CHECKPOINTS_DIR}/**", "*.tmp"),
        )
    return TrainingResult(output_dir=result.output_dir, stage=stage.name, metrics=metrics, model=None, trainer=None)

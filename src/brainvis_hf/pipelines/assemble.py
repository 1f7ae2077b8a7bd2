"""Assemble a :class:`BrainVisPipeline` from an alignment model and a Stable Diffusion v1.x model."""

from __future__ import annotations

import os
from typing import Any

import torch


def _load_eeg_encoder(eeg_encoder, torch_dtype, **hub_kwargs):
    if not isinstance(eeg_encoder, (str, os.PathLike)):
        return eeg_encoder
    from ..models import BrainVisForCLIPAlignment

    kwargs = dict(hub_kwargs)
    if torch_dtype is not None:
        kwargs["dtype"] = torch_dtype
    return BrainVisForCLIPAlignment.from_pretrained(eeg_encoder, **kwargs)


def assemble_brainvis_pipeline(
    eeg_encoder,
    stable_diffusion,
    *,
    scheduler=None,
    torch_dtype: torch.dtype | None = None,
    pipeline_class=None,
    **hub_kwargs: Any,
):
    """Build a :class:`BrainVisPipeline` from an alignment model and Stable Diffusion v1.x weights.

    Args:
        eeg_encoder: a ``BrainVisForCLIPAlignment`` or a folder / Hub repo id of one.
        stable_diffusion: a ``StableDiffusionPipeline`` or a folder / Hub repo id in the diffusers
            layout (``vae/``, ``text_encoder/``, ``tokenizer/``, ``unet/``, ``scheduler/``), e.g.
            ``"stable-diffusion-v1-5/stable-diffusion-v1-5"``. Its safety checker is not loaded.
        scheduler: a scheduler to use instead of the Stable Diffusion model's (SD v1.5 ships the
            PLMS ``PNDMScheduler`` the paper uses).
        torch_dtype: dtype to load every model in (e.g. ``torch.float16`` on a GPU).
        pipeline_class: the class to build (default :class:`BrainVisPipeline`).
        **hub_kwargs: passed to every ``from_pretrained`` (``revision``, ``cache_dir``, ``token``...).

    Raises:
        ValueError: when the alignment model's ``prompt_embed_dim`` is not the UNet's
            ``cross_attention_dim`` (e.g. an SD v2 model, 1024, with a 768-wide encoder).
    """
    from diffusers import StableDiffusionPipeline

    from .pipeline_brainvis import BrainVisPipeline

    pipeline_class = pipeline_class or BrainVisPipeline
    encoder = _load_eeg_encoder(eeg_encoder, torch_dtype, **hub_kwargs)
    if isinstance(stable_diffusion, (str, os.PathLike)):
        load_kwargs = dict(hub_kwargs, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        if torch_dtype is not None:
            load_kwargs["dtype"] = torch_dtype
        stable_diffusion = StableDiffusionPipeline.from_pretrained(stable_diffusion, **load_kwargs)
    for name in ("vae", "text_encoder", "tokenizer", "unet", "scheduler"):
        if getattr(stable_diffusion, name, None) is None:
            raise ValueError(f"The Stable Diffusion model has no `{name}` component; expected an SD v1.x pipeline.")
    return pipeline_class(
        eeg_encoder=encoder,
        vae=stable_diffusion.vae,
        text_encoder=stable_diffusion.text_encoder,
        tokenizer=stable_diffusion.tokenizer,
        unet=stable_diffusion.unet,
        scheduler=scheduler if scheduler is not None else stable_diffusion.scheduler,
    )

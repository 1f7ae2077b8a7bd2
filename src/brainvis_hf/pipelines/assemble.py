"""Load the six components of a :class:`BrainVisPipeline` from an alignment model and Stable Diffusion v1.x.

:meth:`BrainVisPipeline.from_alignment_and_sd` builds the pipeline from what this returns; this
module does not import the pipeline, so the dependency runs one way (pipeline -> assemble).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..models.modeling_brainvis import BrainVisForCLIPAlignment

COMPONENT_NAMES = ("vae", "text_encoder", "tokenizer", "unet", "scheduler")


def _load_eeg_encoder(eeg_encoder, torch_dtype, **hub_kwargs):
    if not isinstance(eeg_encoder, (str, os.PathLike)):
        return eeg_encoder
    kwargs = dict(hub_kwargs)
    if torch_dtype is not None:
        kwargs["dtype"] = torch_dtype
    return BrainVisForCLIPAlignment.from_pretrained(eeg_encoder, **kwargs)


def load_alignment_and_sd_components(
    eeg_encoder,
    stable_diffusion,
    *,
    scheduler=None,
    torch_dtype: torch.dtype | None = None,
    **hub_kwargs: Any,
) -> dict[str, Any]:
    """Load the components of a :class:`BrainVisPipeline` (its ``__init__`` keyword arguments).

    Args:
        eeg_encoder: a ``BrainVisForCLIPAlignment`` or a folder / Hub repo id of one.
        stable_diffusion: a ``StableDiffusionPipeline`` or a folder / Hub repo id in the diffusers
            layout (``vae/``, ``text_encoder/``, ``tokenizer/``, ``unet/``, ``scheduler/``), e.g.
            ``"stable-diffusion-v1-5/stable-diffusion-v1-5"``. Its safety checker is not loaded.
        scheduler: a scheduler to use instead of the Stable Diffusion model's (SD v1.5 ships the
            PLMS ``PNDMScheduler`` the paper uses).
        torch_dtype: dtype to load every model in (e.g. ``torch.float16`` on a GPU).
        **hub_kwargs: passed to every ``from_pretrained`` (``revision``, ``cache_dir``, ``token``...).

    Raises:
        ValueError: when the Stable Diffusion model lacks one of the components. (The pipeline's
            ``__init__`` then checks that the alignment model's ``prompt_embed_dim`` is the UNet's
            ``cross_attention_dim``, e.g. it refuses an SD v2 model, 1024, with a 768-wide encoder.)
    """
    # lazy: importing StableDiffusionPipeline loads diffusers' whole SD family (and its warnings)
    from diffusers import StableDiffusionPipeline

    encoder = _load_eeg_encoder(eeg_encoder, torch_dtype, **hub_kwargs)
    if isinstance(stable_diffusion, (str, os.PathLike)):
        load_kwargs = dict(hub_kwargs, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        if torch_dtype is not None:
            load_kwargs["dtype"] = torch_dtype
        stable_diffusion = StableDiffusionPipeline.from_pretrained(stable_diffusion, **load_kwargs)
    for name in COMPONENT_NAMES:
        if getattr(stable_diffusion, name, None) is None:
            raise ValueError(f"The Stable Diffusion model has no `{name}` component; expected an SD v1.x pipeline.")
    components = {name: getattr(stable_diffusion, name) for name in COMPONENT_NAMES}
    if scheduler is not None:
        components["scheduler"] = scheduler
    return {"eeg_encoder": encoder, **components}

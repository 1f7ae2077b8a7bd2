# Copyright 2026 brainvis-hf contributors. Apache-2.0.
#
# Structure follows diffusers' StableDiffusionPipeline / StableDiffusionImg2ImgPipeline
# (check_inputs, encode_prompt, prepare_latents, get_timesteps, denoising loop, decode).
"""``BrainVisPipeline``: cascaded EEG -> image generation with one Stable Diffusion v1.x UNet/VAE.

Stage 1 conditions the UNet on the 77 x D prompt embedding that the BrainVis alignment model
predicts from an EEG recording (PLMS, 50 steps, no guidance by default). Stage 2 refines every
stage-1 image by image-to-image diffusion prompted with the predicted class words (strength
0.85, guidance 7.5, 100 steps). Both stages share the UNet and VAE, and all EEG x samples go
through the UNet together, in chunks of ``max_batch_size`` rows.

diffusers conventions (docs/pipeline.md): ``num_images_per_prompt`` (the old name
``num_images_per_eeg`` is a deprecated alias), ``generator`` as in ``StableDiffusionPipeline``,
precomputed ``prompt_embeds`` / ``negative_prompt_embeds``, optional text encoder and tokenizer,
and one step counter across both stages for ``callback_on_step_end``.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import PIL.Image
import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import VaeImageProcessor
from diffusers.models import AutoencoderKL, UNet2DConditionModel
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import BaseOutput, logging
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTextModel, CLIPTokenizer

from .assemble import load_alignment_and_sd_components

logger = logging.get_logger(__name__)

OUTPUT_TYPES = ("pil", "np", "pt", "latent")
STAGES = ("stage1", "refine")

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from brainvis_hf import BrainVisPipeline

        >>> pipe = BrainVisPipeline.from_pretrained("path/to/brainvis-pipeline").to("cuda")
        >>> eeg = torch.randn(2, 128, 440)  # two recordings, already cut to the 440-sample window
        >>> out = pipe(eeg, num_images_per_prompt=4, generator=torch.Generator().manual_seed(0))
        >>> out.predicted_labels, len(out.images)  # class words, 8 images (EEG-major)
        ```
"""


@dataclass
class BrainVisPipelineOutput(BaseOutput):
    """Output of :class:`BrainVisPipeline`.

    Args:
        images: the final (refined) images, ``batch_size * num_images_per_prompt`` of them in
            EEG-major order (all samples of EEG 0, then EEG 1, ...): a list of PIL images, a
            NumPy array ``(N, H, W, 3)`` in [0, 1], a tensor ``(N, 3, H, W)`` in [0, 1], or the
            latents ``(N, 4, h, w)``, following ``output_type``.
        stage1_images: the stage-1 images in the same order and format, when
            ``return_stage1_images=True`` and refinement ran; else ``None``.
        predicted_label_ids: ``(batch_size,)`` int64, the classifier's arg-max per EEG.
        predicted_labels: the class words of those ids (``eeg_encoder.config.id2label``).
        predicted_probs: ``(batch_size, num_labels)`` float32 class probabilities.
            The three ``predicted_*`` fields are ``None`` when ``prompt_embeds`` were given
            instead of EEG (the EEG encoder did not run).
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    stage1_images: list[PIL.Image.Image] | np.ndarray | torch.Tensor | None = None
    predicted_label_ids: np.ndarray | None = None
    predicted_labels: list[str] | None = None
    predicted_probs: np.ndarray | None = None


# Adapted from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img.retrieve_latents
def retrieve_latents(encoder_output, generator=None, sample_mode: str = "sample") -> torch.Tensor:
    if hasattr(encoder_output, "latent_dist") and sample_mode == "sample":
        return encoder_output.latent_dist.sample(generator)
    if hasattr(encoder_output, "latent_dist") and sample_mode == "argmax":
        return encoder_output.latent_dist.mode()
    if hasattr(encoder_output, "latents"):
        return encoder_output.latents
    raise AttributeError("Could not access latents of provided encoder_output")


def _chunks(total: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, total)) for start in range(0, total, size)]


def _is_mne_epochs(obj) -> bool:
    """True for ``mne.Epochs`` / ``mne.EpochsArray``, without importing MNE (an optional extra)."""
    return any(c.__name__ == "BaseEpochs" and c.__module__.startswith("mne.") for c in type(obj).__mro__)


def _is_mne_raw_and_events(obj) -> bool:
    """True for a ``(mne.io.Raw, events)`` pair, without importing MNE."""
    return (
        isinstance(obj, tuple) and len(obj) == 2
        and any(c.__name__ == "BaseRaw" and c.__module__.startswith("mne.") for c in type(obj[0]).__mro__)
    )  # fmt: skip


class BrainVisPipeline(DiffusionPipeline):
    r"""Cascaded EEG -> image pipeline of BrainVis (Fu et al., ICASSP 2025).

    Args:
        eeg_encoder ([`BrainVisForCLIPAlignment`]): predicts a ``prompt_sequence_length x
            prompt_embed_dim`` prompt embedding and class logits from EEG (``eeg_values``).
        vae ([`AutoencoderKL`]): Stable Diffusion's VAE (both stages).
        text_encoder ([`~transformers.CLIPTextModel`], *optional*): encodes the refinement
            prompts and the empty prompt (the unconditional branch of classifier-free guidance).
            Optional: it is unused when refinement is off and ``guidance_scale <= 1``, or when
            the text embeddings are passed precomputed.
        tokenizer ([`~transformers.CLIPTokenizer`], *optional*): the text encoder's tokenizer.
        unet ([`UNet2DConditionModel`]): Stable Diffusion's UNet (both stages); its
            ``cross_attention_dim`` must equal the encoder's ``prompt_embed_dim``.
        scheduler ([`SchedulerMixin`]): the sampler of both stages; the paper uses PLMS
            ([`PNDMScheduler`] with SD v1.5's configuration). Any diffusers scheduler of the
            Stable Diffusion family can be swapped in with ``Scheduler.from_config``.
    """

    model_cpu_offload_seq = "eeg_encoder->text_encoder->unet->vae"
    _optional_components = ["text_encoder", "tokenizer"]
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(
        self,
        eeg_encoder,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel | None,
        tokenizer: CLIPTokenizer | None,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
    ):
        super().__init__()
        self.check_components(eeg_encoder, text_encoder, unet)
        self.register_modules(
            eeg_encoder=eeg_encoder,
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
        )
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1) if getattr(self, "vae", None) else 8
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)

    # ------------------------------------------------------------------ loading / assembling
    @classmethod
    def from_alignment_and_sd(cls, eeg_encoder, stable_diffusion, **kwargs) -> "BrainVisPipeline":
        """Assemble a pipeline from an alignment model and any Stable Diffusion v1.x folder or repo.

        See :func:`brainvis_hf.pipelines.assemble.load_alignment_and_sd_components` for the arguments.
        """
        return cls(**load_alignment_and_sd_components(eeg_encoder, stable_diffusion, **kwargs))

    @staticmethod
    def check_components(eeg_encoder, text_encoder, unet) -> None:
        """Raise a ``ValueError`` when the prompt-embedding widths of the parts disagree."""
        if unet is None:
            return
        cross = unet.config.cross_attention_dim
        if eeg_encoder is not None:
            width = getattr(eeg_encoder.config, "prompt_embed_dim", None)
            if width is not None and width != cross:
                raise ValueError(
                    f"The EEG encoder predicts prompt embeddings of width {width} "
                    f"(eeg_encoder.config.prompt_embed_dim) but the UNet's cross_attention_dim is {cross}; "
                    "use an alignment model trained for this Stable Diffusion version (SD v1.x: 768)."
                )
        if text_encoder is not None and text_encoder.config.hidden_size != cross:
            raise ValueError(
                f"The text encoder's hidden_size is {text_encoder.config.hidden_size} but the UNet's "
                f"cross_attention_dim is {cross}; they must come from the same Stable Diffusion model."
            )

    # ------------------------------------------------------------------ properties
    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 1

    @property
    def stage(self) -> str:
        """``"stage1"`` or ``"refine"``: the stage being denoised (for step-end callbacks)."""
        return self._stage

    @property
    def num_timesteps(self) -> int:
        """Denoising steps of the whole call: stage 1 plus refinement (the callback's ``step``
        runs from 0 to ``num_timesteps - 1`` across both stages)."""
        return self._num_timesteps

    @property
    def stage_start_step(self) -> int:
        """The call-wide step index of the current stage's first step (0 in stage 1)."""
        return self._stage_start_step

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    @property
    def eeg_input_layout(self) -> tuple[int, int, tuple[int, int]]:
        """``(num_channels, num_samples, (window_start, window_end))`` the encoder expects."""
        config = self.eeg_encoder.config
        time_config = getattr(config, "time_config", None)
        num_channels = getattr(time_config, "num_channels", None) or getattr(config, "num_channels")
        num_samples = getattr(time_config, "num_samples", None) or getattr(config, "num_samples")
        window = tuple(int(v) for v in getattr(config, "eeg_time_window", (0, num_samples)))
        return int(num_channels), int(num_samples), window

    # ------------------------------------------------------------------ inputs
    def prepare_eeg_values(self, eeg_values) -> torch.Tensor:
        """Validate EEG input and return it as a float ``B x C x T`` tensor cut to the window.

        Accepts one recording ``(C, T)`` or a batch ``(B, C, T)`` as a tensor or NumPy array, a
        Python list of ``(C, T)`` recordings (they may differ in length before the cut), or an
        ``mne.Epochs`` object (channels picked by name, resampled and cropped to the model by
        :func:`brainvis_hf.data.mne_io.epochs_to_eeg_values`), or a ``(mne.io.Raw, events)`` pair
        (an MNE events array; epochs are cut around each event). Recordings already
        ``num_samples`` long are used as they are; longer raw recordings are cut to
        ``eeg_encoder.config.eeg_time_window`` like the training data.
        """
        if _is_mne_epochs(eeg_values):
            from ..data.mne_io import epochs_to_eeg_values

            eeg_values = epochs_to_eeg_values(eeg_values, self.eeg_encoder.config)
        elif _is_mne_raw_and_events(eeg_values):
            from ..data.mne_io import raw_to_eeg_values

            eeg_values = raw_to_eeg_values(eeg_values[0], eeg_values[1], self.eeg_encoder.config)
        if isinstance(eeg_values, (list, tuple)):
            if len(eeg_values) == 0:
                raise ValueError("`eeg_values` is an empty list: no recordings.")
            parts = []
            for i, recording in enumerate(eeg_values):
                if isinstance(recording, (np.ndarray, torch.Tensor)) and recording.ndim != 2:
                    raise ValueError(
                        f"`eeg_values[{i}]` must be one recording of shape (C, T), got shape {tuple(recording.shape)}."
                    )
                try:
                    parts.append(self._prepare_eeg_batch(recording).float())
                except (TypeError, ValueError) as error:
                    raise type(error)(f"`eeg_values[{i}]`: {error}") from None
            return torch.cat(parts)
        return self._prepare_eeg_batch(eeg_values)

    def _prepare_eeg_batch(self, eeg_values: torch.Tensor | np.ndarray) -> torch.Tensor:
        if isinstance(eeg_values, np.ndarray):
            if eeg_values.dtype == object or not np.issubdtype(eeg_values.dtype, np.number):
                raise TypeError(f"`eeg_values` must hold real floating-point numbers, got a NumPy array of dtype {eeg_values.dtype}.")
            eeg_values = torch.from_numpy(np.ascontiguousarray(eeg_values))
        elif not isinstance(eeg_values, torch.Tensor):
            raise TypeError(
                "`eeg_values` must be a torch.Tensor or a numpy.ndarray of shape (C, T) or (B, C, T), a list of "
                f"(C, T) recordings or an mne.Epochs, got {type(eeg_values).__name__}."
            )
        if not eeg_values.dtype.is_floating_point:
            raise TypeError(f"`eeg_values` must hold real floating-point numbers, got dtype {eeg_values.dtype}.")
        num_channels, num_samples, (start, end) = self.eeg_input_layout
        if eeg_values.ndim == 2:
            eeg_values = eeg_values.unsqueeze(0)
        if eeg_values.ndim != 3:
            raise ValueError(
                f"`eeg_values` must have shape (C, T) or (B, C, T) = ({num_channels}, {num_samples}) or "
                f"(B, {num_channels}, {num_samples}), got shape {tuple(eeg_values.shape)}."
            )
        if eeg_values.shape[0] == 0:
            raise ValueError("`eeg_values` holds no recordings (batch size 0).")
        if eeg_values.shape[1] != num_channels:
            raise ValueError(
                f"`eeg_values` must have {num_channels} channels (dimension 1 of B x C x T), got shape "
                f"{tuple(eeg_values.shape)}."
            )
        length = eeg_values.shape[2]
        if length != num_samples:
            if length < end or end - start != num_samples:
                raise ValueError(
                    f"`eeg_values` has {length} time samples; expected {num_samples} (a recording already cut to "
                    f"the time window) or at least {end} (a raw recording, cut to samples [{start}, {end}))."
                )
            eeg_values = eeg_values[:, :, start:end]
        finite = torch.isfinite(eeg_values).flatten(1).all(dim=1)
        if not bool(finite.all()):
            bad = torch.nonzero(~finite).flatten().tolist()
            raise ValueError(f"`eeg_values` contains NaN or infinite values in recording(s) {bad[:10]} (batch indices).")
        dtype = self.eeg_encoder.dtype
        if torch.finfo(dtype).max < torch.finfo(eeg_values.dtype).max:
            finite = torch.isfinite(eeg_values.to(dtype)).flatten(1).all(dim=1)
            if not bool(finite.all()):
                bad = torch.nonzero(~finite).flatten().tolist()
                raise ValueError(
                    f"`eeg_values` overflow the EEG encoder's {dtype} (largest magnitude {float(eeg_values.abs().max()):.3g}) "
                    f"in recording(s) {bad[:10]} (batch indices); standardise the EEG (z-score each channel) or use float32."
                )
        return eeg_values

    def check_inputs(
        self,
        batch_size: int,
        num_images_per_prompt: int,
        num_inference_steps: int,
        guidance_scale: float,
        refine: bool,
        refine_prompt: str | Sequence[str] | None,
        refine_strength: float,
        refine_guidance_scale: float,
        refine_num_inference_steps: int,
        height: int,
        width: int,
        generator,
        latents: torch.Tensor | None,
        output_type: str,
        max_batch_size: int,
        callback_on_step_end_tensor_inputs: list[str] | None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        refine_prompt_embeds: torch.Tensor | None = None,
        refine_negative_prompt_embeds: torch.Tensor | None = None,
    ) -> None:
        """Raise a ``ValueError`` (or ``TypeError``) naming the first invalid argument."""

        def positive_int(name, value):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")

        positive_int("num_images_per_prompt", num_images_per_prompt)
        positive_int("num_inference_steps", num_inference_steps)
        positive_int("max_batch_size", max_batch_size)
        if guidance_scale < 0:
            raise ValueError(f"`guidance_scale` must be >= 0 (> 1 enables classifier-free guidance), got {guidance_scale}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}.")
        for name, size in (("height", height), ("width", width)):
            if not isinstance(size, (int, np.integer)) or size < self.vae_scale_factor or size % self.vae_scale_factor:
                raise ValueError(
                    f"`{name}` must be a positive multiple of {self.vae_scale_factor} (the VAE's scale factor), got {size!r}."
                )
        total = batch_size * num_images_per_prompt
        if isinstance(generator, list) and len(generator) != total:
            raise ValueError(
                f"`generator` is a list of {len(generator)} generators; expected one per image, "
                f"batch_size * num_images_per_prompt = {batch_size} * {num_images_per_prompt} = {total}."
            )
        if latents is not None:
            expected = (total, self.unet.config.in_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
            if tuple(latents.shape) != expected:
                raise ValueError(f"`latents` must have shape {expected} (images x channels x h x w), got {tuple(latents.shape)}.")
        width_d = self.unet.config.cross_attention_dim
        for name, embeds in (
            ("prompt_embeds", prompt_embeds),
            ("negative_prompt_embeds", negative_prompt_embeds),
            ("refine_prompt_embeds", refine_prompt_embeds),
            ("refine_negative_prompt_embeds", refine_negative_prompt_embeds),
        ):
            if embeds is None:
                continue
            if not isinstance(embeds, torch.Tensor) or embeds.ndim != 3 or embeds.shape[-1] != width_d:
                got = tuple(embeds.shape) if isinstance(embeds, torch.Tensor) else type(embeds).__name__
                raise ValueError(f"`{name}` must be a tensor (batch, sequence, {width_d}) (the UNet's cross_attention_dim), got {got}.")
            if name != "prompt_embeds" and embeds.shape[0] not in (1, batch_size):
                raise ValueError(
                    f"`{name}` has batch size {embeds.shape[0]}; expected 1 (shared) or one per recording ({batch_size})."
                )
        if prompt_embeds is not None and negative_prompt_embeds is not None and guidance_scale > 1:
            if negative_prompt_embeds.shape[1:] != prompt_embeds.shape[1:]:
                raise ValueError(
                    f"`negative_prompt_embeds` {tuple(negative_prompt_embeds.shape[1:])} and `prompt_embeds` "
                    f"{tuple(prompt_embeds.shape[1:])} must have the same sequence length and width."
                )
        needs_text = guidance_scale > 1 and negative_prompt_embeds is None
        if refine:
            if not 0 < refine_strength <= 1:
                raise ValueError(f"`refine_strength` must be in (0, 1], got {refine_strength}.")
            positive_int("refine_num_inference_steps", refine_num_inference_steps)
            if int(refine_num_inference_steps * refine_strength) < 1:
                raise ValueError(
                    f"`refine_strength` * `refine_num_inference_steps` = {refine_strength} * {refine_num_inference_steps} "
                    "leaves no refinement step; raise one of them."
                )
            if refine_guidance_scale < 0:
                raise ValueError(f"`refine_guidance_scale` must be >= 0, got {refine_guidance_scale}.")
            if refine_prompt is not None and refine_prompt_embeds is not None:
                raise ValueError("Pass either `refine_prompt` or `refine_prompt_embeds`, not both.")
            if refine_prompt is not None and not isinstance(refine_prompt, str):
                if not isinstance(refine_prompt, (list, tuple)) or not all(isinstance(p, str) for p in refine_prompt):
                    raise TypeError(f"`refine_prompt` must be a string or a list of strings, got {type(refine_prompt).__name__}.")
                if len(refine_prompt) != batch_size:
                    raise ValueError(
                        f"`refine_prompt` has {len(refine_prompt)} prompts; expected one string or one per EEG recording ({batch_size})."
                    )
            if prompt_embeds is not None and refine_prompt is None and refine_prompt_embeds is None:
                raise ValueError(
                    "Refinement is prompted with the predicted class words, which need the EEG encoder: with "
                    "`prompt_embeds`, pass `refine_prompt` or `refine_prompt_embeds` (or `refine=False`)."
                )
            needs_text = needs_text or refine_prompt_embeds is None
            needs_text = needs_text or (
                refine_guidance_scale > 1 and refine_negative_prompt_embeds is None and negative_prompt_embeds is None
            )
        if needs_text and (self.text_encoder is None or self.tokenizer is None):
            raise ValueError(
                "This call needs the text encoder and tokenizer (for the refinement prompts or the empty prompt of "
                "classifier-free guidance), but the pipeline was loaded without them; load them, or pass the text "
                "embeddings precomputed (`negative_prompt_embeds`, `refine_prompt_embeds`, `refine_negative_prompt_embeds`)."
            )
        if callback_on_step_end_tensor_inputs is not None and not all(
            k in self._callback_tensor_inputs for k in callback_on_step_end_tensor_inputs
        ):
            raise ValueError(
                f"`callback_on_step_end_tensor_inputs` has to be in {self._callback_tensor_inputs}, but found "
                f"{[k for k in callback_on_step_end_tensor_inputs if k not in self._callback_tensor_inputs]}"
            )

    # ------------------------------------------------------------------ randomness
    @staticmethod
    def generators_from_seeds(seeds: Sequence[int], device: str | torch.device = "cpu") -> list[torch.Generator]:
        """One ``torch.Generator`` per seed (what ``generator`` accepts as a list)."""
        return [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]

    def prepare_extra_step_kwargs(self, generator, eta: float) -> dict[str, Any]:
        """Keyword arguments of ``scheduler.step`` that this scheduler accepts (eta, generator)."""
        params = set(inspect.signature(self.scheduler.step).parameters)
        kwargs: dict[str, Any] = {}
        if "eta" in params:
            kwargs["eta"] = eta
        if "generator" in params:
            kwargs["generator"] = generator
        return kwargs

    # ------------------------------------------------------------------ encoders
    def encode_eeg(
        self, eeg_values: torch.Tensor, device: torch.device, max_batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt embeddings (``B x L x D``, UNet dtype) and class probabilities (``B x K``)."""
        dtype = self.eeg_encoder.dtype
        embeds, probs = [], []
        for part in _chunks(eeg_values.shape[0], max_batch_size):
            try:
                out = self.eeg_encoder(eeg_values=eeg_values[part].to(device=device, dtype=dtype))
            except ValueError as err:  # the encoder's NonFiniteEEGError: name the rows of the whole call
                if getattr(err, "batch_indices", None) is None:
                    raise
                rows = [part.start + i for i in err.batch_indices]
                error = ValueError(f"recording(s) {rows[:10]} (batch indices): {err}")
                error.batch_indices = rows
                raise error from None
            embeds.append(out.prompt_embeds)
            probs.append(out.logits.float().softmax(dim=-1))
        return torch.cat(embeds).to(device=device, dtype=self.unet.dtype), torch.cat(probs)

    def predicted_words(self, label_ids: Sequence[int]) -> list[str]:
        """Class words of the predicted ids (``eeg_encoder.config.id2label``)."""
        id2label = self.eeg_encoder.config.id2label or {}
        return [str(id2label.get(int(i), id2label.get(str(int(i)), f"class {int(i)}"))) for i in label_ids]

    def _encode_text(self, prompts: list[str], device: torch.device) -> torch.Tensor:
        """CLIP text-encoder last hidden states of ``prompts``; repeated prompts are encoded once."""
        if self.text_encoder is None or self.tokenizer is None:
            raise ValueError("`encode_prompt` needs the pipeline's text_encoder and tokenizer, but they are not loaded.")
        unique = list(dict.fromkeys(prompts))
        text_inputs = self.tokenizer(
            unique,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        attention_mask = None
        if getattr(self.text_encoder.config, "use_attention_mask", False):
            attention_mask = text_inputs.attention_mask.to(device)
        embeds = self.text_encoder(text_inputs.input_ids.to(device), attention_mask=attention_mask)[0]
        index = torch.tensor([unique.index(p) for p in prompts], device=embeds.device)
        return embeds.index_select(0, index)

    def encode_prompt(
        self,
        prompt: str | list[str] | None,
        device: torch.device | str | None = None,
        num_images_per_prompt: int = 1,
        do_classifier_free_guidance: bool = False,
        negative_prompt: str | list[str] | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        r"""Text embeddings of the refinement prompts (and of the negative prompt), as in diffusers.

        Needs only ``text_encoder`` and ``tokenizer``, so the text embeddings can be computed
        once (e.g. with the UNet offloaded) and passed to the call as ``refine_prompt_embeds`` /
        ``refine_negative_prompt_embeds`` / ``negative_prompt_embeds``.

        Args:
            prompt: one prompt or a list; ignored when ``prompt_embeds`` is given.
            device: where to put the embeddings (default: the pipeline's execution device).
            num_images_per_prompt: every embedding is repeated this many times (prompt-major).
            do_classifier_free_guidance: also return the negative prompt's embeddings.
            negative_prompt: defaults to the empty prompt (the unconditional branch BrainVis uses).
            prompt_embeds, negative_prompt_embeds: precomputed embeddings, used as they are.

        Returns:
            ``(prompt_embeds, negative_prompt_embeds)``, each ``(N * num_images_per_prompt, 77, D)``
            in the text encoder's dtype; the second is ``None`` without guidance.
        """
        device = torch.device(device) if device is not None else self._execution_device
        if prompt_embeds is None:
            if prompt is None:
                raise ValueError("Pass `prompt` or `prompt_embeds` to `encode_prompt`.")
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            prompt_embeds = self._encode_text(prompts, device)
        if self.text_encoder is not None:
            dtype = self.text_encoder.dtype
        elif getattr(self, "unet", None) is not None:
            dtype = self.unet.dtype
        else:
            dtype = prompt_embeds.dtype
        prompt_embeds = prompt_embeds.to(device=device, dtype=dtype)
        batch = prompt_embeds.shape[0]
        if do_classifier_free_guidance and negative_prompt_embeds is None:
            negative = [""] * batch if negative_prompt is None else negative_prompt
            negative = [negative] * batch if isinstance(negative, str) else list(negative)
            if len(negative) != batch:
                raise ValueError(f"`negative_prompt` has {len(negative)} prompts; expected one string or {batch}.")
            negative_prompt_embeds = self._encode_text(negative, device)
        if not do_classifier_free_guidance:
            negative_prompt_embeds = None
        prompt_embeds = prompt_embeds.repeat_interleave(num_images_per_prompt, dim=0)
        if negative_prompt_embeds is not None:
            negative_prompt_embeds = negative_prompt_embeds.to(device=device, dtype=dtype)
            negative_prompt_embeds = negative_prompt_embeds.repeat_interleave(num_images_per_prompt, dim=0)
        return prompt_embeds, negative_prompt_embeds

    # ------------------------------------------------------------------ latents
    def prepare_latents(
        self, num_images: int, height: int, width: int, dtype, device, generator, latents=None
    ) -> torch.Tensor:
        """Stage-1 starting noise (drawn as diffusers' ``randn_tensor`` does: per image from a list
        of generators, else for the whole batch), scaled by the scheduler's ``init_noise_sigma``."""
        shape = (num_images, self.unet.config.in_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        else:
            latents = latents.to(device=device, dtype=dtype)
        return latents * self.scheduler.init_noise_sigma

    def encode_images(self, images: torch.Tensor, generator, max_batch_size: int) -> torch.Tensor:
        """VAE latents of images in [-1, 1], scaled. The posterior's noise is drawn once for all
        images (like ``randn_tensor``: per image from a list of generators), so the latents do not
        depend on ``max_batch_size``."""
        means, stds = [], []
        for part in _chunks(images.shape[0], max_batch_size):
            encoded = self.vae.encode(images[part].to(self.vae.dtype))
            if not hasattr(encoded, "latent_dist"):  # e.g. AutoencoderTiny: deterministic latents
                means.append(retrieve_latents(encoded))
                continue
            means.append(encoded.latent_dist.mean)
            stds.append(encoded.latent_dist.std)
        latents = torch.cat(means)
        if stds:
            noise = randn_tensor(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
            latents = latents + torch.cat(stds) * noise
        return latents * self.vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor, max_batch_size: int) -> torch.Tensor:
        """Images in [-1, 1] (``N x 3 x H x W``, unclamped) from scaled latents."""
        images = []
        for part in _chunks(latents.shape[0], max_batch_size):
            scaled = latents[part].to(self.vae.dtype) / self.vae.config.scaling_factor
            images.append(self.vae.decode(scaled, return_dict=False)[0])
        return torch.cat(images)

    def get_timesteps(self, num_inference_steps: int, strength: float) -> tuple[torch.Tensor, int]:
        """The last ``strength`` fraction of the schedule (img2img); sets the scheduler's begin index."""
        init_timestep = min(int(num_inference_steps * strength), num_inference_steps)
        t_start = max(num_inference_steps - init_timestep, 0)
        timesteps = self.scheduler.timesteps[t_start * self.scheduler.order :]
        if hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(t_start * self.scheduler.order)
        return timesteps, num_inference_steps - t_start

    def prepare_img2img_latents(self, init_latents: torch.Tensor, timestep: torch.Tensor, generator) -> torch.Tensor:
        """Noise the encoded stage-1 latents to the first refinement timestep."""
        noise = randn_tensor(init_latents.shape, generator=generator, device=init_latents.device, dtype=init_latents.dtype)
        return self.scheduler.add_noise(init_latents, noise, timestep.repeat(init_latents.shape[0]))

    # ------------------------------------------------------------------ denoising
    def predict_noise(
        self,
        latents: torch.Tensor,
        t: torch.Tensor,
        prompt_embeds: torch.Tensor,
        negative_prompt_embeds: torch.Tensor | None,
        max_batch_size: int,
        cross_attention_kwargs: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """The UNet's noise prediction for all images, in chunks of at most ``max_batch_size``
        UNet rows; guided against ``negative_prompt_embeds`` (two rows per image) while the
        current ``guidance_scale`` is > 1."""
        guided = negative_prompt_embeds is not None and self.do_classifier_free_guidance
        per_call = max(1, max_batch_size // 2) if guided else max_batch_size
        predictions = []
        for part in _chunks(latents.shape[0], per_call):
            model_input = self.scheduler.scale_model_input(latents[part], t)
            states = prompt_embeds[part]
            if guided:
                model_input = torch.cat([model_input, model_input])
                states = torch.cat([negative_prompt_embeds[part], states])
            noise = self.unet(
                model_input, t, encoder_hidden_states=states, cross_attention_kwargs=cross_attention_kwargs, return_dict=False
            )[0]
            if guided:
                uncond, cond = noise.chunk(2)
                noise = uncond + self._guidance_scale * (cond - uncond)
            predictions.append(noise)
        return torch.cat(predictions)

    def _empty_prompt_embeds(self, num_images: int, like: torch.Tensor, check_shape: bool = True) -> torch.Tensor:
        """The empty prompt's text embedding for every image (the unconditional branch); with
        ``check_shape`` it must match ``like`` (the EEG prompt embedding in stage 1)."""
        if self.text_encoder is None or self.tokenizer is None:
            raise ValueError(
                "Classifier-free guidance needs the empty prompt's embedding, but the text encoder is not loaded; "
                "pass `negative_prompt_embeds` / `refine_negative_prompt_embeds` or load text_encoder and tokenizer."
            )
        empty = self._encode_text([""], like.device).to(dtype=like.dtype)
        if check_shape and empty.shape[1:] != like.shape[1:]:
            raise ValueError(
                f"Classifier-free guidance in stage 1 needs the EEG prompt embedding {tuple(like.shape[1:])} "
                f"and the text embedding {tuple(empty.shape[1:])} to have the same shape."
            )
        return empty.expand(num_images, -1, -1)

    def denoise(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        num_inference_steps: int,
        prompt_embeds: torch.Tensor,
        negative_prompt_embeds: torch.Tensor | None,
        max_batch_size: int,
        extra_step_kwargs: dict[str, Any],
        callback_on_step_end: Callable | None,
        callback_on_step_end_tensor_inputs: list[str],
        cross_attention_kwargs: dict[str, Any] | None,
    ) -> torch.Tensor:
        """Run the scheduler loop over ``timesteps`` for all images at once.

        The callback gets the call-wide step index ``stage_start_step + i``. When it changes
        ``pipe._guidance_scale``, the new scale applies from the next step on (the empty prompt's
        embedding is computed then if guidance turns on without one) and is remembered as an
        override for the rest of the call (see ``__call__``).
        """
        num_warmup_steps = len(timesteps) - num_inference_steps * self.scheduler.order
        with self.progress_bar(total=num_inference_steps) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                if self.do_classifier_free_guidance and negative_prompt_embeds is None:
                    negative_prompt_embeds = self._empty_prompt_embeds(latents.shape[0], prompt_embeds)
                noise_pred = self.predict_noise(
                    latents, t, prompt_embeds, negative_prompt_embeds, max_batch_size, cross_attention_kwargs
                )
                latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs, return_dict=False)[0]
                if callback_on_step_end is not None:
                    local_values = {
                        "latents": latents,
                        "prompt_embeds": prompt_embeds,
                        "negative_prompt_embeds": negative_prompt_embeds,
                    }
                    callback_kwargs = {k: local_values[k] for k in callback_on_step_end_tensor_inputs}
                    scale_before = self._guidance_scale
                    callback_outputs = callback_on_step_end(self, self._stage_start_step + i, t, callback_kwargs)
                    if self._guidance_scale != scale_before:
                        self._guidance_override = self._guidance_scale
                    latents = callback_outputs.pop("latents", latents)
                    prompt_embeds = callback_outputs.pop("prompt_embeds", prompt_embeds)
                    negative_prompt_embeds = callback_outputs.pop("negative_prompt_embeds", negative_prompt_embeds)
                if i == len(timesteps) - 1 or ((i + 1) > num_warmup_steps and (i + 1) % self.scheduler.order == 0):
                    progress_bar.update()
        return latents

    def postprocess(self, images: torch.Tensor, output_type: str):
        """Images in [-1, 1] (or latents) -> the requested output type."""
        if output_type == "latent":
            return images
        return self.image_processor.postprocess(images, output_type=output_type)

    # ------------------------------------------------------------------ call
    def _per_image(self, embeds: torch.Tensor, batch_size: int, num_images_per_prompt: int, device) -> torch.Tensor:
        """Embeddings given per recording (or once, batch 1) -> one row per image, UNet dtype."""
        embeds = embeds.to(device=device, dtype=self.unet.dtype)
        if embeds.shape[0] == 1 and batch_size > 1:
            embeds = embeds.expand(batch_size, -1, -1)
        return embeds.repeat_interleave(num_images_per_prompt, dim=0)

    def _refine_num_timesteps(self, num_inference_steps: int, strength: float, device) -> int:
        """Length of the refinement loop, measured on a copy of the scheduler (no side effects)."""
        probe = type(self.scheduler).from_config(self.scheduler.config)
        probe.set_timesteps(num_inference_steps, device=device)
        init_timestep = min(int(num_inference_steps * strength), num_inference_steps)
        t_start = max(num_inference_steps - init_timestep, 0)
        return len(probe.timesteps[t_start * probe.order :])

    @torch.no_grad()
    def __call__(
        self,
        eeg_values=None,
        num_images_per_prompt: int = 1,
        num_inference_steps: int = 50,
        guidance_scale: float = 1.0,
        refine: bool = True,
        refine_prompt: str | list[str] | None = None,
        refine_strength: float = 0.85,
        refine_guidance_scale: float = 7.5,
        refine_num_inference_steps: int = 100,
        height: int | None = None,
        width: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        eta: float = 0.0,
        max_batch_size: int = 8,
        output_type: str = "pil",
        return_stage1_images: bool = False,
        return_dict: bool = True,
        cross_attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        refine_prompt_embeds: torch.Tensor | None = None,
        refine_negative_prompt_embeds: torch.Tensor | None = None,
        **kwargs,
    ) -> BrainVisPipelineOutput | tuple:
        r"""Generate ``num_images_per_prompt`` images per EEG recording.

        Args:
            eeg_values (`torch.Tensor`, `np.ndarray`, `list` or `mne.Epochs`): one recording
                ``(C, T)``, a batch ``(B, C, T)``, a list of ``(C, T)`` recordings, or an
                ``mne.Epochs`` (channels picked by name, resampled and cropped to the model);
                ``T`` is the model's ``num_samples`` (440) or a raw recording at least as long as
                the end of ``eeg_time_window``, which is cut to it. Leave it out when passing
                ``prompt_embeds``.
            num_images_per_prompt (`int`, defaults to 1): samples per recording. Replaces
                ``num_images_per_eeg`` (default 4), still accepted with a ``FutureWarning``.
            num_inference_steps (`int`, defaults to 50): stage-1 denoising steps.
            guidance_scale (`float`, defaults to 1.0): stage-1 guidance; > 1 enables
                classifier-free guidance against the empty-prompt text embedding (the paper uses none).
            refine (`bool`, defaults to `True`): run stage 2 (img2img refinement).
            refine_prompt (`str` or `list[str]`, *optional*): stage-2 prompt, one for all or one per
                EEG; defaults to the predicted class words.
            refine_strength (`float`, defaults to 0.85): img2img strength, in (0, 1].
            refine_guidance_scale (`float`, defaults to 7.5): stage-2 classifier-free guidance.
            refine_num_inference_steps (`int`, defaults to 100): stage-2 schedule length (about
                ``strength`` of it is run).
            height, width (`int`, *optional*): image size, default ``unet.config.sample_size *
                vae_scale_factor`` (512 for SD v1.5).
            generator (`torch.Generator` or list, *optional*): as in ``StableDiffusionPipeline``.
                A list holds one generator per image (EEG-major index ``j = eeg *
                num_images_per_prompt + sample``), and image ``j`` draws all its noise (stage-1
                start, VAE sampling, stage-2 noise, stochastic scheduler steps) from
                ``generator[j]``: it equals the image of a single-recording call with
                ``generator=generator[j]`` and ``num_images_per_prompt=1``, whatever else is in the
                batch. A single generator draws each noise tensor for the whole batch at once, so
                images depend on the batch's size and order (not on ``max_batch_size``).
            latents (`torch.Tensor`, *optional*): stage-1 starting noise ``(B * num_images_per_prompt,
                4, h, w)``.
            eta (`float`, defaults to 0.0): DDIM's eta (ignored by other schedulers).
            max_batch_size (`int`, defaults to 8): most rows per UNet/VAE/encoder call.
            output_type (`str`, defaults to `"pil"`): `"pil"`, `"np"`, `"pt"` or `"latent"`.
            return_stage1_images (`bool`, defaults to `False`): also return stage-1 images.
            return_dict (`bool`, defaults to `True`): return a [`BrainVisPipelineOutput`] instead of
                the tuple ``(images, stage1_images, predicted_label_ids, predicted_labels, predicted_probs)``.
            cross_attention_kwargs (`dict`, *optional*): passed to the UNet's attention processors.
            callback_on_step_end (`Callable`, *optional*): called after every denoising step of both
                stages as ``callback_on_step_end(pipe, step, timestep, callback_kwargs)``. ``step``
                counts across both stages, from 0 to ``pipe.num_timesteps - 1`` (stage-1 steps plus
                refinement steps); ``pipe.stage`` is ``"stage1"`` or ``"refine"`` and
                ``pipe.stage_start_step`` the index of the stage's first step. It may return
                replacements for the tensors. Setting ``pipe._guidance_scale`` changes the current
                guidance from the next step on and for the rest of the call: a change made in stage 1
                also replaces ``refine_guidance_scale`` in stage 2.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*): tensors put in
                ``callback_kwargs``, among ``latents``, ``prompt_embeds``, ``negative_prompt_embeds``
                (the current stage's).
            prompt_embeds (`torch.Tensor`, *optional*): precomputed EEG prompt embeddings ``(B, L, D)``
                (``eeg_encoder(...).prompt_embeds``) instead of ``eeg_values``; the EEG encoder is
                skipped and the ``predicted_*`` outputs are ``None``, so refinement needs
                ``refine_prompt`` or ``refine_prompt_embeds``.
            negative_prompt_embeds (`torch.Tensor`, *optional*): stage-1 unconditional embeddings
                (batch 1 or ``B``); default the empty prompt's text embedding.
            refine_prompt_embeds (`torch.Tensor`, *optional*): precomputed stage-2 prompt embeddings
                (batch 1 or ``B``), e.g. from :meth:`encode_prompt`; replaces ``refine_prompt``.
            refine_negative_prompt_embeds (`torch.Tensor`, *optional*): stage-2 unconditional
                embeddings; default ``negative_prompt_embeds`` when given, else the empty prompt's.

        Examples:
        """
        if "num_images_per_eeg" in kwargs:
            old = kwargs.pop("num_images_per_eeg")
            warnings.warn(
                "`num_images_per_eeg` is deprecated and will be removed in the next release of brainvis-hf; use "
                "`num_images_per_prompt` (same meaning; note its default is 1, the old default was 4).",
                FutureWarning,
                stacklevel=3,  # the caller of pipe(...), past torch.no_grad's wrapper
            )
            if num_images_per_prompt not in (1, old):
                raise ValueError(
                    f"Got `num_images_per_prompt={num_images_per_prompt}` and the deprecated `num_images_per_eeg={old}`; pass only one."
                )
            num_images_per_prompt = old
        if kwargs:
            raise TypeError(f"BrainVisPipeline.__call__() got unexpected keyword argument(s): {', '.join(sorted(kwargs))}")
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        callback_on_step_end_tensor_inputs = callback_on_step_end_tensor_inputs or ["latents"]

        # 0. Inputs
        if (eeg_values is None) == (prompt_embeds is None):
            raise ValueError(
                "Pass exactly one of `eeg_values` (EEG recordings) and `prompt_embeds` (precomputed EEG prompt embeddings)."
            )
        if eeg_values is not None:
            eeg_values = self.prepare_eeg_values(eeg_values)
            batch_size = eeg_values.shape[0]
        else:
            batch_size = prompt_embeds.shape[0] if isinstance(prompt_embeds, torch.Tensor) and prompt_embeds.ndim else 0
        height = height or self.unet.config.sample_size * self.vae_scale_factor
        width = width or self.unet.config.sample_size * self.vae_scale_factor
        self.check_inputs(
            batch_size, num_images_per_prompt, num_inference_steps, guidance_scale, refine, refine_prompt,
            refine_strength, refine_guidance_scale, refine_num_inference_steps, height, width, generator,
            latents, output_type, max_batch_size, callback_on_step_end_tensor_inputs,
            prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds,
            refine_prompt_embeds=refine_prompt_embeds, refine_negative_prompt_embeds=refine_negative_prompt_embeds,
        )  # fmt: skip
        self._interrupt = False
        self._guidance_scale = guidance_scale
        self._guidance_override = None
        n = num_images_per_prompt
        num_images = batch_size * n
        device = self._execution_device

        # 1. EEG -> prompt embeddings and class predictions (unless given)
        label_ids = labels = probs = None
        if prompt_embeds is None:
            eeg_embeds, probs = self.encode_eeg(eeg_values, device, max_batch_size)
            label_ids = probs.argmax(dim=-1)
            labels = self.predicted_words(label_ids.tolist())
        else:
            eeg_embeds = prompt_embeds
        stage1_embeds = self._per_image(eeg_embeds, batch_size, n, device)

        # 2. Text embeddings: the empty prompt (unconditional branches) and the refinement prompts
        stage1_negative = refine_negative = empty = None
        if negative_prompt_embeds is not None:
            stage1_negative = self._per_image(negative_prompt_embeds, batch_size, n, device)
            if guidance_scale > 1 and stage1_negative.shape[1:] != stage1_embeds.shape[1:]:
                raise ValueError(
                    f"`negative_prompt_embeds` {tuple(stage1_negative.shape[1:])} and the EEG prompt embedding "
                    f"{tuple(stage1_embeds.shape[1:])} must have the same sequence length and width."
                )
        if refine_negative_prompt_embeds is not None:
            refine_negative = self._per_image(refine_negative_prompt_embeds, batch_size, n, device)
        elif refine:
            refine_negative = stage1_negative
        needs_empty = (guidance_scale > 1 and stage1_negative is None) or (
            refine and refine_guidance_scale > 1 and refine_negative is None
        )
        if needs_empty:
            empty = self._empty_prompt_embeds(
                num_images, stage1_embeds, check_shape=guidance_scale > 1 and stage1_negative is None
            )
            if guidance_scale > 1 and stage1_negative is None:
                stage1_negative = empty
            if refine and refine_negative is None:
                refine_negative = empty
        refine_embeds = None
        if refine:
            if refine_prompt_embeds is None:
                prompts = refine_prompt if refine_prompt is not None else labels
                prompts = [prompts] * batch_size if isinstance(prompts, str) else list(prompts)
                refine_prompt_embeds = self.encode_prompt(prompts, device)[0]
            refine_embeds = self._per_image(refine_prompt_embeds, batch_size, n, device)

        # 3. Stage 1: EEG-conditioned text-to-image
        self._stage = "stage1"
        self._stage_start_step = 0
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        stage1_steps = len(self.scheduler.timesteps)
        self._num_timesteps = stage1_steps + (
            self._refine_num_timesteps(refine_num_inference_steps, refine_strength, device) if refine else 0
        )
        latents = self.prepare_latents(num_images, height, width, stage1_embeds.dtype, device, generator, latents)
        latents = self.denoise(
            latents, self.scheduler.timesteps, num_inference_steps, stage1_embeds, stage1_negative, max_batch_size,
            extra_step_kwargs, callback_on_step_end, callback_on_step_end_tensor_inputs, cross_attention_kwargs,
        )  # fmt: skip

        stage1 = None
        if refine:
            # 4. Stage 2: img2img from the decoded stage-1 images, prompted with class words
            stage1_pixels = self.decode_latents(latents, max_batch_size).clamp(-1, 1)
            if return_stage1_images:
                stage1 = latents if output_type == "latent" else stage1_pixels
            self._stage = "refine"
            self._stage_start_step = stage1_steps
            # a guidance change made by the callback in stage 1 carries over; else the refinement scale
            self._guidance_scale = refine_guidance_scale if self._guidance_override is None else self._guidance_override
            init_latents = self.encode_images(stage1_pixels, generator, max_batch_size).to(stage1_embeds.dtype)
            self.scheduler.set_timesteps(refine_num_inference_steps, device=device)
            timesteps, steps = self.get_timesteps(refine_num_inference_steps, refine_strength)
            latents = self.prepare_img2img_latents(init_latents, timesteps[:1], generator)
            latents = self.denoise(
                latents, timesteps, steps, refine_embeds, refine_negative, max_batch_size, extra_step_kwargs,
                callback_on_step_end, callback_on_step_end_tensor_inputs, cross_attention_kwargs,
            )  # fmt: skip

        # 5. Decode and convert
        images = latents if output_type == "latent" else self.decode_latents(latents, max_batch_size)
        images = self.postprocess(images, output_type)
        if stage1 is not None:
            stage1 = self.postprocess(stage1, output_type)
        self.maybe_free_model_hooks()

        label_ids_np = label_ids.cpu().numpy().astype(np.int64) if label_ids is not None else None
        probs_np = probs.float().cpu().numpy() if probs is not None else None
        if not return_dict:
            return images, stage1, label_ids_np, labels, probs_np
        return BrainVisPipelineOutput(
            images=images,
            stage1_images=stage1,
            predicted_label_ids=label_ids_np,
            predicted_labels=labels,
            predicted_probs=probs_np,
        )


BrainVisPipeline.__call__.__doc__ = BrainVisPipeline.__call__.__doc__.replace("        Examples:\n", EXAMPLE_DOC_STRING)

"""Tiny, randomly initialised Stable Diffusion v1.x components built in code.

Nothing here is downloaded: the CLIP tokenizer's byte-level BPE vocabulary and merges are learned
in code from the 40 EEG-ImageNet class names plus common caption words, and the text encoder,
VAE and UNet are tiny random models with the layouts of Stable Diffusion v1.x (the same way the
``diffusers`` test-suite builds its dummy components). They make the pipeline, the CLIP-target
code and the CPU demo runnable and testable offline; the images they produce are noise.

Sizes: the VAE has two blocks (scale factor 2), so the default ``sample_size=16`` latents give
32 x 32 images; the text encoder's hidden size (32) is the UNet's ``cross_attention_dim`` and
the tiny alignment model's ``prompt_embed_dim``.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import torch

# Stable Diffusion v1.5's scheduler configuration (PLMS, the sampler the paper uses).
SD15_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "trained_betas": None,
    "skip_prk_steps": True,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
}

TINY_MAX_LENGTH = 77
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"

# Words often found in image captions (BLIP-2 style) and prompts, besides the class names.
CAPTION_WORDS: tuple[str, ...] = tuple(
    """
    a an the of with on in and or at to from by for is are it its this that there his her their
    photo picture image photograph painting drawing close up view front back top side next near
    man woman boy girl child person people hand hands holding sitting standing lying playing
    wearing using riding flying walking running eating looking white black red blue green yellow
    brown orange pink purple gray grey silver gold dark light small large big little old new two
    three some many table floor ground grass field water sky street road room wall wooden metal
    plastic glass background dog horse fish flower flowers tree trees car train plane bird animal
    toy computer phone screen keyboard camera guitar piano chair shoe shoes ball cup mug coffee
    food plate bowl shirt bag tent mountain snow beach sea river city house building high quality
    detailed realistic blurry bright colorful sunny cloudy night day set pair group made sign
    """.split()
)


def _bytes_to_unicode() -> dict[int, str]:
    """The byte -> printable unicode character table of GPT-2 / CLIP byte-level BPE."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes)))


def _corpus_words(texts: Iterable[str]) -> Counter:
    """Lower-cased pre-tokenized pieces (CLIP's split: letter runs, digits, punctuation runs)."""
    pattern = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+")
    words: Counter = Counter()
    for text in texts:
        words.update(pattern.findall(text.lower()))
    return words


def _learn_bpe_merges(words: Counter) -> list[tuple[str, str]]:
    """Byte-pair merges learned greedily until every corpus word is one token (deterministic:
    the most frequent pair first, ties broken by the pair's text)."""
    byte_encoder = _bytes_to_unicode()
    splits: dict[str, list[str]] = {}
    for word in words:
        symbols = [byte_encoder[b] for b in word.encode("utf-8")]
        symbols[-1] = symbols[-1] + "</w>"
        splits[word] = symbols
    merges: list[tuple[str, str]] = []
    while True:
        pairs: Counter = Counter()
        for word, symbols in splits.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += words[word]
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for word, symbols in splits.items():
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            splits[word] = merged


@functools.lru_cache(maxsize=8)
def _tiny_vocab_and_merges(extra_texts: tuple[str, ...] = ()) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP-layout vocabulary: 256 byte symbols, the same with ``</w>``, merge results, specials."""
    from ..data.labels import EEG_IMAGENET_CLASSES

    texts = [words for _, words in EEG_IMAGENET_CLASSES] + list(CAPTION_WORDS) + list(extra_texts)
    merges = _learn_bpe_merges(_corpus_words(texts))
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(pair) for pair in merges]
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    vocab[BOS_TOKEN] = len(vocab)
    vocab[EOS_TOKEN] = len(vocab)
    return vocab, merges


def build_tiny_clip_tokenizer(save_dir: str | Path | None = None, extra_texts: Iterable[str] = ()):
    """A real ``CLIPTokenizer`` with a small byte-level BPE vocabulary learned in code.

    The words of the 40 EEG-ImageNet class names and of common caption words are single tokens;
    any other text falls back to smaller pieces down to single bytes (never to an unknown token).
    ``model_max_length`` is 77, like Stable Diffusion's tokenizer.

    Args:
        save_dir: when given, the tokenizer is also saved there (``vocab.json``, ``merges.txt``
            and the tokenizer config), loadable with ``CLIPTokenizer.from_pretrained(save_dir)``.
        extra_texts: more texts whose words should become single tokens.
    """
    from transformers import CLIPTokenizer

    vocab, merges = _tiny_vocab_and_merges(tuple(extra_texts))
    vocab, merges = dict(vocab), list(merges)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=TINY_MAX_LENGTH)
    if save_dir is not None:
        save_dir = Path(save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(save_dir)
        (save_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, allow_nan=False), encoding="utf-8")
        lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
        (save_dir / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tokenizer


def build_tiny_clip_text_model(hidden_size: int = 32, seed: int = 0, tokenizer=None):
    """A tiny random ``CLIPTextModel`` (3 layers, 4 heads) matching :func:`build_tiny_clip_tokenizer`.

    Args:
        hidden_size: width of the text encoder, i.e. the prompt embedding dimension.
        seed: seed of the random initialisation.
        tokenizer: the tokenizer whose vocabulary size and special tokens to use (default: a new
            :func:`build_tiny_clip_tokenizer`).
    """
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tokenizer if tokenizer is not None else build_tiny_clip_tokenizer()
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        projection_dim=hidden_size,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=TINY_MAX_LENGTH,
        layer_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPTextModel(config)
    return model.eval()


def build_tiny_vae(
    seed: int = 0,
    block_out_channels: tuple[int, ...] = (8, 16),
    *,
    norm_num_groups: int = 4,
    sample_size: int | None = None,
):
    """A tiny random ``AutoencoderKL`` (4 latent channels, scale factor 2 ** (len(blocks) - 1); eval mode).

    ``sample_size`` defaults to 16 latent pixels' worth of image.
    """
    from diffusers import AutoencoderKL

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * len(block_out_channels),
            up_block_types=("UpDecoderBlock2D",) * len(block_out_channels),
            block_out_channels=tuple(block_out_channels),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=norm_num_groups,
            sample_size=sample_size or 16 * 2 ** (len(block_out_channels) - 1),
        )
    return vae.eval()


def build_tiny_unet(
    seed: int = 0,
    cross_attention_dim: int = 32,
    sample_size: int = 16,
    block_out_channels: tuple[int, int] = (8, 16),
    *,
    attention_head_dim: int = 4,
    norm_num_groups: int = 4,
    **unet_kwargs,
):
    """A tiny random ``UNet2DConditionModel`` with Stable Diffusion v1.x's block layout (eval mode).

    ``unet_kwargs`` go to ``UNet2DConditionModel`` (e.g. the demo's ``addition_embed_type``).
    """
    from diffusers import UNet2DConditionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=sample_size,
            in_channels=4,
            out_channels=4,
            block_out_channels=tuple(block_out_channels),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=cross_attention_dim,
            attention_head_dim=attention_head_dim,
            norm_num_groups=norm_num_groups,
            **unet_kwargs,
        )
    return unet.eval()


def build_sd15_scheduler(**overrides: Any):
    """A ``PNDMScheduler`` (PLMS) with Stable Diffusion v1.5's configuration."""
    from diffusers import PNDMScheduler

    return PNDMScheduler(**{**SD15_SCHEDULER_CONFIG, **overrides})


def build_tiny_sd_components(
    seed: int = 0,
    hidden_size: int = 32,
    sample_size: int = 16,
    vae_block_out_channels: tuple[int, ...] = (8, 16),
    unet_block_out_channels: tuple[int, int] = (8, 16),
) -> dict[str, Any]:
    """Tiny random Stable Diffusion v1.x components, keyed like ``StableDiffusionPipeline``'s.

    Returns:
        ``dict(vae=..., text_encoder=..., tokenizer=..., unet=..., scheduler=...)``; the UNet's
        ``cross_attention_dim`` equals the text encoder's ``hidden_size``; images are
        ``sample_size * 2 ** (len(vae_block_out_channels) - 1)`` pixels square (32 by default).
    """
    tokenizer = build_tiny_clip_tokenizer()
    return {
        "vae": build_tiny_vae(seed=seed, block_out_channels=vae_block_out_channels),
        "text_encoder": build_tiny_clip_text_model(hidden_size=hidden_size, seed=seed, tokenizer=tokenizer),
        "tokenizer": tokenizer,
        "unet": build_tiny_unet(
            seed=seed,
            cross_attention_dim=hidden_size,
            sample_size=sample_size,
            block_out_channels=unet_block_out_channels,
        ),
        "scheduler": build_sd15_scheduler(),
    }


def save_tiny_stable_diffusion(save_dir: str | Path, seed: int = 0, **kwargs: Any) -> Path:
    """Write tiny components as a ``StableDiffusionPipeline`` folder (no safety checker)."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        **build_tiny_sd_components(seed=seed, **kwargs),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(save_dir, safe_serialization=True)
    return Path(save_dir)


__all__ = [
    "SD15_SCHEDULER_CONFIG",
    "build_sd15_scheduler",
    "build_tiny_clip_text_model",
    "build_tiny_clip_tokenizer",
    "build_tiny_sd_components",
    "build_tiny_unet",
    "build_tiny_vae",
    "save_tiny_stable_diffusion",
]

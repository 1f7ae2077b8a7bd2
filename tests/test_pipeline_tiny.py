"""Tests of the tiny Stable Diffusion components built in code (brainvis_hf.pipelines.tiny)."""

import json
import re

import pytest
import torch

from brainvis_hf.data.labels import EEG_IMAGENET_CLASSES
from brainvis_hf.pipelines.tiny import (
    SD15_SCHEDULER_CONFIG,
    build_tiny_clip_text_model,
    build_tiny_clip_tokenizer,
    build_tiny_sd_components,
)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_clip_tokenizer()


def test_class_words_are_single_tokens(tokenizer):
    for _, words in EEG_IMAGENET_CLASSES:
        pieces = tokenizer.tokenize(words)
        simple = re.findall(r"[a-z]+", words.lower())
        assert [p for p in pieces if p.removesuffix("</w>").isalpha()] == [w + "</w>" for w in simple], words


def test_special_tokens_and_padding(tokenizer):
    assert tokenizer.model_max_length == 77
    enc = tokenizer(["a photo of a cat", ""], padding="max_length", max_length=77, return_tensors="pt")
    assert enc.input_ids.shape == (2, 77)
    assert enc.input_ids[0, 0].item() == tokenizer.bos_token_id
    assert tokenizer.convert_ids_to_tokens(enc.input_ids[0, :7].tolist()) == [
        "<|startoftext|>", "a</w>", "photo</w>", "of</w>", "a</w>", "cat</w>", "<|endoftext|>",
    ]
    # the empty prompt is BOS, EOS, then padding (EOS)
    assert enc.input_ids[1, 1].item() == tokenizer.eos_token_id


def test_unknown_text_falls_back_to_bytes(tokenizer):
    text = "zyxq unknownword 42 ü"
    ids = tokenizer(text).input_ids
    assert tokenizer.unk_token_id not in ids[1:-1]
    assert tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == text.replace(" ", "")


def test_tokenizer_saves_and_reloads(tmp_path, tokenizer):
    from transformers import CLIPTokenizer

    build_tiny_clip_tokenizer(save_dir=tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert vocab == tokenizer.get_vocab()
    for loaded in (CLIPTokenizer.from_pretrained(tmp_path),):
        assert loaded("a sorrel horse").input_ids == tokenizer("a sorrel horse").input_ids
    # the vocab.json + merges.txt pair alone is enough (as in real CLIP tokenizer folders)
    (tmp_path / "tokenizer.json").unlink()
    again = CLIPTokenizer.from_pretrained(tmp_path)
    assert again("giant panda on grass").input_ids == tokenizer("giant panda on grass").input_ids


def test_text_model_matches_tokenizer(tokenizer):
    model = build_tiny_clip_text_model(hidden_size=32, seed=0, tokenizer=tokenizer)
    assert model.config.vocab_size == len(tokenizer)
    ids = tokenizer(["a cat"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    out = model(ids)
    assert out.last_hidden_state.shape == (1, 77, 32)
    again = build_tiny_clip_text_model(hidden_size=32, seed=0, tokenizer=tokenizer)
    torch.testing.assert_close(again(ids).last_hidden_state, out.last_hidden_state)


def test_sd_components_fit_together():
    c = build_tiny_sd_components(seed=0)
    assert set(c) == {"vae", "text_encoder", "tokenizer", "unet", "scheduler"}
    assert c["unet"].config.cross_attention_dim == c["text_encoder"].config.hidden_size == 32
    assert type(c["scheduler"]).__name__ == "PNDMScheduler"
    for key, value in SD15_SCHEDULER_CONFIG.items():
        assert c["scheduler"].config[key] == value
    lat = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    cond = torch.randn(2, 77, 32)
    with torch.no_grad():
        assert c["unet"](lat, 10, encoder_hidden_states=cond).sample.shape == (2, 4, 16, 16)
        assert c["vae"].decode(lat).sample.shape == (2, 3, 32, 32)


def test_shipped_tiny_configs_match_the_builders():
    """hub_configs/tiny/pipeline holds exactly what build_tiny_sd_components builds."""
    from transformers import CLIPTokenizer

    from brainvis_hf.presets import preset_dir

    folder = preset_dir("pipeline", preset="tiny")
    c = build_tiny_sd_components(seed=0)
    for name in ("vae", "unet", "scheduler"):
        file = "scheduler_config.json" if name == "scheduler" else "config.json"
        shipped = json.loads((folder / name / file).read_text())
        built = dict(c[name].config)
        assert {k: v for k, v in shipped.items() if not k.startswith("_")} == {
            k: list(v) if isinstance(v, tuple) else v for k, v in built.items() if not k.startswith("_")
        }, name
    shipped_text = json.loads((folder / "text_encoder" / "config.json").read_text())
    built_text = c["text_encoder"].config.to_dict()
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "eos_token_id", "bos_token_id"):
        assert shipped_text[key] == built_text[key], key
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    assert tokenizer.get_vocab() == c["tokenizer"].get_vocab()
    assert tokenizer("a giant panda").input_ids == c["tokenizer"]("a giant panda").input_ids


def test_paper_pipeline_layout():
    from brainvis_hf.presets import preset_dir

    folder = preset_dir("pipeline")
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "PNDMScheduler"
    assert {k: scheduler[k] for k in SD15_SCHEDULER_CONFIG} == SD15_SCHEDULER_CONFIG
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "BrainVisPipeline"
    assert set(index) - {"_class_name", "_diffusers_version"} == {
        "eeg_encoder", "vae", "text_encoder", "tokenizer", "unet", "scheduler",
    }

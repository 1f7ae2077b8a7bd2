"""CLIP coarse/fine targets: once per image, stored as fp16 safetensors, resumable, joined by the collator."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch


def _colour_caption(images):
    """A deterministic stand-in captioner: names the dominant colour channel of each image."""
    names = ("red", "green", "blue")
    captions = []
    for image in images:
        mean = np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3).mean(0)
        captions.append(f"a photo of something {names[int(mean.argmax())]}")
    return captions


class CountingCaptioner:
    def __init__(self):
        self.seen = 0

    def __call__(self, images):
        self.seen += len(images)
        return _colour_caption(images)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """A prepared synthetic data set with images (40 classes x 3 images, 1 subject)."""
    from brainvis_hf.data import load_eeg_imagenet, prepare_dataset, write_synthetic_eeg_imagenet

    root = tmp_path_factory.mktemp("clip_data")
    files = write_synthetic_eeg_imagenet(
        root / "raw", num_images_per_class=3, num_subjects=1, num_channels=8, with_images=True,
        show_progress=False, num_splits=1,
    )
    ds = load_eeg_imagenet(files.eeg_path, files.splits_path, image_root=files.image_root, cache_dir=root / "cache")
    return prepare_dataset(ds, root / "prepared")


@pytest.fixture(scope="module")
def tiny_clip():
    from brainvis_hf.pipelines.tiny import build_tiny_clip_text_model, build_tiny_clip_tokenizer

    tokenizer = build_tiny_clip_tokenizer()
    return tokenizer, build_tiny_clip_text_model(hidden_size=32, tokenizer=tokenizer)


def _copy_data(src, dst):
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("clip_targets"))
    return dst


def _unique_images(data_dir):
    from brainvis_hf.data import load_prepared_dataset

    ds = load_prepared_dataset(data_dir)
    pairs = {}
    for split in ds.values():
        for name, text in zip(split["image_name"], split["label_text"]):
            pairs[name] = text
    return pairs


def test_targets_once_per_image_match_independent_encoding(small_data, tiny_clip, tmp_path):
    from brainvis_hf.data.clip_targets import compute_clip_targets, load_clip_target_index, load_clip_targets

    tokenizer, text_model = tiny_clip
    data = _copy_data(small_data, tmp_path / "data")
    captioner = CountingCaptioner()
    folder = compute_clip_targets(data, captioner=captioner, tokenizer=tokenizer, text_encoder=text_model,
                                  batch_size=7, chunk_size=50, device="cpu", show_progress=False)
    images = _unique_images(data)
    index = load_clip_target_index(data)
    targets = load_clip_targets(data)
    # once per image (not per recording), every image covered
    assert set(targets) == set(images)
    assert captioner.seen == len(images)
    assert sum(len(c["image_names"]) for c in index["chunks"]) == len(images)
    assert len(index["chunks"]) == -(-len(images) // 50)
    assert (index["sequence_length"], index["hidden_size"]) == (77, 32)
    assert index["dtype"] == "float16" and all((folder / c["file"]).is_file() for c in index["chunks"])

    # values: the text model's last hidden state of the class words / of the kept caption
    chunk = index["chunks"][0]
    name, caption = chunk["image_names"][3], chunk["captions"][3]
    assert caption.startswith("a photo of something ")
    tokens = tokenizer([images[name], caption], padding="max_length", max_length=77, truncation=True,
                       return_tensors="pt")
    with torch.no_grad():
        expected = text_model(input_ids=tokens.input_ids).last_hidden_state
    coarse, fine = targets[name]
    assert coarse.dtype == torch.float16 and coarse.shape == (77, 32)
    torch.testing.assert_close(coarse.float(), expected[0], atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(fine.float(), expected[1], atol=2e-3, rtol=2e-3)
    assert not torch.allclose(coarse, fine)


def test_collator_joins_targets(small_data, tiny_clip, tmp_path):
    from brainvis_hf.data import BrainVisDataCollator, load_prepared_dataset
    from brainvis_hf.data.clip_targets import compute_clip_targets, load_clip_targets

    tokenizer, text_model = tiny_clip
    data = _copy_data(small_data, tmp_path / "data")
    compute_clip_targets(data, captioner=None, tokenizer=tokenizer, text_encoder=text_model, device="cpu",
                         show_progress=False)
    targets = load_clip_targets(data)
    rows = [load_prepared_dataset(data)["train"][i] for i in range(4)]
    batch = BrainVisDataCollator(clip_targets=targets)(rows)
    assert batch["coarse_embeds"].shape == (4, 77, 32) and batch["coarse_embeds"].dtype == torch.float32
    torch.testing.assert_close(batch["fine_embeds"][2], targets[rows[2]["image_name"]][1].float())
    # captioner=None: the fine target is the class-words target
    torch.testing.assert_close(batch["fine_embeds"], batch["coarse_embeds"])


def test_resumes_and_skips_written_chunks(small_data, tiny_clip, tmp_path):
    from brainvis_hf.data.clip_targets import compute_clip_targets, load_clip_target_index, load_clip_targets

    tokenizer, text_model = tiny_clip
    data = _copy_data(small_data, tmp_path / "data")
    kwargs = dict(tokenizer=tokenizer, text_encoder=text_model, chunk_size=40, device="cpu", show_progress=False)
    first = CountingCaptioner()
    folder = compute_clip_targets(data, captioner=first, **kwargs)
    before = load_clip_targets(data)
    index = load_clip_target_index(data)
    # simulate an interruption: the last chunk was never written
    last = index["chunks"][-1]
    (folder / last["file"]).unlink()
    stamps = {c["file"]: (folder / c["file"]).stat().st_mtime_ns for c in index["chunks"][:-1]}

    second = CountingCaptioner()
    compute_clip_targets(data, captioner=second, **kwargs)
    assert second.seen == len(last["image_names"])  # only the missing chunk was captioned
    assert {f: (folder / f).stat().st_mtime_ns for f in stamps} == stamps
    after = load_clip_targets(data)
    assert set(after) == set(before)
    for name in last["image_names"]:
        torch.testing.assert_close(after[name][0], before[name][0])

    # other models than the stored ones: refuse unless overwrite=True
    with pytest.raises(ValueError, match="already holds targets computed with"):
        compute_clip_targets(data, captioner=None, **kwargs)
    compute_clip_targets(data, captioner=None, overwrite=True, **kwargs)
    assert load_clip_target_index(data)["captioner"] is None


def test_captioner_needs_images(small_data, tiny_clip, tmp_path):
    import datasets

    from brainvis_hf.data import load_prepared_dataset, prepare_dataset
    from brainvis_hf.data.clip_targets import compute_clip_targets, load_clip_targets

    tokenizer, text_model = tiny_clip
    ds = load_prepared_dataset(small_data)
    no_images = prepare_dataset(datasets.DatasetDict({k: v.remove_columns("image") for k, v in ds.items()}),
                                tmp_path / "no_images")
    with pytest.raises(ValueError, match="no 'image' column"):
        compute_clip_targets(no_images, captioner=_colour_caption, tokenizer=tokenizer, text_encoder=text_model,
                             device="cpu", show_progress=False)
    with pytest.raises(FileNotFoundError, match="No CLIP targets"):
        load_clip_targets(no_images)


def test_blip2_captioner_with_tiny_model():
    """The real BLIP-2 path (processor + Blip2ForConditionalGeneration.generate) on a tiny random model."""
    from PIL import Image
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
        CLIPTokenizer,
    )

    from brainvis_hf.data.clip_targets import Blip2Captioner
    from brainvis_hf.pipelines.tiny import build_tiny_clip_tokenizer

    base = build_tiny_clip_tokenizer()
    tokenizer = CLIPTokenizer(vocab=dict(base.get_vocab()), merges=_merges(base), model_max_length=77)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    num_query_tokens = 2
    config = Blip2Config(
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=16, patch_size=8),
        qformer_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                            encoder_hidden_size=16, vocab_size=len(tokenizer)),
        text_config=dict(model_type="opt", vocab_size=len(tokenizer), hidden_size=16, ffn_dim=32, num_hidden_layers=1,
                         num_attention_heads=2, word_embed_proj_dim=16, max_position_embeddings=64,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        num_query_tokens=num_query_tokens,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(0)
    model = Blip2ForConditionalGeneration(config).eval()
    processor = Blip2Processor(
        image_processor=BlipImageProcessor(size={"height": 16, "width": 16}), tokenizer=tokenizer,
        num_query_tokens=num_query_tokens,
    )
    captioner = Blip2Captioner(model, processor, max_new_tokens=5)
    images = [Image.new("RGB", (20, 20), (200, 10, 10)), Image.new("RGB", (20, 20), (10, 10, 200))]
    captions = captioner(images)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)


def _merges(tokenizer):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        path = Path(tmp) / "merges.txt"
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()[1:]
            return [tuple(line.split()) for line in lines if line.strip()]
        data = json.loads((Path(tmp) / "tokenizer.json").read_text())
        return [tuple(m.split()) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]]


def test_cli_clip_targets(small_data, tmp_path, capsys):
    from brainvis_hf.cli.data_clip_targets import register
    from brainvis_hf.data.clip_targets import load_clip_target_index
    from brainvis_hf.pipelines.tiny import build_tiny_clip_text_model, build_tiny_clip_tokenizer

    clip_dir = tmp_path / "tiny_clip"
    tokenizer = build_tiny_clip_tokenizer(save_dir=clip_dir)
    build_tiny_clip_text_model(tokenizer=tokenizer).save_pretrained(clip_dir)
    data = _copy_data(small_data, tmp_path / "data")

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["clip-targets", "--data", str(data), "--clip-model", str(clip_dir),
                              "--captioner", "none", "--device", "cpu", "--batch-size", "32"])
    assert args.func(args) == 0
    index = load_clip_target_index(data)
    assert index["clip_model"] == str(clip_dir) and index["captioner"] is None
    assert "CLIP targets of" in capsys.readouterr().out

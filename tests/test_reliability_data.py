"""Fault injection for prepared data folders: byte flips, truncated / missing / extra shards and a
damaged checksum file; CLIP targets of the wrong shape or with a damaged index."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from brainvis_hf.cli import main
from brainvis_hf.data import load_prepared_dataset
from brainvis_hf.data.prepare import CHECKSUMS_NAME, NO_VERIFY_ENV


@pytest.fixture
def data_dir(prepared_data_dir, tmp_path):
    out = tmp_path / "prepared"
    shutil.copytree(prepared_data_dir, out, ignore=shutil.ignore_patterns("clip_targets"))
    return out


def _shard(data_dir, split="train"):
    return next((data_dir / "data").glob(f"{split}-*.parquet"))


def test_checksums_are_the_sha256_of_every_shard(data_dir):
    recorded = json.loads((data_dir / CHECKSUMS_NAME).read_text())
    shards = sorted((data_dir / "data").glob("*.parquet"))
    assert recorded == {
        "algorithm": "sha256",
        "files": {f"data/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest() for p in shards},
    }
    assert len(shards) == 3


def test_flipped_byte_is_reported_naming_the_shard(data_dir, tmp_path, capsys):
    shard = _shard(data_dir)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"^{shard}: corrupted \(sha256 [0-9a-f]{{16}}\.\.\. differs from [0-9a-f]{{16}}\.\.\. recorded in checksums.json\)"):
        load_prepared_dataset(data_dir)
    code = main(["generate", "--model", "unused/repo", "--eeg", str(data_dir), "--output", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"brainvis generate: error: {shard}: corrupted")


def test_opt_out(data_dir, tmp_path, capsys):
    """A wrong recorded checksum (intact shard) fails by default and loads with the opt-out."""
    recorded = json.loads((data_dir / CHECKSUMS_NAME).read_text())
    recorded["files"][f"data/{_shard(data_dir).name}"] = "0" * 64
    (data_dir / CHECKSUMS_NAME).write_text(json.dumps(recorded))
    with pytest.raises(ValueError, match="corrupted"):
        load_prepared_dataset(data_dir)
    assert len(load_prepared_dataset(data_dir, verify_checksums=False)["train"]) > 0
    assert NO_VERIFY_ENV not in os.environ
    # the CLI flag: `brainvis --no-verify ...` reaches load_prepared_dataset, and is unset afterwards
    seen = {}
    import brainvis_hf.apps.generate_folder as generate_folder

    original = generate_folder.load_eeg_records

    def spy(*args, **kwargs):
        seen["records"] = original(*args, **kwargs)
        raise KeyboardInterrupt

    generate_folder.load_eeg_records = spy
    try:
        code = main(["--no-verify", "generate", "--model", "unused/repo", "--eeg", str(data_dir), "--output", str(tmp_path / "o"), "--quiet"])
    finally:
        generate_folder.load_eeg_records = original
    assert code == 130 and len(seen["records"]) > 0
    assert NO_VERIFY_ENV not in os.environ
    capsys.readouterr()


@pytest.mark.parametrize("verify", [True, False])
def test_truncated_shard_is_named(data_dir, verify):
    shard = _shard(data_dir, "test")
    shard.write_bytes(shard.read_bytes()[:-100])
    message = "corrupted (sha256" if verify else "not a readable Parquet file"
    with pytest.raises(ValueError, match=rf"^{shard}: " + message.replace("(", r"\(")):
        load_prepared_dataset(data_dir, verify_checksums=verify)


def test_missing_extra_shards_and_damaged_checksum_file(data_dir):
    extra = data_dir / "data" / "train-00001-of-00001.parquet"
    shutil.copy(_shard(data_dir), extra)
    with pytest.raises(ValueError, match=rf"^{extra}: not listed in {data_dir / CHECKSUMS_NAME}"):
        load_prepared_dataset(data_dir)
    extra.unlink()
    missing = _shard(data_dir, "validation")
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=rf"^{missing}: shard listed in .* is missing"):
        load_prepared_dataset(data_dir)
    (data_dir / CHECKSUMS_NAME).write_text("{not json")
    with pytest.raises(ValueError, match=rf"^{data_dir / CHECKSUMS_NAME} is not a valid checksum file"):
        load_prepared_dataset(data_dir)


def test_folders_without_checksums_still_load(data_dir):
    (data_dir / CHECKSUMS_NAME).unlink()
    assert set(load_prepared_dataset(data_dir)) == {"train", "validation", "test"}


# ----------------------------------------------------------------------------------------------
# CLIP targets: validated before training starts
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def targets_dir(prepared_data_dir, tmp_path_factory):
    from brainvis_hf.data.clip_targets import compute_clip_targets
    from brainvis_hf.pipelines.tiny import build_tiny_clip_text_model, build_tiny_clip_tokenizer

    out = tmp_path_factory.mktemp("targets") / "prepared"
    shutil.copytree(prepared_data_dir, out)
    tokenizer = build_tiny_clip_tokenizer()
    compute_clip_targets(out, captioner=None, tokenizer=tokenizer, chunk_size=16, show_progress=False,
                         text_encoder=build_tiny_clip_text_model(hidden_size=32, tokenizer=tokenizer))  # fmt: skip
    return out


@pytest.fixture
def data_with_targets(targets_dir, tmp_path):
    out = tmp_path / "prepared"
    shutil.copytree(targets_dir, out)
    return out


@pytest.fixture(scope="module")
def timefreq_dir(tmp_path_factory):
    from brainvis_hf.models import BrainVisConfig, BrainVisForEEGClassification
    from brainvis_hf.presets import preset_dir

    folder = tmp_path_factory.mktemp("timefreq")
    BrainVisForEEGClassification(BrainVisConfig.from_pretrained(preset_dir("timefreq", "tiny"))).save_pretrained(folder)
    return folder


def _train_align(data, out, capsys, init):
    code = main(["train", "align", "--data", str(data), "--output", str(out), "--preset", "tiny", "--init", str(init),
                 "--max-steps", "1", "--report-to", "none"])  # fmt: skip
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip().splitlines()[-1]


def test_intact_targets_train(data_with_targets, timefreq_dir, tmp_path, capsys):
    """The control: the same command trains when the targets are intact."""
    assert main(["train", "align", "--data", str(data_with_targets), "--output", str(tmp_path / "run"), "--preset", "tiny",
                 "--init", str(timefreq_dir), "--max-steps", "1", "--report-to", "none"]) == 0  # fmt: skip
    capsys.readouterr()


def test_clip_target_chunk_of_the_wrong_shape(data_with_targets, timefreq_dir, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    folder = data_with_targets / "clip_targets"
    index = json.loads((folder / "index.json").read_text())
    chunk = folder / index["chunks"][-1]["file"]
    tensors = load_file(str(chunk))
    save_file({k: v[:, :, :16].contiguous() for k, v in tensors.items()}, str(chunk))
    code, line = _train_align(data_with_targets, tmp_path / "run", capsys, timefreq_dir)
    assert code == 2
    assert line.startswith(f"brainvis train: error: {chunk}: CLIP targets of shape ")
    assert "like the other chunks" in line
    assert not (tmp_path / "run").exists() or not list((tmp_path / "run").glob("checkpoint-*"))  # nothing trained


@pytest.mark.parametrize("text", ['{"chunks": [', '{"chunks": [{"file": 3}]}', '{"chunks": [{"file": "../../x.safetensors", "image_names": []}]}'])
def test_damaged_clip_target_index(data_with_targets, timefreq_dir, tmp_path, capsys, text):
    index = data_with_targets / "clip_targets" / "index.json"
    index.write_text(text)
    code, line = _train_align(data_with_targets, tmp_path / "run", capsys, timefreq_dir)
    assert code == 2 and line.startswith(f"brainvis train: error: {index}")

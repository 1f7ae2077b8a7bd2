"""Fault injection through the `brainvis` entry point: every error is one line naming the file and
what to do (no traceback unless --debug); Ctrl-C is one line and exit code 130."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from brainvis_hf.cli import main


def _run(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("brainvis ")]
    assert "Traceback" not in err, err
    assert len(errors) == 1, err
    assert err.rstrip("\n").endswith(errors[0])  # progress bars aside, the error is the last word
    return code, errors[0]


@pytest.fixture(scope="module")
def eeg_npy(tmp_path_factory):
    path = tmp_path_factory.mktemp("eeg") / "eeg.npy"
    np.save(path, np.random.default_rng(0).standard_normal((1, 128, 440)).astype(np.float32))
    return path


def _generate(model, eeg, out, *extra):
    return ["generate", "--model", str(model), "--eeg", str(eeg), "--output", str(out), "--steps", "1",
            "--num-images-per-eeg", "1", "--no-refine", "--quiet", *extra]  # fmt: skip


def _truncate(path: Path, keep: int | None = None) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep is None else keep])


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda p: _truncate(p), "is truncated or corrupted: its header describes"),
        (lambda p: p.write_bytes(b""), "is not a safetensors file: 0 bytes (empty or truncated)"),
        (lambda p: p.write_bytes((2**40).to_bytes(8, "little") + b"{}"), "header of 1099511627776 bytes in a 10-byte file"),
        (lambda p: p.write_bytes((4).to_bytes(8, "little") + b"{{{{"), "unreadable header"),
    ],
    ids=["truncated", "empty", "huge header", "garbage header"],
)
def test_damaged_safetensors_in_a_pipeline(tiny_pipeline_dir, eeg_npy, tmp_path, capsys, damage, message):
    model = tmp_path / "pipeline"
    shutil.copytree(tiny_pipeline_dir, model)
    target = model / "unet" / "diffusion_pytorch_model.safetensors"
    damage(target)
    code, line = _run(capsys, _generate(model, eeg_npy, tmp_path / "out"))
    assert code == 2
    assert line.startswith(f"brainvis generate: error: {target} ") and message in line and "re-download or re-save" in line


@pytest.mark.parametrize("name", ["model_index.json", "unet/config.json", "eeg_encoder/config.json"])
def test_invalid_json_in_a_pipeline(tiny_pipeline_dir, eeg_npy, tmp_path, capsys, name):
    model = tmp_path / "pipeline"
    shutil.copytree(tiny_pipeline_dir, model)
    (model / name).write_text('{"_class_name": "BrainVisPipeline",')
    code, line = _run(capsys, _generate(model, eeg_npy, tmp_path / "out"))
    assert code == 2 and f"{model / name} is not a valid JSON file" in line


@pytest.mark.parametrize("value", ["./no_such_pipeline", "runs/pipeline_typo/final", "/nonexistent/pipeline", "pipelinee"])
def test_model_typo_is_folder_not_found_at_once(eeg_npy, tmp_path, capsys, monkeypatch, value):
    import huggingface_hub

    def no_hub(*args, **kwargs):  # pragma: no cover - would mean the Hub was tried
        raise AssertionError("the Hub was contacted")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_hub)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    code, line = _run(capsys, _generate(value, eeg_npy, tmp_path / "out"))
    assert code == 2 and line == f"brainvis generate: error: --model {value}: folder not found (and not a Hub repo id of the form owner/name); check the path."


def test_training_run_as_model_hints_at_sd(tiny_alignment_model, eeg_npy, tmp_path, capsys):
    run = tmp_path / "align_run"
    tiny_alignment_model.save_pretrained(run)
    (run / "metrics.json").write_text("{}")
    code, line = _run(capsys, _generate(run, eeg_npy, tmp_path / "out"))
    assert code == 2 and "not a BrainVisPipeline (no model_index.json); assemble a pipeline from it with --sd" in line


def test_manifest_with_an_invalid_value_names_the_manifest(tiny_pipeline_dir, eeg_npy, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"eegs": [], "images": [{"eeg_id": "0", "sample": "zero", "file": "images/0_0.png"}]}))
    code, line = _run(capsys, _generate(tiny_pipeline_dir, eeg_npy, out))
    assert code == 2 and f"{out / 'manifest.json'}: images[0] is not a valid entry" in line and "move the file away" in line


def _fail_with(monkeypatch, exc):
    from brainvis_hf.apps import generate_folder

    def save_png(image, path):
        raise exc(path) if callable(exc) and not isinstance(exc, BaseException) else exc

    monkeypatch.setattr(generate_folder, "_save_png", save_png)


def test_disk_full_is_one_line_and_exit_1(tiny_pipeline_dir, eeg_npy, tmp_path, capsys, monkeypatch):
    _fail_with(monkeypatch, lambda path: OSError(errno.ENOSPC, "No space left on device", str(path)))
    code, line = _run(capsys, _generate(tiny_pipeline_dir, eeg_npy, tmp_path / "out"))
    assert code == 1
    assert line.startswith("brainvis generate: error: no space left on the device while writing ")
    assert "images/0_0.png" in line and "free some space and rerun the same command" in line


def test_ctrl_c_is_one_line_and_exit_130(tiny_pipeline_dir, eeg_npy, tmp_path, capsys, monkeypatch):
    _fail_with(monkeypatch, KeyboardInterrupt())
    code, line = _run(capsys, _generate(tiny_pipeline_dir, eeg_npy, tmp_path / "out"))
    assert code == 130 and line.startswith("brainvis generate: interrupted; files already finished are kept")


def test_unexpected_error_is_one_line_and_debug_shows_the_traceback(tiny_pipeline_dir, eeg_npy, tmp_path, capsys, monkeypatch):
    _fail_with(monkeypatch, RuntimeError("boom\nsecond line"))
    code, line = _run(capsys, _generate(tiny_pipeline_dir, eeg_npy, tmp_path / "out"))
    assert code == 1 and line == "brainvis generate: error: RuntimeError: boom second line (rerun with --debug for the traceback)"
    assert main(["--debug", *_generate(tiny_pipeline_dir, eeg_npy, tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError: boom" in err


class _Payload:
    pass


@pytest.mark.parametrize("kind", ["pickled object", "truncated"])
def test_convert_original_does_not_repeat_torch_advice(tmp_path, capsys, kind):
    path = tmp_path / "time.pth"
    if kind == "pickled object":
        torch.save({"encoder.weight": torch.zeros(2), "extra": _Payload()}, path)
    else:
        torch.save({"encoder.weight": torch.zeros(100)}, path)
        _truncate(path)
    code, line = _run(capsys, ["convert-original", "--time", str(path), "--output", str(tmp_path / "out")])
    assert code == 2 and str(path) in line
    assert "weights_only" not in line and "trust" not in line
    if kind == "pickled object":
        assert "Unsupported global" in line and "_Payload" in line
    else:
        assert "is not a readable PyTorch checkpoint (PytorchStreamReader failed reading zip archive" in line


def test_damaged_init_folder_for_training(prepared_data_dir, tiny_time_config, tmp_path, capsys):
    from brainvis_hf.models import BrainVisTimeEncoderForEEGClassification

    init = tmp_path / "time"
    BrainVisTimeEncoderForEEGClassification(tiny_time_config).save_pretrained(init)
    (init / "config.json").write_text('{"model_type": ')
    code, line = _run(capsys, ["train", "time-finetune", "--data", str(prepared_data_dir), "--output", str(tmp_path / "run"),
                               "--preset", "tiny", "--init", str(init), "--report-to", "none"])  # fmt: skip
    assert code == 2 and line.startswith(f"brainvis train: error: {init / 'config.json'} is not a valid JSON file")
    assert not (tmp_path / "run").exists()


def test_damaged_classifier_for_evaluate(tmp_path, capsys):
    classifier = tmp_path / "classifier"
    classifier.mkdir()
    (classifier / "config.json").write_text("{}")
    (classifier / "model.safetensors").write_bytes(b"\x00" * 4)
    code, line = _run(capsys, ["evaluate", "--generated", str(tmp_path), "--classifier", str(classifier)])
    assert code == 2 and line.startswith(f"brainvis evaluate: error: {classifier / 'model.safetensors'} is not a safetensors file")


def test_global_flags_after_the_sub_command(tiny_pipeline_dir, eeg_npy, tmp_path, capsys, monkeypatch):
    _fail_with(monkeypatch, RuntimeError("boom"))
    assert main([*_generate(tiny_pipeline_dir, eeg_npy, tmp_path / "out"), "--debug", "--no-verify"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    from brainvis_hf.cli import build_parser

    args = build_parser().parse_args(["data", "clip-targets", "--data", "x", "--no-verify"])
    assert args.no_verify is True and args.debug is False

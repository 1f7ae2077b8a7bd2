"""Fault injection for silent garbage: non-finite and overflowing EEG, empty batches, NaN in JSON."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from brainvis_hf._io import dumps_strict, finite_or_none
from brainvis_hf.models import (
    BrainVisForCLIPAlignment,
    BrainVisForEEGClassification,
    BrainVisFreqEncoderForEEGClassification,
    BrainVisFreqEncoderModel,
    BrainVisModel,
    BrainVisTimeEncoderForEEGClassification,
    BrainVisTimeEncoderForMaskedModeling,
    BrainVisTimeEncoderModel,
)

_MODELS = {
    "time": (BrainVisTimeEncoderModel, "time"),
    "time-classifier": (BrainVisTimeEncoderForEEGClassification, "time"),
    "time-lmm": (BrainVisTimeEncoderForMaskedModeling, "time"),
    "freq": (BrainVisFreqEncoderModel, "freq"),
    "freq-classifier": (BrainVisFreqEncoderForEEGClassification, "freq"),
    "timefreq": (BrainVisModel, "joint"),
    "timefreq-classifier": (BrainVisForEEGClassification, "joint"),
    "align": (BrainVisForCLIPAlignment, "joint"),
}


def _model(name, tiny_time_config, tiny_freq_config, tiny_brainvis_config):
    cls, kind = _MODELS[name]
    config = {"time": tiny_time_config, "freq": tiny_freq_config, "joint": tiny_brainvis_config}[kind]
    torch.manual_seed(0)
    return cls(copy.deepcopy(config)).eval()


@pytest.mark.parametrize("name", list(_MODELS))
def test_empty_batch_is_refused_by_every_forward(name, tiny_time_config, tiny_freq_config, tiny_brainvis_config):
    model = _model(name, tiny_time_config, tiny_freq_config, tiny_brainvis_config)
    for training in (False, True):
        model.train(training)
        with pytest.raises(ValueError, match=r"holds no recordings \(batch size 0, shape \(0, 128, 440\)\)"):
            model(eeg_values=torch.zeros(0, 128, 440))


@pytest.mark.parametrize("name", ["time", "freq-classifier", "align"])
def test_float64_that_overflows_the_model_dtype_is_refused(name, tiny_time_config, tiny_freq_config, tiny_brainvis_config):
    """Finite float64 values beyond float32's range became Inf after the check; now the check runs on
    the cast values."""
    model = _model(name, tiny_time_config, tiny_freq_config, tiny_brainvis_config)
    eeg = torch.randn(3, 128, 440, dtype=torch.float64)
    eeg[1, 5, 7] = 1e39
    assert bool(torch.isfinite(eeg).all())
    with pytest.raises(ValueError, match=r"overflow torch.float32 \(largest magnitude 1e\+39\) in batch item\(s\) \[1\]; standardise"):
        model(eeg_values=eeg)
    half = copy.deepcopy(model).half()
    eeg16 = torch.randn(2, 128, 440, dtype=torch.float32)
    eeg16[0, 0, 0] = 1e5  # finite in float32, Inf in float16
    with pytest.raises(ValueError, match=r"overflow torch.float16 .* batch item\(s\) \[0\]; .*or run the model in float32"):
        half(eeg_values=eeg16)
    model(eeg_values=torch.randn(1, 128, 440, dtype=torch.float64))  # in-range float64 still works


@pytest.mark.parametrize("name", ["time-classifier", "freq-classifier", "timefreq-classifier", "align"])
@pytest.mark.parametrize("dtype,amplitude", [(torch.float32, 3e37), (torch.float16, 3e4)], ids=["float32", "float16"])
def test_finite_but_huge_eeg_gives_an_error_not_class_0(name, dtype, amplitude, tiny_time_config, tiny_freq_config, tiny_brainvis_config):
    model = _model(name, tiny_time_config, tiny_freq_config, tiny_brainvis_config).to(dtype)
    eeg = torch.randn(3, 128, 440)
    eeg[2] = (eeg[2] * amplitude).clamp(-torch.finfo(dtype).max / 2, torch.finfo(dtype).max / 2)
    eeg = eeg.to(dtype)
    assert bool(torch.isfinite(eeg).all())
    with torch.no_grad():
        with pytest.raises(ValueError, match=r"NaN/Inf for batch item\(s\) \[2\] although the EEG is finite .*standardise the EEG"):
            model(eeg_values=eeg)
        out = model(eeg_values=eeg[:2])  # the other recordings are fine
    assert bool(torch.isfinite(out.logits).all())


def test_pipeline_names_the_recording(tiny_brainvis_pipeline):
    pipe = tiny_brainvis_pipeline
    pipe.set_progress_bar_config(disable=True)
    eeg = np.random.default_rng(0).standard_normal((3, 128, 440))
    eeg[1] *= 3e37
    with pytest.raises(ValueError, match=r"^recording\(s\) \[1\] \(batch indices\): the model's .* NaN/Inf"):
        pipe(eeg.astype(np.float32), num_inference_steps=1, refine=False, max_batch_size=1)
    eeg64 = np.random.default_rng(0).standard_normal((2, 128, 440))
    eeg64[0, 0, 0] = 1e300
    with pytest.raises(ValueError, match=r"overflow the EEG encoder's torch.float32 .* recording\(s\) \[0\]"):
        pipe(eeg64, num_inference_steps=1, refine=False)


def test_generate_names_the_eeg_and_writes_no_garbage(tiny_pipeline_dir, tmp_path, capsys):
    from brainvis_hf.cli import main

    eeg = np.random.default_rng(0).standard_normal((4, 128, 440)).astype(np.float32)
    eeg[3] *= 3e37
    np.save(tmp_path / "eeg.npy", eeg)
    out = tmp_path / "out"
    args = ["generate", "--model", str(tiny_pipeline_dir), "--eeg", str(tmp_path / "eeg.npy"), "--output", str(out),
            "--num-images-per-eeg", "1", "--steps", "1", "--no-refine", "--batch-size", "2", "--quiet"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"brainvis generate: error: EEG 3 ({tmp_path / 'eeg.npy'}): the model's")
    assert "standardise the EEG" in err and "float32" in err
    manifest_files = list(out.rglob("*.json"))
    for path in manifest_files:  # EEGs 0-1 were recorded; nothing non-finite was written
        json.loads(path.read_text(), parse_constant=lambda token: pytest.fail(f"{path} holds {token}"))
    assert not list((out / "images").glob("3_*.png"))

    eeg64 = np.random.default_rng(0).standard_normal((2, 128, 440))
    eeg64[1, 3, 3] = 1e200
    np.save(tmp_path / "eeg64.npy", eeg64)
    assert main(["generate", "--model", str(tiny_pipeline_dir), "--eeg", str(tmp_path / "eeg64.npy"),
                 "--output", str(tmp_path / "out64"), "--steps", "1", "--quiet"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{tmp_path / 'eeg64.npy'}: recording(s) 1 overflow float32 (largest magnitude 1e+200)" in err


def test_strict_json_refuses_nan_and_names_the_key(tmp_path):
    from brainvis_hf.apps.generate_folder import _write_json

    path = tmp_path / "manifest.json"
    path.write_text('{"ok": 1}')
    with pytest.raises(ValueError, match=r"manifest.json: refusing to write the non-finite number at 'eegs\[0\].probs\[1\]'"):
        _write_json(path, {"eegs": [{"probs": [0.5, float("nan")]}]})
    assert path.read_text() == '{"ok": 1}'  # the previous file is intact
    with pytest.raises(ValueError, match="'x'"):
        dumps_strict({"x": float("inf")})
    assert finite_or_none({"a": [1.0, float("nan")], "b": float("-inf"), "c": "NaN"}) == {"a": [1.0, None], "b": None, "c": "NaN"}


def test_no_unguarded_json_writer_in_the_package():
    """Every json.dump(s) in src/ is strict (allow_nan=False) or goes through dumps_strict."""
    import re
    from pathlib import Path

    import brainvis_hf

    offenders = []
    for path in Path(brainvis_hf.__file__).parent.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"json\.dumps?\(", text):
            depth, end = 0, match.end() - 1
            for end in range(match.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            if "allow_nan=False" not in text[match.start() : end]:
                offenders.append(f"{path.name}:{text[: match.start()].count(chr(10)) + 1}")
    assert offenders == []

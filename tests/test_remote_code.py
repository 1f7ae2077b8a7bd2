"""Saved BrainVis models load with ``trust_remote_code=True`` where ``brainvis_hf`` is not installed.

Every model class is saved (tiny preset) in this process together with its outputs on a fixed
input; one subprocess then hides the package (the editable-install finder and any ``sys.path``
entry holding ``brainvis_hf`` are removed, and the test asserts that ``import brainvis_hf``
fails), loads every folder with ``AutoModel.from_pretrained(folder, trust_remote_code=True)``
and recomputes the outputs, which must be the same (to float32 round-off).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file

import brainvis_hf.models as models
from brainvis_hf.presets import preset_dir

# (tiny config folder, model class)
MODELS = [
    ("time_encoder", "BrainVisTimeEncoderModel"),
    ("time_encoder", "BrainVisTimeEncoderForMaskedModeling"),
    ("time_encoder", "BrainVisTimeEncoderForEEGClassification"),
    ("freq_encoder", "BrainVisFreqEncoderModel"),
    ("freq_encoder", "BrainVisFreqEncoderForEEGClassification"),
    ("timefreq", "BrainVisModel"),
    ("timefreq", "BrainVisForEEGClassification"),
    ("align", "BrainVisForCLIPAlignment"),
]

# the child process: hide brainvis_hf, prove it is hidden, load every folder with remote code
CHILD = textwrap.dedent(
    """
    import importlib, importlib.util, json, sys
    from pathlib import Path

    sys.meta_path[:] = [f for f in sys.meta_path
                        if not getattr(f, "__module__", "").startswith("__editable__")]
    sys.path_hooks[:] = [h for h in sys.path_hooks
                         if "__editable__" not in getattr(h, "__module__", "") + repr(h)]
    sys.path[:] = [p for p in sys.path if not (Path(p or ".") / "brainvis_hf").exists()]
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()
    try:
        import brainvis_hf  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("brainvis_hf is still importable in the isolated process: " + brainvis_hf.__file__)

    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoModel

    root = Path(sys.argv[1])
    eeg = load_file(str(root / "input.safetensors"))["eeg_values"]
    report = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        torch.manual_seed(0)
        with torch.no_grad():
            output = model(eeg_values=eeg)
        tensors = {k: v.contiguous() for k, v in output.items() if isinstance(v, torch.Tensor)}
        save_file(tensors, str(root / (folder.name + ".remote.safetensors")))
        try:  # the opt-in CPU kernels are not part of the remote code
            model.enable_cpu_kernels()
            kernels = "enabled"
        except ImportError as error:
            kernels = str(error)
        report[folder.name] = {"class": type(model).__name__, "module": type(model).__module__,
                               "kernels": kernels}
    report["brainvis_hf_loaded"] = any(m.startswith("brainvis_hf") for m in sys.modules)
    print(json.dumps(report))
    """
)


def _outputs(model, eeg: torch.Tensor) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)  # the masked-modelling mask is random: same seed in both processes
    with torch.no_grad():
        output = model.eval()(eeg_values=eeg)
    return {k: v.contiguous() for k, v in output.items() if isinstance(v, torch.Tensor)}


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote_code")
    config_class = {"time_encoder": "BrainVisTimeEncoderConfig", "freq_encoder": "BrainVisFreqEncoderConfig"}
    expected = {}
    eeg = None
    for preset, class_name in MODELS:
        config_path = preset_dir(preset, "tiny") / "config.json"
        config_cls = getattr(models, config_class.get(preset, "BrainVisConfig"))
        config = config_cls.from_pretrained(config_path.parent)
        torch.manual_seed(0)
        model = getattr(models, class_name)(config)
        if eeg is None:
            time_config = getattr(config, "time_config", config)
            eeg = torch.randn(2, time_config.num_channels, time_config.num_samples, generator=torch.Generator().manual_seed(1))
            save_file({"eeg_values": eeg}, str(root / "input.safetensors"))
        model.save_pretrained(root / class_name)
        expected[class_name] = _outputs(model, eeg)
    return root, expected


def test_saved_folders_carry_auto_map_and_code(saved_models):
    root, _ = saved_models
    for _, class_name in MODELS:
        folder = root / class_name
        config = json.loads((folder / "config.json").read_text())
        auto_map = config.get("auto_map")
        assert auto_map, f"{class_name}: config.json has no auto_map"
        module, _, name = auto_map["AutoModel"].rpartition(".")
        assert name == class_name
        assert (folder / f"{module}.py").is_file(), f"{class_name}: {module}.py not saved next to the weights"
        config_module = auto_map["AutoConfig"].rpartition(".")[0]
        assert (folder / f"{config_module}.py").is_file()
        # the shipped code must not need the package
        for source in folder.glob("*.py"):
            assert "brainvis_hf" not in source.read_text(), f"{source.name} imports brainvis_hf"
        assert (folder / "model.safetensors").is_file()


def test_trust_remote_code_load_without_package(saved_models, tmp_path):
    root, expected = saved_models
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run(
        [sys.executable, "-I", "-c", CHILD, str(root)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report.pop("brainvis_hf_loaded") is False
    assert sorted(report) == sorted(name for _, name in MODELS)
    for class_name, info in report.items():
        assert info["class"] == class_name
        assert info["module"].startswith("transformers_modules"), info  # the copied remote code ran
        assert info.pop("kernels").startswith("The oneDNN CPU kernels come with the installed brainvis-hf"), info
        remote = load_file(str(root / f"{class_name}.remote.safetensors"))
        local = expected[class_name]
        assert sorted(remote) == sorted(local), class_name
        for key, value in local.items():
            # same weights and code; CPU inference kernels may round differently (float32 round-off)
            scale = max(float(value.abs().max()), 1.0)
            difference = float((remote[key] - value).abs().max())
            assert difference <= 1e-5 * scale, f"{class_name}.{key}: max |difference| {difference:.3g}"

"""Find the configuration folders shipped in ``hub_configs/``.

Presets: ``paper`` (the published sizes and hyper-parameters, GPU), ``small`` (minutes on a
2-core CPU; the recipe options that make the chain learn, see docs/training.md), ``tiny``
(seconds; tests) and the THINGS-EEG2 variants at 17 channels x 100 samples, 100 Hz
(``things-eeg2-small``: the sizes and recipe of ``small``, minutes on a 2-core CPU;
``things-eeg2-tiny``: width 32 for the tests, without the recipe options; ``things-eeg2-base``: a
one-GPU starting point, not tuned).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: preset name -> its folder under ``hub_configs/`` ("" = the top: the paper-size configurations)
PRESET_FOLDERS: dict[str, str] = {
    "paper": "",
    "small": "small",
    "tiny": "tiny",
    # THINGS-EEG2 preprocessed release: 17 channels x 100 samples at 100 Hz (LMM wave length 4 / 5).
    # small = the `small` preset's sizes and recipe (CPU minutes); base = a one-GPU starting point
    "things-eeg2-base": "things_eeg2/base",
    "things-eeg2-small": "things_eeg2/small",
    "things-eeg2-tiny": "things_eeg2/tiny",
}
PRESETS = tuple(PRESET_FOLDERS)


def preset_dir(name: str, preset: str = "paper") -> Path:
    """Folder of the ``preset`` configuration of model ``name`` (e.g. ``"time_encoder"``).

    Raises:
        ValueError: for an unknown preset.
        FileNotFoundError: when no such configuration folder is shipped (lists those that are).
    """
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; expected one of {', '.join(PRESETS)}.")
    root = Path(str(resources.files("brainvis_hf.hub_configs")))
    base = root / PRESET_FOLDERS[preset] if PRESET_FOLDERS[preset] else root
    folder = base / name
    if not folder.is_dir():
        known = sorted(
            p.name for p in base.iterdir()
            if p.is_dir() and p.name not in {"small", "tiny", "things_eeg2", "__pycache__"}
        )
        raise FileNotFoundError(
            f"No {preset!r} configuration named {name!r} in {base}; available: {', '.join(known) or 'none'}."
        )
    return folder

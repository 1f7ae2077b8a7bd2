"""Find the configuration folders shipped in ``hub_configs/``.

Presets: ``paper`` (the published sizes and hyper-parameters, GPU), ``small`` (minutes on a
2-core CPU; the recipe options that make the chain learn, see docs/training.md) and ``tiny``
(seconds; tests).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PRESETS = ("paper", "small", "tiny")


def preset_dir(name: str, preset: str = "paper") -> Path:
    """Folder of the ``preset`` configuration of model ``name`` (e.g. ``"time_encoder"``).

    Raises:
        ValueError: for an unknown preset.
        FileNotFoundError: when no such configuration folder is shipped (lists those that are).
    """
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; expected one of {', '.join(PRESETS)}.")
    root = Path(str(resources.files("brainvis_hf.hub_configs")))
    base = root if preset == "paper" else root / preset
    folder = base / name
    if not folder.is_dir():
        known = sorted(p.name for p in base.iterdir() if p.is_dir() and p.name not in {*PRESETS, "__pycache__"})
        raise FileNotFoundError(
            f"No {preset!r} configuration named {name!r} in {base}; available: {', '.join(known) or 'none'}."
        )
    return folder

"""Find the configuration folders shipped in ``hub_configs/`` (paper-size and tiny presets)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PRESETS = ("paper", "tiny")


def preset_dir(name: str, preset: str = "paper") -> Path:
    """Folder of the ``preset`` configuration of model ``name`` (e.g. ``"time_encoder"``).

    Raises:
        ValueError: for an unknown preset.
        FileNotFoundError: when no such configuration folder is shipped (lists those that are).
    """
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; expected one of {', '.join(PRESETS)}.")
    root = Path(str(resources.files("brainvis_hf.hub_configs")))
    base = root / "tiny" if preset == "tiny" else root
    folder = base / name
    if not folder.is_dir():
        known = sorted(p.name for p in base.iterdir() if p.is_dir() and p.name not in {"tiny", "__pycache__"})
        raise FileNotFoundError(
            f"No {preset!r} configuration named {name!r} in {base}; available: {', '.join(known) or 'none'}."
        )
    return folder

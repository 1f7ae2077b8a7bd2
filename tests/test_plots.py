"""``brainvis_hf.plots``: every figure of the package, drawn on the Agg canvas without pyplot."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import brainvis_hf
from brainvis_hf import plots

PACKAGE_DIR = Path(brainvis_hf.__file__).resolve().parent


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_every_plot_writes_a_png(tmp_path):
    history = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5, "eval_loss": 1.7, "eval_accuracy": 0.25},
               {"step": 2, "eval_runtime": 0.1, "train_loss": 1.8}, {"step": 3, "loss": float("nan")}]
    written = [
        plots.plot_training_curves(history, tmp_path / "run" / "curves.png", title="freq"),
        plots.plot_stage_curves({"freq": history, "align": [{"step": 1, "loss": 0.5}]}, tmp_path / "stages.png"),
        plots.plot_eeg_traces(np.random.default_rng(0).normal(size=(2, 4, 50)), tmp_path / "eeg.png", titles=["a", "b"]),
        plots.plot_confusion_matrix(np.eye(3, dtype=int), tmp_path / "cm.png", class_names=["x", "y", "z"], title="t"),
        plots.plot_per_class_ga(
            {"x": {"ga": 0.5, "false_alarm": 0.1, "above_false_alarm": 0.4},
             "y": {"ga": 1.0, "false_alarm": 1.0, "above_false_alarm": 0.0}}, 50, 1, tmp_path / "ga.png"),
        plots.plot_message("not computed: no labels", tmp_path / "msg.png"),
    ]
    for path in written:
        width, height = _png_size(path)
        assert width > 100 and height > 100
    # figure size x DPI: the run plot has 2 panels, loss (+ eval_loss) and accuracy; the runtime,
    # train_ and NaN values are left out
    assert _png_size(tmp_path / "run" / "curves.png") == (round(2 * 4.2 * plots.DPI), round(3.2 * plots.DPI))


def test_empty_histories_are_refused(tmp_path):
    with pytest.raises(ValueError, match="plot_stage_curves needs at least one stage history; got none."):
        plots.plot_stage_curves({}, tmp_path / "x.png")


def test_drawing_does_not_touch_pyplot(tmp_path):
    code = (
        "import sys, numpy as np\nfrom brainvis_hf import plots\n"
        f"plots.plot_confusion_matrix(np.eye(2, dtype=int), {str(tmp_path / 'cm.png')!r})\n"
        f"plots.plot_training_curves([{{'step': 1, 'loss': 1.0}}], {str(tmp_path / 'c.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_only_plots_imports_matplotlib():
    importers = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] == "matplotlib" for name in names):
                importers.append(str(path.relative_to(PACKAGE_DIR)))
    assert sorted(set(importers)) == ["plots.py"]


def test_public_names_point_at_plots():
    from brainvis_hf.training import plot_training_curves

    assert plot_training_curves is plots.plot_training_curves

"""Every figure brainvis-hf draws, with one matplotlib setup.

Figures are ``matplotlib.figure.Figure`` objects rendered by the Agg canvas (:func:`_figure`):
``pyplot`` and its process-wide backend are never touched, so drawing works headless, in threads
and next to a user's interactive session. Every function takes plain arrays / dicts and writes a
PNG (:func:`_save`).

- :func:`plot_training_curves`: one run's ``log_history`` (the run folder's ``training_curves.png``).
- :func:`plot_stage_curves`: loss and metrics of several stages, one panel each (the demo report).
- :func:`plot_eeg_traces`: a few channels of a few recordings.
- :func:`plot_confusion_matrix`: a classifier's confusion matrix; :func:`plot_message` a
  placeholder figure that says why a plot is missing.
- :func:`plot_per_class_ga`: generation accuracy per class (``brainvis evaluate``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

DPI = 110


def _figure(rows: int = 1, cols: int = 1, *, figsize: tuple[float, float], layout: str | None = None):
    """A figure on the Agg canvas and its ``rows x cols`` array of axes."""
    # lazy: matplotlib is an optional dependency, needed only when a picture is drawn
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout=layout)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False)


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def plot_message(text: str, path: str | os.PathLike) -> Path:
    """A small PNG that only says ``text`` (e.g. why a plot could not be drawn)."""
    fig, axes = _figure(figsize=(6, 2))
    ax = axes[0, 0]
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    return _save(fig, path)


def plot_training_curves(log_history: Sequence[dict[str, Any]], path: str | os.PathLike, title: str = "") -> str:
    """Plot the logged curves of a run (one panel per quantity, against the step) as a PNG."""
    skip = {"epoch", "step", "learning_rate", "grad_norm", "total_flos"}
    series: dict[str, list[tuple[float, float]]] = {}
    for record in log_history:
        step = record.get("step")
        for key, value in record.items():
            if key in skip or step is None or not isinstance(value, (int, float)):
                continue
            if key.startswith("train_") or key.endswith(("_runtime", "_per_second")):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                continue
            series.setdefault(key, []).append((step, float(value)))
    panels: dict[str, list[str]] = {}
    for key in sorted(series):
        base = key[len("eval_") :] if key.startswith("eval_") else key
        panels.setdefault(base, []).append(key)
    n = max(len(panels), 1)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = _figure(rows, cols, figsize=(4.2 * cols, 3.2 * rows))
    for ax, (base, keys) in zip(axes.flat, panels.items()):
        for key in keys:
            steps, values = zip(*series[key])
            label = "validation" if key.startswith("eval_") else "train"
            ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=label)
        ax.set_title(base)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    if not panels:
        axes.flat[0].text(0.5, 0.5, "nothing logged", ha="center", va="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return str(_save(fig, path))


def plot_stage_curves(histories: Mapping[str, Sequence[Mapping[str, Any]]], path: str | os.PathLike) -> Path:
    """Plot every stage's training loss and evaluation metrics (from ``log_history``) as PNG.

    ``histories`` maps a stage name to the ``log_history`` list of its ``trainer_state.json``;
    one panel per stage: ``loss`` and ``eval_loss`` against the step on the left axis and the
    ``eval_*accuracy*`` / ``eval_*cosine*`` metrics on the right axis.
    """
    if not histories:
        raise ValueError("plot_stage_curves needs at least one stage history; got none.")
    names = list(histories)
    cols = min(len(names), 3)
    rows = math.ceil(len(names) / cols)
    # legends sit under each panel (constrained layout makes room), so they never hide a curve
    fig, axes = _figure(rows, cols, figsize=(4.6 * cols, 4.2 * rows), layout="constrained")
    for ax, name in zip(axes.flat, names):
        history = histories[name]
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        handles = []
        for key, style in (("loss", "-"), ("eval_loss", "o--")):
            points = [(h["step"], h[key]) for h in history if key in h and "step" in h]
            if points:
                xs, ys = zip(*points)
                handles += ax.plot(xs, ys, style, label=key, markersize=3)
        ax.set_ylabel("loss")
        metric_keys = sorted(
            {
                k
                for h in history
                for k in h
                if k.startswith("eval_") and any(w in k for w in ("accuracy", "cosine", "probe", "hit_rate"))
            }
        )
        if metric_keys:
            twin = ax.twinx()
            for i, key in enumerate(metric_keys):
                points = [(h["step"], h[key]) for h in history if key in h and "step" in h]
                xs, ys = zip(*points)
                handles += twin.plot(xs, ys, "s:", label=key, markersize=3, color=f"C{(i + 2) % 10}")
            twin.set_ylabel("metric")
        if handles:
            ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=7,
                      frameon=False)
        else:
            ax.text(0.5, 0.5, "no logged values", ha="center", va="center", transform=ax.transAxes)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    return _save(fig, path)


def plot_diffusion_losses(
    history: Sequence[Mapping[str, Any]], vae_history: Sequence[Mapping[str, Any]], path: str | os.PathLike
) -> Path:
    """The diffusion stage's loss curves (UNet noise-prediction MSE; VAE reconstruction MSE when the
    VAE was trained too) against the optimizer step, log scale, as PNG."""
    panels = [("UNet noise-prediction loss (MSE)", history, "loss")]
    if vae_history:
        panels.insert(0, ("VAE reconstruction MSE", vae_history, "vae_mse"))
    fig, axes = _figure(1, len(panels), figsize=(4.6 * len(panels), 3.3))
    for ax, (title, records, key) in zip(axes.flat, panels):
        ax.plot([r["step"] for r in records], [r[key] for r in records])
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_eeg_traces(
    eeg: np.ndarray,
    path: str | os.PathLike,
    *,
    titles: Sequence[str] | None = None,
    channels: Sequence[int] | None = None,
    sample_rate: float = 1000.0,
    time_offset_s: float = 0.02,
) -> Path:
    """Plot a few channels of each recording (``eeg``: N x C x T) stacked with an offset; PNG.

    Args:
        eeg: recordings, channels first.
        path: PNG file to write.
        titles: one title per recording (e.g. its class name).
        channels: channel indices to draw (default: 8 channels spread over the montage).
        sample_rate: samples per second (EEG-ImageNet: 1 kHz).
        time_offset_s: time of the first sample (the standard crop starts at 20 ms).
    """
    eeg = np.asarray(eeg, dtype=np.float32)
    if eeg.ndim == 2:
        eeg = eeg[None]
    if eeg.ndim != 3:
        raise ValueError(f"eeg must be N x C x T (or C x T); got shape {tuple(eeg.shape)}.")
    num, num_channels, num_samples = eeg.shape
    if channels is None:
        channels = np.linspace(0, num_channels - 1, num=min(8, num_channels)).round().astype(int).tolist()
    bad = [c for c in channels if not 0 <= c < num_channels]
    if bad:
        raise ValueError(f"channels {bad} out of range for {num_channels} EEG channels.")
    cols = min(num, 3)
    rows = math.ceil(num / cols)
    fig, axes = _figure(rows, cols, figsize=(4.2 * cols, 3.2 * rows))
    t = time_offset_s * 1000 + np.arange(num_samples) / sample_rate * 1000
    for i, ax in enumerate(axes.flat):
        if i >= num:
            ax.axis("off")
            continue
        traces = eeg[i, list(channels)]
        spread = float(np.nanmax(np.abs(traces))) if traces.size else 1.0
        step = 2.0 * (spread or 1.0)
        for k, channel in enumerate(channels):
            ax.plot(t, traces[k] - k * step, linewidth=0.7)
        ax.set_yticks([-k * step for k in range(len(channels))])
        ax.set_yticklabels([f"ch {c}" for c in channels], fontsize=7)
        ax.set_xlabel("time (ms)")
        ax.set_title(titles[i] if titles is not None and i < len(titles) else f"recording {i}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


#: the confusion matrix's width in inches beyond 12 classes: it fills the report's 1100-pixel
#: column without being scaled down, so 8-point labels stay legible at 40 classes
_CONFUSION_LARGE_INCHES = 1080 / DPI


def _short_label(name: str, limit: int = 22) -> str:
    """The first synonym of a class name, cut to ``limit`` characters (tick labels at 40 classes)."""
    first = str(name).split(",")[0].strip()
    return first if len(first) <= limit else first[: limit - 1] + "\u2026"


def plot_confusion_matrix(
    matrix: np.ndarray, path: str | os.PathLike, *, class_names: Sequence[str] | None = None, title: str = ""
) -> Path:
    """Plot a square confusion matrix (rows: true class, columns: predicted class) as PNG."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"confusion matrix must be square; got shape {tuple(matrix.shape)}.")
    if class_names is not None and len(class_names) != matrix.shape[0]:
        raise ValueError(f"{len(class_names)} class names for a {matrix.shape[0]}-class confusion matrix.")
    n = matrix.shape[0]
    size = 4.0 + 0.16 * n if n <= 12 else _CONFUSION_LARGE_INCHES
    fig, axes = _figure(figsize=(size, size))
    ax = axes[0, 0]
    image = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
    colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if np.issubdtype(matrix.dtype, np.integer):  # counts: whole-number ticks
        from matplotlib.ticker import MaxNLocator

        colorbar.locator = MaxNLocator(integer=True)
        colorbar.update_ticks()
    ticks = np.arange(n)
    labels = [_short_label(c) for c in class_names] if class_names is not None else [str(i) for i in ticks]
    fontsize = 9 if n <= 12 else 8
    if n > 12:  # faint grid lines: rows and columns can be followed across 40 classes
        ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
        ax.grid(which="minor", color="#d0d7de", linewidth=0.4)
        ax.tick_params(which="minor", length=0)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels(labels, rotation=90, fontsize=fontsize)
    ax.set_yticklabels(labels, fontsize=fontsize)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_per_class_ga(per_class: dict[str, dict[str, float]], n_way: int, top_k: int, path: str | os.PathLike) -> Path:
    """Per EEG class: GA minus its false-alarm rate (``evaluation.report.per_class_generation_accuracy``),
    so a class the classifier names for every image (noise) stands at 0, not at 100 %."""
    names = list(per_class)
    values = [100 * per_class[n]["above_false_alarm"] for n in names]
    values = [0.0 if v != v else v for v in values]  # NaN (a single class): nothing to compare with
    fig, axes = _figure(figsize=(max(6.0, 0.3 * len(names) + 2), 4.5))
    ax = axes[0, 0]
    ax.bar(range(len(names)), values, color=["tab:blue" if v >= 0 else "tab:gray" for v in values])
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_ylim(min(-10.0, min(values, default=0.0) - 5), 100)
    ax.set_ylabel(f"GA {n_way}-way top-{top_k} minus false alarms (%)")
    ax.set_title("Generation accuracy per class, above the rate at which other classes' images score as it",
                 fontsize=9)
    fig.tight_layout()
    return _save(fig, path)

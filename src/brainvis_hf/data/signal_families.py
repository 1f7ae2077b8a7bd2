"""Synthetic EEG-ImageNet files from signal models other than :mod:`.synthetic`'s.

A recipe tuned on one generator can learn that generator's quirks. These families put the class
into the EEG in different ways, so a learning claim can be checked on data nobody tuned to
(``benchmarks/bench_learning.py``, ``tests/test_learning.py``). The files have exactly the
EEG-ImageNet structure (see :func:`brainvis_hf.data.write_synthetic_eeg_imagenet`).

Families (sampled at 1 kHz, 128 channels, stimulus at sample 0, the class signal inside the
cropped window 20..460):

* ``"evoked"``: a phase-locked evoked wave per class (its own frequency 4..30 Hz, latency
  100..350 ms and width), projected on a class-specific random spatial pattern.
* ``"induced"``: random-phase bursts of the class frequency (8..60 Hz) at random times, on a
  class-specific spatial pattern: the class lives in band power, not in the waveform.
* ``"spatial"``: one sustained response shared by all classes (same time course), whose
  topography is class-specific: the class lives in the spatial pattern only.
* ``"latency"``: evoked waves whose latency is shifted per subject (by up to +-60 ms), so
  the same class peaks at other times in other subjects.

Subjects differ by a per-channel gain (0.6..1.4). Backgrounds:

* ``"pink"``: 1/f noise band-limited to 5..95 Hz at unit standard deviation per channel;
* ``"drift"``: white noise plus a slow drift (random walk and < 2 Hz sinusoids, several times
  the noise amplitude, a random offset per channel).

``difficulty`` in [0, 1] scales the class signal by ``1 - difficulty`` (1 = no class signal).
The recordings are *not* standardised: each file is what a user's raw export might look like.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .labels import EEG_IMAGENET_WNIDS
from .synthetic import (
    SIGNALS_FILE_NAME,
    SPLITS_FILE_NAME,
    SyntheticEEGImageNetFiles,
    _atomic_torch_save,
    _image_names,
    _splits_by_image,
)

SIGNAL_FAMILIES = ("evoked", "induced", "spatial", "latency")
BACKGROUNDS = ("pink", "drift")
_RATE = 1000.0
_LENGTH = 500  # samples per recording (the standard crop keeps 20..460)


def write_signal_family(
    output_dir: str | os.PathLike,
    family: str,
    *,
    background: str = "pink",
    difficulty: float = 0.0,
    num_images_per_class: int = 10,
    num_subjects: int = 2,
    num_classes: int = 40,
    num_channels: int = 128,
    seed: int = 0,
    overwrite: bool = False,
) -> SyntheticEEGImageNetFiles:
    """Write ``eeg_5_95_std.pth`` + ``block_splits_by_image_all.pth`` of one signal family.

    Args:
        output_dir: folder to write into.
        family: one of :data:`SIGNAL_FAMILIES` (see the module docstring).
        background: ``"pink"`` or ``"drift"``.
        difficulty: 0 (full class signal) .. 1 (none).
        num_images_per_class / num_subjects / num_classes / num_channels: sizes (every subject sees
            every image once; splits are by image, ~80/10/10).
        seed: the same arguments give the same files.
        overwrite: replace existing files.
    """
    if family not in SIGNAL_FAMILIES:
        raise ValueError(f"family={family!r}: expected one of {SIGNAL_FAMILIES}")
    if background not in BACKGROUNDS:
        raise ValueError(f"background={background!r}: expected one of {BACKGROUNDS}")
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty={difficulty}: expected a value in [0, 1]")
    if not 1 <= num_classes <= len(EEG_IMAGENET_WNIDS):
        raise ValueError(f"num_classes={num_classes}: expected 1..{len(EEG_IMAGENET_WNIDS)}")
    if num_images_per_class < 3:
        raise ValueError(f"num_images_per_class={num_images_per_class}: need at least 3 (train/val/test)")
    output_dir = Path(output_dir)
    eeg_path, splits_path = output_dir / SIGNALS_FILE_NAME, output_dir / SPLITS_FILE_NAME
    if not overwrite and (eeg_path.exists() or splits_path.exists()):
        raise FileExistsError(f"{output_dir}: already holds the EEG-ImageNet files; pass overwrite=True")
    output_dir.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    wnids = list(EEG_IMAGENET_WNIDS[:num_classes])
    images, image_labels = _image_names(wnids, num_images_per_class, rng)
    rec_image = np.concatenate([rng.permutation(len(images)) for _ in range(num_subjects)])
    rec_subject = np.repeat(np.arange(1, num_subjects + 1), len(images))
    rec_label = image_labels[rec_image]

    shape = (len(rec_label), num_channels, _LENGTH)
    background_signal = _pink(shape, rng) if background == "pink" else _drift(shape, rng)
    gain = rng.uniform(0.6, 1.4, size=(num_subjects + 1, num_channels))[rec_subject]  # (N, C)
    class_signal = _FAMILY_SIGNALS[family](rec_label, rec_subject, num_classes, num_channels, rng)
    eeg = background_signal + (1.0 - difficulty) * gain[:, :, None] * class_signal

    dataset = [
        {"eeg": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), "image": int(i), "label": int(y),
         "subject": int(s)}
        for x, i, y, s in zip(eeg, rec_image, rec_label, rec_subject)
    ]  # fmt: skip
    splits = {"splits": _splits_by_image(image_labels, rec_image, num_classes, 1, rng)}
    _atomic_torch_save({"dataset": dataset, "labels": wnids, "images": images}, eeg_path)
    _atomic_torch_save(splits, splits_path)
    return SyntheticEEGImageNetFiles(output_dir, eeg_path, splits_path, None, len(dataset), len(dataset))


# ----------------------------------------------------------------------------------------------
# Backgrounds
# ----------------------------------------------------------------------------------------------


def _pink(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """1/f noise band-limited to 5..95 Hz, unit standard deviation per channel and recording."""
    freqs = np.fft.rfftfreq(shape[-1], d=1.0 / _RATE)
    gain = np.where((freqs >= 5) & (freqs <= 95), 1.0 / np.sqrt(np.maximum(freqs, 1.0)), 0.0)
    coeffs = rng.normal(size=(*shape[:-1], len(freqs))) + 1j * rng.normal(size=(*shape[:-1], len(freqs)))
    noise = np.fft.irfft(coeffs * gain, n=shape[-1], axis=-1)
    return noise / noise.std(axis=-1, keepdims=True)


def _drift(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """White noise (sd 1) + random walk + slow sinusoids + offsets (per channel, and per recording)."""
    n, c, t = shape
    white = rng.normal(size=shape)
    walk = np.cumsum(rng.normal(scale=0.03, size=shape), axis=-1)
    time = np.arange(t) / _RATE
    slow_f = rng.uniform(0.2, 2.0, size=(n, c, 1))
    slow = rng.uniform(0.2, 1.0, size=(n, c, 1)) * np.sin(2 * np.pi * slow_f * time + rng.uniform(0, 2 * np.pi, (n, c, 1)))
    offset = rng.normal(scale=0.5, size=(n, c, 1)) + rng.normal(scale=10.0, size=(1, c, 1))
    return white + walk + slow + offset


# ----------------------------------------------------------------------------------------------
# Class signals: (N,) labels -> (N, C, T)
# ----------------------------------------------------------------------------------------------


def _topographies(num_classes: int, num_channels: int, rng: np.random.Generator) -> np.ndarray:
    """A random smooth-ish spatial pattern per class, unit RMS over channels."""
    raw = rng.normal(size=(num_classes, num_channels))
    kernel = np.exp(-0.5 * (np.arange(-6, 7) / 3.0) ** 2)
    half = len(kernel) // 2
    smooth = np.stack([np.convolve(r, kernel, mode="full")[half : half + num_channels] for r in raw])
    return smooth / np.sqrt((smooth**2).mean(axis=1, keepdims=True))


def _evoked_wave(time_ms: np.ndarray, freq: np.ndarray, latency: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Gabor bursts, phase-locked to the stimulus: (N, 1) parameters -> (N, T)."""
    dt = time_ms[None, :] - latency
    return np.exp(-0.5 * (dt / width) ** 2) * np.cos(2 * np.pi * freq * dt / 1000.0)


def _evoked(labels, subjects, num_classes, num_channels, rng, *, subject_shift_ms: float = 0.0):
    topo = _topographies(num_classes, num_channels, rng)
    freq = rng.uniform(4, 30, size=num_classes)
    latency = rng.uniform(100, 350, size=num_classes)
    width = rng.uniform(30, 60, size=num_classes)
    shift = rng.uniform(-subject_shift_ms, subject_shift_ms, size=subjects.max() + 1)
    jitter = rng.normal(scale=5.0, size=len(labels))
    time_ms = np.arange(_LENGTH, dtype=np.float64)
    wave = _evoked_wave(
        time_ms, freq[labels, None], (latency[labels] + shift[subjects] + jitter)[:, None], width[labels, None]
    )
    amplitude = np.exp(rng.normal(scale=0.2, size=(len(labels), 1, 1)))
    return 1.5 * amplitude * topo[labels][:, :, None] * wave[:, None, :]


def _latency(labels, subjects, num_classes, num_channels, rng):
    return _evoked(labels, subjects, num_classes, num_channels, rng, subject_shift_ms=60.0)


def _induced(labels, subjects, num_classes, num_channels, rng):
    topo = np.abs(_topographies(num_classes, num_channels, rng))  # power, not polarity, is spatial
    freq = rng.permutation(np.linspace(8, 60, num_classes))
    time_ms = np.arange(_LENGTH, dtype=np.float64)
    out = np.zeros((len(labels), num_channels, _LENGTH))
    for _ in range(3):  # three bursts per trial, random times and phases
        centre = rng.uniform(60, 420, size=(len(labels), 1))
        phase = rng.uniform(0, 2 * np.pi, size=(len(labels), 1))
        envelope = np.exp(-0.5 * ((time_ms[None] - centre) / 60.0) ** 2)
        burst = envelope * np.cos(2 * np.pi * freq[labels, None] * time_ms[None] / 1000.0 + phase)
        out += topo[labels][:, :, None] * burst[:, None, :]
    return 1.5 * out


def _spatial(labels, subjects, num_classes, num_channels, rng):
    topo = _topographies(num_classes, num_channels, rng)
    time_ms = np.arange(_LENGTH, dtype=np.float64)
    course = 1.0 / (1.0 + np.exp(-(time_ms - 120.0) / 15.0)) * np.exp(-np.maximum(time_ms - 120.0, 0) / 400.0)
    amplitude = np.exp(rng.normal(scale=0.3, size=(len(labels), 1, 1)))
    return 0.8 * amplitude * topo[labels][:, :, None] * course[None, None, :]


_FAMILY_SIGNALS = {"evoked": _evoked, "induced": _induced, "spatial": _spatial, "latency": _latency}

__all__ = ["BACKGROUNDS", "SIGNAL_FAMILIES", "write_signal_family"]

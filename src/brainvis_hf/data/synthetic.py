"""A synthetic EEG-ImageNet in exactly the real file format, with a learnable class signal.

Nothing of the real data set can be downloaded here, so tests, the demo and first experiments use
files written by :func:`write_synthetic_eeg_imagenet`. They have the structure of the real
``eeg_5_95_std.pth`` and ``block_splits_by_image_all.pth`` (see
``shared/reference/eeg-imagenet.md``): 40 classes in the real label order, image names such as
``n02951358_31190``, one recording per image and subject, variable lengths (mostly ~500 samples,
a few shorter than 450 or longer than 600), several splits by image (~80/10/10).

The signal model (sampled at 1 kHz, stimulus onset at sample 0):

* **Class-specific evoked responses.** Each class has ``3`` components; component ``j`` of class
  ``k`` is a Gabor-like burst ``cos(2 pi f_kj (t - tau_kj) + phi_kj) * exp(-(t - tau_kj)^2 / 2
  sigma_kj^2)`` with frequency ``f_kj`` in 5..25 Hz, latency ``tau_kj`` in 80..350 ms and width
  ``sigma_kj`` in 25..70 ms, projected onto a class-specific group of neighbouring channels
  (Gaussian spatial profile around a random centre channel, random sign).
* **Per-subject variation.** Each subject has its own latency shift (sd 8 ms) and per-channel
  gain (0.7..1.3); every trial adds latency jitter (sd 5 ms) and amplitude jitter (~20 %).
* **Realistic background.** 1/f ("pink") noise per channel, band-limited to 5..95 Hz like the
  ``eeg_5_95`` file, plus an alpha rhythm (~10 Hz, random phase and amplitude per trial) and a
  few common sources mixed into all channels (volume conduction).
* **Standardised** per channel over the whole data set (zero mean, unit variance), like the
  ``_std`` files.

``difficulty`` in [0, 1] sets the evoked amplitude relative to the background:
``amplitude = 4 * (1 - difficulty)`` background standard deviations at the burst peak (each
component spreads over ~1/12 of the channels). ``0``
is easy, ``1`` removes the class signal (chance level). Measured on a 40 classes x 5 images x 2
subjects set (240 training / 79 test recordings, chance 2.5 %), with the signal averaged over
10-sample bins as features: a nearest-class-mean classifier reaches 73 % test accuracy at the
default ``0.5``, 14 % at ``0.75`` and 8 % (chance) at ``1``; a logistic regression 82 %, 27 %
and 3 %.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .labels import EEG_IMAGENET_WNIDS

SIGNALS_FILE_NAME = "eeg_5_95_std.pth"
SPLITS_FILE_NAME = "block_splits_by_image_all.pth"
SAMPLING_RATE = 1000  # Hz

_NUM_COMPONENTS = 3
_CHUNK = 256  # recordings generated at once
_MAX_AMPLITUDE = 4.0  # evoked peak amplitude at difficulty 0, in background standard deviations
_SPATIAL_WIDTH = 1 / 12  # spatial spread of a component, as a fraction of the channels


@dataclass
class SyntheticEEGImageNetFiles:
    """Where :func:`write_synthetic_eeg_imagenet` wrote what."""

    output_dir: Path
    eeg_path: Path
    splits_path: Path
    image_root: Path | None
    num_recordings: int
    num_in_length_range: int


def write_synthetic_eeg_imagenet(
    output_dir: str | os.PathLike,
    *,
    num_images_per_class: int = 50,
    num_subjects: int = 6,
    num_channels: int = 128,
    difficulty: float = 0.5,
    seed: int = 0,
    with_images: bool = False,
    num_splits: int = 6,
    out_of_range_fraction: float = 0.003,
    image_size: int = 32,
    overwrite: bool = False,
    show_progress: bool = True,
) -> SyntheticEEGImageNetFiles:
    """Write ``eeg_5_95_std.pth`` and ``block_splits_by_image_all.pth`` of the real structure.

    Args:
        output_dir: folder to write into (created; existing output files are only replaced with
            ``overwrite=True``).
        num_images_per_class: images per class (real: 50); at least 3 (train/val/test).
        num_subjects: subjects, numbered 1..N (real: 6); each sees every image once.
        num_channels: EEG channels (real: 128).
        difficulty: 0 (strong class signal) .. 1 (no class signal); see the module docstring.
        seed: random seed; the same arguments give the same files.
        with_images: also write tiny class images at ``images/<wnid>/<name>.JPEG`` (a
            class-specific colour and stripe pattern with per-image variation).
        num_splits: splits in the splits file (all by image, ~80/10/10).
        out_of_range_fraction: fraction of recordings shorter than 450 or longer than 600
            samples (at least one of each); the full-size default keeps 11,964 of 12,000.
        image_size: side of the square images, in pixels.
        overwrite: replace existing output files.
        show_progress: show a progress bar.

    Returns:
        :class:`SyntheticEEGImageNetFiles` with the paths and counts.
    """
    if num_images_per_class < 3:
        raise ValueError(f"num_images_per_class={num_images_per_class}: need at least 3 (train/val/test)")
    if num_subjects < 1 or num_channels < 1 or num_splits < 1:
        raise ValueError("num_subjects, num_channels and num_splits must be >= 1")
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty={difficulty}: expected a value in [0, 1]")
    output_dir = Path(output_dir)
    eeg_path, splits_path = output_dir / SIGNALS_FILE_NAME, output_dir / SPLITS_FILE_NAME
    image_root = output_dir / "images" if with_images else None
    existing = [p for p in (eeg_path, splits_path, output_dir / "images") if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{output_dir}: already holds {[p.name for p in existing]}; pass overwrite=True "
            "(--overwrite) to replace them"
        )
    output_dir.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    wnids = list(EEG_IMAGENET_WNIDS)
    num_classes = len(wnids)
    images, image_labels = _image_names(wnids, num_images_per_class, rng)
    num_images = len(images)

    # recordings: subject by subject, each seeing all images in a random order
    rec_image = np.concatenate([rng.permutation(num_images) for _ in range(num_subjects)])
    rec_subject = np.repeat(np.arange(1, num_subjects + 1), num_images)
    rec_label = image_labels[rec_image]
    lengths = _lengths(len(rec_image), out_of_range_fraction, rng)

    eegs = _generate_signals(
        rec_label, rec_subject, lengths, num_classes=num_classes, num_subjects=num_subjects,
        num_channels=num_channels, difficulty=difficulty, rng=rng, show_progress=show_progress,
    )
    dataset = [
        {"eeg": eeg, "image": int(img), "label": int(lab), "subject": int(sub)}
        for eeg, img, lab, sub in zip(eegs, rec_image, rec_label, rec_subject)
    ]
    signals = {"dataset": dataset, "labels": wnids, "images": images}
    splits = {"splits": _splits_by_image(image_labels, rec_image, num_classes, num_splits, rng)}

    _atomic_torch_save(signals, eeg_path)
    _atomic_torch_save(splits, splits_path)
    if with_images:
        _write_images(image_root, images, image_labels, image_size, rng, overwrite=overwrite)
    in_range = int(((lengths >= 450) & (lengths <= 600)).sum())
    return SyntheticEEGImageNetFiles(output_dir, eeg_path, splits_path, image_root, len(dataset), in_range)


# ----------------------------------------------------------------------------------------------
# Pieces
# ----------------------------------------------------------------------------------------------


def _image_names(wnids: list[str], per_class: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """ImageNet-like names ``<wnid>_<number>``, class by class; and each image's class index."""
    names = []
    for wnid in wnids:
        numbers = np.sort(rng.choice(np.arange(1, 60000), size=per_class, replace=False))
        names.extend(f"{wnid}_{n}" for n in numbers)
    return names, np.repeat(np.arange(len(wnids)), per_class)


def _lengths(n: int, out_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Mostly ~500 samples (465..595); a few < 450 and a few > 600."""
    lengths = np.clip(np.rint(rng.normal(500, 10, size=n)), 465, 595).astype(np.int64)
    n_out = max(2, int(round(out_fraction * n))) if n >= 4 else 0
    out = rng.choice(n, size=n_out, replace=False)
    half = n_out // 2
    lengths[out[:half]] = rng.integers(380, 450, size=half)
    lengths[out[half:]] = rng.integers(601, 700, size=n_out - half)
    return lengths


def _splits_by_image(image_labels, rec_image, num_classes, num_splits, rng) -> list[dict[str, list[int]]]:
    """Per split: per class, a random ~80/10/10 partition of its images; recordings follow their image."""
    recs_of_image: dict[int, list[int]] = {}
    for rec, img in enumerate(rec_image.tolist()):
        recs_of_image.setdefault(img, []).append(rec)
    splits = []
    for _ in range(num_splits):
        parts = {"train": [], "val": [], "test": []}
        for k in range(num_classes):
            imgs = rng.permutation(np.flatnonzero(image_labels == k))
            n = len(imgs)
            n_val = n_test = max(1, int(round(0.1 * n)))
            chosen = {"test": imgs[:n_test], "val": imgs[n_test : n_test + n_val], "train": imgs[n_test + n_val :]}
            for name, part in chosen.items():
                for img in part.tolist():
                    parts[name].extend(recs_of_image[img])
        splits.append({name: sorted(idx) for name, idx in parts.items()})
    return splits


def _class_parameters(num_classes: int, num_channels: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    k, j = num_classes, _NUM_COMPONENTS
    centre = rng.integers(0, num_channels, size=(k, j))
    width = max(1.0, num_channels * _SPATIAL_WIDTH)  # spatial spread, in channels
    ch = np.arange(num_channels)
    dist = np.abs(ch[None, None, :] - centre[..., None])
    dist = np.minimum(dist, num_channels - dist)  # channels on a ring
    sign = rng.choice([-1.0, 1.0], size=(k, j, 1))
    return {
        "spatial": (sign * np.exp(-0.5 * (dist / width) ** 2)).astype(np.float32),  # (K, J, C)
        "freq": rng.uniform(5, 25, size=(k, j)),
        "latency": rng.uniform(80, 350, size=(k, j)),
        "sigma": rng.uniform(25, 70, size=(k, j)),
        "phase": rng.uniform(0, 2 * np.pi, size=(k, j)),
    }


def _pink_noise(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Unit-variance 1/f noise along the last axis, band-limited to 5..95 Hz.

    Drawn directly in the frequency domain: complex Gaussian coefficients with amplitude
    ``1/sqrt(f)`` inside the band, then one inverse FFT (``torch.fft``, length rounded up to a
    multiple of 64 and cropped). Seeded from ``rng``, so the output is reproducible.
    """
    t = shape[-1]
    n_fft = -(-t // 64) * 64
    generator = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
    freqs = torch.fft.rfftfreq(n_fft, d=1.0 / SAMPLING_RATE)
    band = (freqs >= 5) & (freqs <= 95) & (freqs < SAMPLING_RATE / 2)
    gain = torch.where(band, 1.0 / freqs.clamp(min=1.0).sqrt(), torch.zeros_like(freqs))
    # DC and Nyquist are outside the band, so each sample has variance 4 * sum(gain^2) / n_fft^2
    gain = gain * (n_fft / (2.0 * gain.square().sum().sqrt()))
    coefficients = torch.view_as_complex(torch.randn(*shape[:-1], len(freqs), 2, generator=generator))
    noise = torch.fft.irfft(coefficients * gain, n=n_fft, dim=-1)[..., :t]
    return noise.contiguous().numpy()


def _generate_signals(
    labels, subjects, lengths, *, num_classes, num_subjects, num_channels, difficulty, rng, show_progress
) -> list[torch.Tensor]:
    params = _class_parameters(num_classes, num_channels, rng)
    subject_shift = rng.normal(0, 8, size=num_subjects + 1)
    subject_gain = rng.uniform(0.7, 1.3, size=(num_subjects + 1, num_channels)).astype(np.float32)
    mixing = rng.normal(0, 1 / math.sqrt(4), size=(num_channels, 4)).astype(np.float32)  # common sources
    amplitude = _MAX_AMPLITUDE * (1.0 - difficulty)

    n = len(labels)
    arrays: list[np.ndarray] = []
    ch_sum = np.zeros(num_channels, dtype=np.float64)
    ch_sq = np.zeros(num_channels, dtype=np.float64)
    count = 0
    for start in tqdm(range(0, n, _CHUNK), desc="Synthesising EEG", unit="chunk", disable=not show_progress):
        sl = slice(start, min(start + _CHUNK, n))
        y, s, lens = labels[sl], subjects[sl], lengths[sl]
        b, t_max = len(y), int(lens.max())
        t = np.arange(t_max, dtype=np.float32)[None, :]

        # background: pink noise + alpha rhythm + common sources
        x = _pink_noise((b, num_channels, t_max), rng)
        alpha_f = rng.uniform(8.5, 11.5, size=(b, 1, 1))
        alpha_amp = rng.uniform(0.2, 0.6, size=(b, num_channels, 1)).astype(np.float32)
        alpha_phase = rng.uniform(0, 2 * np.pi, size=(b, 1, 1))
        x += alpha_amp * np.cos(2 * np.pi * alpha_f * t[None] / SAMPLING_RATE + alpha_phase).astype(np.float32)
        sources = _pink_noise((b, mixing.shape[1], t_max), rng)
        x += np.einsum("cs,bst->bct", mixing, sources) * 0.5

        # class-specific evoked responses
        if amplitude > 0:
            trial_amp = np.exp(rng.normal(0, 0.2, size=(b, 1))).astype(np.float32) * amplitude
            for j in range(_NUM_COMPONENTS):
                lat = params["latency"][y, j] + subject_shift[s] + rng.normal(0, 5, size=b)
                dt = t - lat[:, None]  # (b, T) in ms
                burst = np.exp(-0.5 * (dt / params["sigma"][y, j][:, None]) ** 2) * np.cos(
                    2 * np.pi * params["freq"][y, j][:, None] * dt / SAMPLING_RATE + params["phase"][y, j][:, None]
                )
                spatial = params["spatial"][y, j] * subject_gain[s]  # (b, C)
                x += (trial_amp * spatial)[:, :, None] * burst.astype(np.float32)[:, None, :]

        for i in range(b):
            rec = np.array(x[i, :, : lens[i]], copy=True)  # own buffer, not a view of the chunk
            ch_sum += rec.sum(axis=1)
            ch_sq += np.square(rec, dtype=np.float64).sum(axis=1)
            count += rec.shape[1]
            arrays.append(rec)

    # standardise each channel over the whole data set, like the `_std` files
    mean = ch_sum / count
    std = np.sqrt(np.maximum(ch_sq / count - mean**2, 1e-12))
    mean32, scale32 = mean.astype(np.float32)[:, None], (1.0 / std).astype(np.float32)[:, None]
    for rec in arrays:
        rec -= mean32
        rec *= scale32
    return [torch.from_numpy(rec) for rec in arrays]


def _class_image(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A class colour (hue k/40, two brightness levels) with class-oriented stripes, plus noise."""
    hue = label / 40.0
    value = 0.9 if label % 2 == 0 else 0.6
    base = np.array(_hsv_to_rgb(hue, 0.8, value))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = (label % 4) * np.pi / 4
    freq = 2 + (label // 4) % 3 * 2
    phase = rng.uniform(0, 2 * np.pi)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
    img = base[None, None, :] * (0.55 + 0.45 * stripes[..., None])
    img += rng.normal(0, 0.04, size=img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    import colorsys

    return colorsys.hsv_to_rgb(h, s, v)


def _write_images(root: Path, images: list[str], image_labels: np.ndarray, size: int, rng, *, overwrite: bool) -> None:
    from PIL import Image

    if root.exists() and overwrite:
        shutil.rmtree(root)
    tmp = Path(tempfile.mkdtemp(prefix=".images-", dir=root.parent))
    try:
        for name, label in zip(images, image_labels.tolist()):
            folder = tmp / name.split("_")[0]
            folder.mkdir(exist_ok=True)
            Image.fromarray(_class_image(label, size, rng)).save(folder / f"{name}.JPEG", quality=90)
        os.chmod(tmp, _default_mode(0o777))
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _atomic_torch_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file next to ``path``, then rename (never a half-written file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, _default_mode(0o666))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _default_mode(mode: int) -> int:
    """``mode`` with the process umask applied (mkstemp/mkdtemp create private files/folders)."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask

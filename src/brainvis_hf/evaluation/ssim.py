"""Structural similarity (SSIM) of uint8 RGB images, identical to scikit-image's
``structural_similarity(a, b, channel_axis=-1, data_range=255)`` with its defaults.

scikit-image defaults: a 7 x 7 uniform window, ``K1 = 0.01``, ``K2 = 0.03``, sample
covariance (``N / (N - 1)`` with ``N = 49``), and the SSIM map cropped by ``(7 - 1) // 2 = 3``
pixels on every side before averaging; the result is the mean over the channels. Because of
the crop, only windows lying entirely inside the image count, so the window sums are computed
exactly with integral images ("valid" box filter) and no border mode is involved.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._utils import to_numpy

WIN_SIZE = 7
K1 = 0.01
K2 = 0.03
DATA_RANGE = 255.0


def _as_uint8_image(image: Any, name: str) -> np.ndarray:
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL image
        image = np.asarray(image.convert("RGB"))
    array = to_numpy(image, name)
    if array.dtype != np.uint8:
        raise ValueError(f"`{name}` must be a uint8 image (data range 255); got dtype {array.dtype}")
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"`{name}` must have shape H x W x 3; got {tuple(array.shape)}")
    if min(array.shape[:2]) < WIN_SIZE:
        raise ValueError(f"`{name}` must be at least {WIN_SIZE} x {WIN_SIZE} pixels for SSIM; got {array.shape[0]} x {array.shape[1]}")
    return array


def _box_mean_valid(x: np.ndarray) -> np.ndarray:
    """Mean over every fully-contained WIN_SIZE x WIN_SIZE window of the leading two axes
    (``x``: H x W x ...), via an integral image in float64."""
    integral = np.zeros((x.shape[0] + 1, x.shape[1] + 1, *x.shape[2:]), dtype=np.float64)
    np.cumsum(np.cumsum(x, axis=0), axis=1, out=integral[1:, 1:])
    w = WIN_SIZE
    sums = integral[w:, w:] - integral[:-w, w:] - integral[w:, :-w] + integral[:-w, :-w]
    return sums / (w * w)


def _ssim_per_channel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean SSIM per channel of float64 H x W x C arrays (channels last)."""
    ux, uy = _box_mean_valid(a), _box_mean_valid(b)
    uxx, uyy, uxy = _box_mean_valid(a * a), _box_mean_valid(b * b), _box_mean_valid(a * b)
    n = WIN_SIZE * WIN_SIZE
    cov_norm = n / (n - 1)  # sample covariance
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (K1 * DATA_RANGE) ** 2
    c2 = (K2 * DATA_RANGE) ** 2
    numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
    denominator = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return (numerator / denominator).mean(axis=(0, 1))


def ssim(image_a: Any, image_b: Any) -> float:
    """SSIM between two uint8 ``H x W x 3`` images (NumPy arrays, torch tensors or PIL images).

    Data range 255, computed per channel and averaged; equals scikit-image's
    ``structural_similarity(a, b, channel_axis=-1, data_range=255)`` to ~1e-12.
    """
    a = _as_uint8_image(image_a, "image_a")
    b = _as_uint8_image(image_b, "image_b")
    if a.shape != b.shape:
        raise ValueError(f"`image_a` and `image_b` must have the same shape; got {a.shape} and {b.shape}")
    return float(_ssim_per_channel(a.astype(np.float64), b.astype(np.float64)).mean())


def ssim_batch(images_a: Sequence[Any], images_b: Sequence[Any]) -> np.ndarray:
    """SSIM of each pair ``(images_a[i], images_b[i])``; returns a float64 array of length N."""
    if len(images_a) != len(images_b):
        raise ValueError(f"`images_a` has {len(images_a)} images but `images_b` has {len(images_b)}")
    return np.array([ssim(a, b) for a, b in zip(images_a, images_b)], dtype=np.float64)

"""Structural similarity (SSIM) of uint8 RGB images, identical to scikit-image's
``structural_similarity(a, b, channel_axis=-1, data_range=255)`` with its defaults.

scikit-image defaults: a 7 x 7 uniform window, ``K1 = 0.01``, ``K2 = 0.03``, sample
covariance (``N / (N - 1)`` with ``N = 49``), and the SSIM map cropped by ``(7 - 1) // 2 = 3``
pixels on every side before averaging; the result is the mean over the channels. Because of
the crop, only windows lying entirely inside the image count, so the window sums are computed
exactly with shifted-slice sums ("valid" box filter) and no border mode is involved.
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


def _window_sums(x: np.ndarray) -> np.ndarray:
    """Sum over every fully-contained WIN_SIZE x WIN_SIZE window of the last two axes
    (``x``: ... x H x W), separably by adding WIN_SIZE shifted slices per axis. For
    integer-valued float64 input (uint8 images and their products) every partial sum is an
    exact integer below 2**53, so the window sums are exact."""
    w = WIN_SIZE
    height, width = x.shape[-2] - w + 1, x.shape[-1] - w + 1
    rows = x[..., :height, :].copy()
    for i in range(1, w):
        rows += x[..., i : i + height, :]
    out = rows[..., :width].copy()
    for j in range(1, w):
        out += rows[..., j : j + width]
    return out


def _ssim_per_channel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean SSIM per channel of float64 ``C x H x W`` arrays (channels first)."""
    sums = _window_sums(np.stack([a, b, a * a, b * b, a * b]))  # 5 x C x H' x W'
    n = WIN_SIZE * WIN_SIZE
    ux, uy, uxx, uyy, uxy = sums / n
    cov_norm = n / (n - 1)  # sample covariance
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (K1 * DATA_RANGE) ** 2
    c2 = (K2 * DATA_RANGE) ** 2
    numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
    denominator = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return (numerator / denominator).mean(axis=(1, 2))


def _channels_first(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float64)


def ssim(image_a: Any, image_b: Any) -> float:
    """SSIM between two uint8 ``H x W x 3`` images (NumPy arrays, torch tensors or PIL images).

    Data range 255, computed per channel and averaged; equals scikit-image's
    ``structural_similarity(a, b, channel_axis=-1, data_range=255)`` to ~1e-12.
    """
    a = _as_uint8_image(image_a, "image_a")
    b = _as_uint8_image(image_b, "image_b")
    if a.shape != b.shape:
        raise ValueError(f"`image_a` and `image_b` must have the same shape; got {a.shape} and {b.shape}")
    return float(_ssim_per_channel(_channels_first(a), _channels_first(b)).mean())


def ssim_batch(images_a: Sequence[Any], images_b: Sequence[Any]) -> np.ndarray:
    """SSIM of each pair ``(images_a[i], images_b[i])``; returns a float64 array of length N."""
    if len(images_a) != len(images_b):
        raise ValueError(f"`images_a` has {len(images_a)} images but `images_b` has {len(images_b)}")
    return np.array([ssim(a, b) for a, b in zip(images_a, images_b)], dtype=np.float64)

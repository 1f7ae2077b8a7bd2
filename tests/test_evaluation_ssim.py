"""SSIM equals scikit-image's structural_similarity(channel_axis=-1, data_range=255) to 1e-4
(in practice ~1e-12) on random and structured images."""

import re

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from brainvis_hf.evaluation import ssim, ssim_batch


def _reference(a, b):
    return structural_similarity(a, b, channel_axis=-1, data_range=255)


def _structured(h, w, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    image = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x // 4 + y // 4) % 2) * 255], axis=-1)
    image[h // 3 : h // 2, w // 4 : w // 2] = rng.integers(0, 256, 3)  # a flat patch
    return image.astype(np.uint8)


@pytest.mark.parametrize("shape", [(7, 7), (16, 16), (33, 47), (64, 40)])
def test_random_images_match_skimage(shape):
    rng = np.random.default_rng(sum(shape))
    a = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    noisy = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    other = rng.integers(0, 256, a.shape, dtype=np.uint8)
    for b in (noisy, other, a):
        assert ssim(a, b) == pytest.approx(_reference(a, b), abs=1e-4)
        assert abs(ssim(a, b) - _reference(a, b)) < 1e-10


def test_structured_images_match_skimage():
    a = _structured(48, 64, 0)
    b = _structured(48, 64, 1)
    shifted = np.roll(a, 3, axis=1)
    constant = np.full_like(a, 128)
    for x, y in [(a, b), (a, shifted), (a, constant), (constant, constant), (255 - a, a)]:
        assert abs(ssim(x, y) - _reference(x, y)) < 1e-10
    assert ssim(a, a) == pytest.approx(1.0)


def test_pil_torch_inputs_and_batch():
    rng = np.random.default_rng(9)
    images_a = [rng.integers(0, 256, (20, 24, 3), dtype=np.uint8) for _ in range(3)]
    images_b = [rng.integers(0, 256, (20, 24, 3), dtype=np.uint8) for _ in range(3)]
    expected = [_reference(a, b) for a, b in zip(images_a, images_b)]
    assert ssim(Image.fromarray(images_a[0]), torch.from_numpy(images_b[0])) == pytest.approx(expected[0], abs=1e-10)
    np.testing.assert_allclose(ssim_batch(images_a, images_b), expected, atol=1e-10)


@pytest.mark.parametrize(
    "a, b, message",
    [
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8), "`image_a` and `image_b` must have the same shape; got (8, 8, 3) and (8, 9, 3)"),
        (np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.uint8), "`image_a` must be a uint8 image (data range 255); got dtype float32"),
        (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), "`image_a` must have shape H x W x 3; got (8, 8)"),
        (np.zeros((6, 8, 3), np.uint8), np.zeros((6, 8, 3), np.uint8), "`image_a` must be at least 7 x 7 pixels for SSIM; got 6 x 8"),
    ],
)
def test_ssim_errors(a, b, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ssim(a, b)
    with pytest.raises(ValueError, match="`images_a` has 1 images but `images_b` has 2"):
        ssim_batch([a], [b, b])

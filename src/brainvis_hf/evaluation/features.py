"""Image feature extractors and the image-level FID.

Feature-extractor convention: an ``nn.Module`` whose forward takes a float32 tensor
``N x 3 x H x W`` with values in ``[0, 1]`` and returns ``N x F`` features. Provided:

* the standard FID Inception-v3 pool features (2048-d), when ``torch-fidelity`` or
  ``pytorch-fid`` is installed and its weights are already in the local cache
  (:func:`load_inception_feature_extractor`);
* any ``transformers`` vision backbone (:class:`TransformersImageFeatureExtractor`): its image
  processor prepares the images, and the features are the mean of ``last_hidden_state`` over the
  tokens (3-D outputs) or the spatial positions (4-D outputs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .generation_metrics import frechet_distance


class FeatureExtractorUnavailableError(ValueError):
    """Raised when FID is requested without a feature extractor and the standard Inception
    features cannot be loaded."""


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _open_rgb(path: Any) -> Any:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as err:  # FileNotFoundError included
        raise (FileNotFoundError if isinstance(err, FileNotFoundError) else ValueError)(f"cannot read image {path}: {err}") from err


def to_pil_images(images: Any, name: str = "images") -> list:
    """Images -> list of RGB PIL images. Accepts a sequence of PIL images, uint8 ``H x W x 3``
    arrays/tensors or image file paths, or a batch tensor/array (uint8 ``N x H x W x 3`` or
    float ``N x 3 x H x W`` in [0, 1])."""
    from PIL import Image

    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
        array = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else images
        if array.dtype != np.uint8:
            if array.shape[1] != 3:
                raise ValueError(f"float `{name}` must be N x 3 x H x W in [0, 1]; got shape {array.shape}")
            array = (np.clip(array, 0, 1) * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)
        images = list(array)
    result = []
    for i, image in enumerate(images):
        if isinstance(image, Image.Image):
            result.append(image.convert("RGB"))
            continue
        if isinstance(image, (str, Path)):
            result.append(_open_rgb(image))
            continue
        array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
            raise ValueError(f"`{name}[{i}]` must be a PIL image, an image path or a uint8 H x W x 3 array; got dtype {array.dtype}, shape {array.shape}")
        result.append(Image.fromarray(array))
    if not result:
        raise ValueError(f"`{name}` is empty")
    return result


def image_batches(images: Any, batch_size: int, desc: str, name: str = "images") -> Iterator[Any]:
    """Consecutive slices of ``batch_size`` images (of a list, array or tensor) with a progress
    bar; images given as paths are only opened when their batch is converted."""
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1; got {batch_size}")
    if isinstance(images, (str, Path)) or not hasattr(images, "__len__"):
        images = list(images) if not isinstance(images, (str, Path)) else [images]
    if len(images) == 0:
        raise ValueError(f"`{name}` is empty")
    for start in tqdm(range(0, len(images), batch_size), desc=desc, leave=False):
        yield images[start : start + batch_size]


def images_to_tensor(images: Any, size: tuple[int, int] | None = None, name: str = "images") -> torch.Tensor:
    """Images -> float32 ``N x 3 x H x W`` tensor in [0, 1]. With ``size=(height, width)`` every
    image is resized to it (PIL bicubic); otherwise all images must share one size."""
    from PIL import Image

    pil = to_pil_images(images, name)
    if size is not None:
        pil = [im if im.size == (size[1], size[0]) else im.resize((size[1], size[0]), Image.BICUBIC) for im in pil]
    sizes = {im.size for im in pil}
    if len(sizes) > 1:
        raise ValueError(f"`{name}` have different sizes {sorted(sizes)} (width, height); pass `image_size` to resize them")
    array = np.stack([np.asarray(im, dtype=np.uint8) for im in pil])
    return torch.from_numpy(array).permute(0, 3, 1, 2).float().div(255.0)


class TransformersImageFeatureExtractor(nn.Module):
    """Wraps a ``transformers`` vision model and its image processor as a feature extractor
    (float ``N x 3 x H x W`` in [0, 1] -> ``N x F``: mean of ``last_hidden_state`` over tokens or
    spatial positions)."""

    def __init__(self, model: nn.Module, image_processor: Any):
        super().__init__()
        self.model = model.eval()
        self.image_processor = image_processor

    @classmethod
    def from_pretrained(cls, name_or_path: str, **kwargs: Any) -> "TransformersImageFeatureExtractor":
        """Load ``AutoModel`` + ``AutoImageProcessor`` from a Hub repo id or a local folder."""
        from transformers import AutoImageProcessor, AutoModel

        try:
            model = AutoModel.from_pretrained(name_or_path, **kwargs)
            processor = AutoImageProcessor.from_pretrained(name_or_path)
        except OSError as err:
            raise FileNotFoundError(f"cannot load the feature extractor {name_or_path!r} (AutoModel + AutoImageProcessor): {err}") from err
        return cls(model, processor)

    @torch.no_grad()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        device = next(self.model.parameters()).device
        inputs = self.image_processor(images=list(pixels.float().cpu()), do_rescale=False, return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(device=device, dtype=next(self.model.parameters()).dtype)
        hidden = self.model(pixel_values=pixel_values).last_hidden_state
        if hidden.ndim == 3:  # tokens: B x L x D
            return hidden.mean(dim=1).float()
        if hidden.ndim == 4:  # feature map: B x C x H x W
            return hidden.mean(dim=(2, 3)).float()
        raise ValueError(f"unexpected last_hidden_state shape {tuple(hidden.shape)} from {type(self.model).__name__}")


class _TorchFidelityInception(nn.Module):
    """torch-fidelity's FID Inception-v3 (expects uint8 input, resizes to 299 itself)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval()

    @torch.no_grad()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        features = self.model((pixels * 255).round().clamp(0, 255).to(torch.uint8))
        return features[0].reshape(pixels.shape[0], -1).float()


class _PytorchFidInception(nn.Module):
    """pytorch-fid's InceptionV3 pool3 block (expects [0, 1] input, resizes to 299 itself)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval()

    @torch.no_grad()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels)[0].reshape(pixels.shape[0], -1).float()


def load_inception_feature_extractor() -> nn.Module:
    """The standard FID features (Inception-v3 pool3, 2048-d) from ``torch-fidelity`` or
    ``pytorch-fid``, when one is installed and its weights are cached locally.

    Raises:
        FeatureExtractorUnavailableError: with the reasons and how to provide an extractor.
    """
    reasons = []
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        return _TorchFidelityInception(FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]))
    except Exception as err:  # ImportError, or weights not cached and no network
        reasons.append(f"torch-fidelity: {type(err).__name__}: {err}")
    try:
        from pytorch_fid.inception import InceptionV3

        return _PytorchFidInception(InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]))
    except Exception as err:
        reasons.append(f"pytorch-fid: {type(err).__name__}: {err}")
    raise FeatureExtractorUnavailableError(
        "the standard FID Inception-v3 features are not available ("
        + "; ".join(reasons)
        + "). Install `torch-fidelity` or `pytorch-fid` with its Inception weights in the local cache, "
        "or pass `feature_extractor=` an nn.Module mapping N x 3 x H x W images in [0, 1] to N x F features "
        "(CLI: `--feature-extractor <transformers model repo or folder>`)."
    )


@torch.no_grad()
def extract_features(
    feature_extractor: nn.Module,
    images: Any,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    image_size: tuple[int, int] | None = None,
    desc: str = "features",
) -> np.ndarray:
    """Run ``feature_extractor`` over images in batches (see :func:`images_to_tensor` for the
    accepted images); returns ``N x F`` float64 features."""
    device = resolve_device(device)
    feature_extractor = feature_extractor.to(device).eval()
    outputs = []
    shape = None
    for chunk in image_batches(images, batch_size, desc):
        batch = images_to_tensor(chunk, image_size)
        if shape is None:
            shape = batch.shape[1:]
        elif batch.shape[1:] != shape:
            raise ValueError(f"`images` have different sizes ({tuple(shape[1:])} and {tuple(batch.shape[2:])}, height x width); pass `image_size` to resize them")
        batch = batch.to(device)
        features = feature_extractor(batch)
        if not isinstance(features, torch.Tensor) or features.ndim < 2 or features.shape[0] != batch.shape[0]:
            got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f"the feature extractor must return an N x F tensor for N = {batch.shape[0]} images; got {got}")
        outputs.append(features.reshape(features.shape[0], -1).double().cpu())
    return torch.cat(outputs).numpy()


def fid(
    images_a: Any,
    images_b: Any,
    feature_extractor: nn.Module | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    image_size: tuple[int, int] | None = None,
) -> float:
    """Fréchet Inception Distance between two image sets (the Fréchet distance of their features).

    Args:
        images_a, images_b: sequences of PIL images / uint8 ``H x W x 3`` arrays, or batch
            tensors (uint8 ``N x H x W x 3`` or float ``N x 3 x H x W`` in [0, 1]); at least 2
            images each.
        feature_extractor: an ``nn.Module`` (float ``N x 3 x H x W`` in [0, 1] -> ``N x F``);
            ``None`` uses the standard Inception-v3 features when available (see
            :func:`load_inception_feature_extractor`), otherwise raises
            :class:`FeatureExtractorUnavailableError`.
        batch_size: images per forward pass.
        device: ``None`` -> CUDA when available, else CPU.
        image_size: ``(height, width)`` every image is resized to first (PIL bicubic); needed
            when the images within a set differ in size.
    """
    if feature_extractor is None:
        feature_extractor = load_inception_feature_extractor()
    features_a = extract_features(feature_extractor, images_a, batch_size=batch_size, device=device, image_size=image_size, desc="FID features (a)")
    features_b = extract_features(feature_extractor, images_b, batch_size=batch_size, device=device, image_size=image_size, desc="FID features (b)")
    return frechet_distance(features_a, features_b)

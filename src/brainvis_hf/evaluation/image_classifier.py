"""ImageNet classification of images with a ``transformers`` model (for the generation accuracy
and the Inception Score)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .features import image_batches, resolve_device, to_pil_images

#: Default classifier: BEiT-large (a ViT-L/16), pre-trained on ImageNet-22k and fine-tuned on
#: ImageNet-1k at 384 x 384 (1000 labels, ~88.4% top-1) -- the strongest ImageNet-1k ViT
#: loadable with plain ``AutoModelForImageClassification``. The original protocol uses
#: torchvision's ViT-H/14 (88.6%), which is not on the Hub in transformers format.
DEFAULT_IMAGE_CLASSIFIER = "microsoft/beit-large-patch16-384"


def load_image_classifier(model: str = DEFAULT_IMAGE_CLASSIFIER, device: str | torch.device | None = None) -> tuple[Any, Any]:
    """``AutoModelForImageClassification`` + ``AutoImageProcessor`` from a Hub repo id or folder,
    in eval mode on ``device``."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    try:
        classifier = AutoModelForImageClassification.from_pretrained(model)
        processor = AutoImageProcessor.from_pretrained(model)
    except OSError as err:  # not a folder / not on the Hub / offline without a cached copy
        raise FileNotFoundError(
            f"cannot load the image classifier {model!r} (AutoModelForImageClassification + AutoImageProcessor): {err}"
        ) from err
    return classifier.to(resolve_device(device)).eval(), processor


@torch.no_grad()
def classify_images(
    images: Any,
    model: Any = DEFAULT_IMAGE_CLASSIFIER,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    image_processor: Any = None,
) -> np.ndarray:
    """Class probabilities of images under an image classifier.

    Args:
        images: PIL images, image paths or uint8 ``H x W x 3`` arrays, or a batch tensor (see
            :func:`brainvis_hf.evaluation.features.to_pil_images`); paths are opened batch by
            batch.
        model: a Hub repo id or local folder of an ``AutoModelForImageClassification`` (default
            :data:`DEFAULT_IMAGE_CLASSIFIER`, ImageNet-1k), or a loaded model (then pass
            ``image_processor`` too, or it is loaded from ``model.name_or_path``).
        batch_size: images per forward pass.
        device: ``None`` -> CUDA when available, else CPU (ignored for a loaded model, which
            stays where it is).

    Returns:
        ``(N, num_labels)`` float64 softmax probabilities.
    """
    if isinstance(model, str):
        model, loaded_processor = load_image_classifier(model, device)
        image_processor = image_processor or loaded_processor
    elif image_processor is None:
        from transformers import AutoImageProcessor

        image_processor = AutoImageProcessor.from_pretrained(model.name_or_path)
    parameter = next(model.parameters())
    probs = []
    for chunk in image_batches(images, batch_size, "classifying images"):
        inputs = image_processor(images=to_pil_images(chunk), return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(device=parameter.device, dtype=parameter.dtype)
        logits = model(pixel_values=pixel_values).logits
        probs.append(torch.softmax(logits.double(), dim=-1).cpu())
    return torch.cat(probs).numpy()

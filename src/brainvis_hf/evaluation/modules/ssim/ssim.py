"""SSIM of uint8 RGB images (scikit-image's defaults, data range 255) as an `evaluate` metric.

Load with ``evaluate.load(brainvis_hf.evaluation.metric_module_path("ssim"))``. Computation:
:func:`brainvis_hf.evaluation.ssim`.
"""

import datasets
import evaluate
import numpy as np
from brainvis_hf.evaluation import ssim_batch
from brainvis_hf.hub.citations import SSIM_CITATION

_DESCRIPTION = """
Mean structural similarity between each generated image and its reference: uint8 H x W x 3,
data range 255, 7 x 7 uniform window, K1 = 0.01, K2 = 0.03, sample covariance, mean over the
channels (equal to skimage.metrics.structural_similarity(a, b, channel_axis=-1, data_range=255)).
Images are stored losslessly (PNG) between add_batch and compute.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: generated images (PIL images or uint8 H x W x 3 arrays).
    references: reference images of the same sizes.
Returns:
    ssim: mean SSIM; ssim_per_image: list of per-pair values.
Examples:
    >>> metric = evaluate.load("path/to/ssim.py")
    >>> image = np.zeros((8, 8, 3), dtype=np.uint8)
    >>> metric.compute(predictions=[image], references=[image])["ssim"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SSIM(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=SSIM_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Image(), "references": datasets.Image()}),
        )

    def _compute(self, predictions, references):
        values = ssim_batch([np.asarray(p.convert("RGB")) for p in predictions], [np.asarray(r.convert("RGB")) for r in references])
        return {"ssim": float(values.mean()), "ssim_per_image": values.tolist()}

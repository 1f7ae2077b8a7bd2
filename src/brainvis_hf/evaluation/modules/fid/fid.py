"""Fréchet distance of image features (FID with Inception-v3 features) as an `evaluate` metric.

Load with ``evaluate.load(brainvis_hf.evaluation.metric_module_path("fid"))``. Computation:
:func:`brainvis_hf.evaluation.frechet_distance`. Extract features first, e.g. with
:func:`brainvis_hf.evaluation.extract_features`.
"""

import datasets
import evaluate
from brainvis_hf.evaluation import frechet_distance
from brainvis_hf.hub.citations import FID_CITATION

_DESCRIPTION = """
Fréchet distance between Gaussians fitted (mean, sample covariance) to the features of the
generated images (`predictions`, added batch by batch) and of the reference images
(`reference_features`, passed to `compute`; the two counts may differ).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: per generated image, its feature vector (length F).
    reference_features: N_ref x F array of reference-image features (N_ref >= 2).
Returns:
    fid: the Fréchet distance (>= 0).
Examples:
    >>> metric = evaluate.load("path/to/fid.py")
    >>> features = [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]]
    >>> round(metric.compute(predictions=features, reference_features=features)["fid"], 9)
    0.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class FID(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=FID_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("float64"))}),
        )

    def _compute(self, predictions, reference_features=None):
        if reference_features is None:
            raise ValueError("the fid metric needs `reference_features=` (N_ref x F features of the reference images) in compute()")
        return {"fid": frechet_distance(predictions, reference_features)}

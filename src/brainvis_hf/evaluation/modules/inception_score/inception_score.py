"""Inception Score (torch-fidelity's definition) as an `evaluate` metric.

Load with ``evaluate.load(brainvis_hf.evaluation.metric_module_path("inception_score"))``.
Computation: :func:`brainvis_hf.evaluation.inception_score`.
"""

import datasets
import evaluate
from brainvis_hf.evaluation import inception_score
from brainvis_hf.hub.citations import INCEPTION_SCORE_CITATION

_DESCRIPTION = """
Inception Score of class probabilities: the rows are cut into `splits` consecutive chunks; per
chunk exp(mean KL(p(y|x) || p(y))); mean and (population) std over the chunks.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: per image, class probabilities (rows summing to 1).
    splits (int, default 10): number of chunks (<= number of images).
Returns:
    inception_score_mean, inception_score_std.
Examples:
    >>> metric = evaluate.load("path/to/inception_score.py")
    >>> metric.compute(predictions=[[1.0, 0.0], [0.0, 1.0]], splits=1)
    {'inception_score_mean': 2.0, 'inception_score_std': 0.0}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class InceptionScore(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=INCEPTION_SCORE_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("float64"))}),
        )

    def _compute(self, predictions, splits=10):
        mean, std = inception_score(predictions, splits=splits)
        return {"inception_score_mean": mean, "inception_score_std": std}

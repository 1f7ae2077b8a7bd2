"""N-way top-k accuracy (generation accuracy, GA) as an `evaluate` metric.

Load with ``evaluate.load(brainvis_hf.evaluation.metric_module_path("n_way_top_k_accuracy"))``
(or the path of this file). Computation: :func:`brainvis_hf.evaluation.n_way_top_k_accuracy`.
"""

import datasets
import evaluate
from brainvis_hf.evaluation import n_way_top_k_accuracy
from brainvis_hf.hub.citations import DREAMDIFFUSION_CITATION

_DESCRIPTION = """
N-way top-k accuracy of image-classifier probabilities: per image, the true class plus n_way - 1
random other classes are kept, and a trial is a hit when the true class is among the top-k kept
scores (ties count against the true class). Sampled mode averages num_trials draws per image;
exact=True returns the expected value over all draws (hypergeometric closed form).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: per image, the classifier's probabilities (or scores) over K classes.
    references: per image, the true class id (the GA protocol: the classifier's argmax on the
        ground-truth image).
    n_way (int, default 50), top_k (int, default 1), num_trials (int, default 50),
    seed (int or None, default None), exact (bool, default False).
Returns:
    n_way_top_k_accuracy: the mean accuracy in [0, 1].
Examples:
    >>> metric = evaluate.load("path/to/n_way_top_k_accuracy.py")
    >>> metric.compute(predictions=[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], references=[0, 1], n_way=2, exact=True)
    {'n_way_top_k_accuracy': 0.5}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class NWayTopKAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=DREAMDIFFUSION_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, n_way=50, top_k=1, num_trials=50, seed=None, exact=False):
        value = n_way_top_k_accuracy(predictions, references, n_way=n_way, top_k=top_k, num_trials=num_trials, seed=seed, exact=exact)
        return {"n_way_top_k_accuracy": value}

"""EEG classification metrics (top-1/3/5 accuracy, macro-F1, confusion matrix) as an
`evaluate` metric.

Load with ``evaluate.load(brainvis_hf.evaluation.metric_module_path("eeg_classification"))``.
Computation: :func:`brainvis_hf.evaluation.eeg_classification_metrics`.
"""

import datasets
import evaluate
from brainvis_hf.evaluation import eeg_classification_metrics
from brainvis_hf.hub.citations import BRAINVIS_CITATION

_DESCRIPTION = """
Top-1/3/5 accuracy (classes ranked by descending score, ties broken by the lower class id),
macro-F1 over the classes present in the labels or the argmax predictions (scikit-learn's
default), and the confusion matrix (rows: true class, columns: predicted class).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: per EEG, the logits (or probabilities) over K classes.
    references: per EEG, the true class id.
Returns:
    top1_accuracy, top3_accuracy, top5_accuracy, macro_f1, num_samples, num_classes,
    confusion_matrix (K x K nested list).
Examples:
    >>> metric = evaluate.load("path/to/eeg_classification.py")
    >>> metric.compute(predictions=[[2.0, 1.0], [0.0, 3.0]], references=[0, 0])["top1_accuracy"]
    0.5
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class EEGClassification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=BRAINVIS_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):
        result = eeg_classification_metrics(predictions, references)
        result["confusion_matrix"] = result["confusion_matrix"].tolist()
        return result

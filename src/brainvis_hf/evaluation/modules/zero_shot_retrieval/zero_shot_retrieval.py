"""Zero-shot n-way top-k retrieval of unseen concepts (THINGS-EEG2 200-way protocol) as an
`evaluate` metric.

Load with ``evaluate.load(brainvis_hf.evaluation.metric_module_path("zero_shot_retrieval"))``.
Computation: :func:`brainvis_hf.evaluation.zero_shot_retrieval` (scores from
:func:`brainvis_hf.evaluation.cosine_scores`).
"""

import datasets
import evaluate
from brainvis_hf.evaluation import zero_shot_retrieval
from brainvis_hf.hub.citations import NICE_CITATION
from brainvis_hf.hub.citations import THINGS_EEG2_CITATION
from brainvis_hf.hub.citations import join_citations

_DESCRIPTION = """
Per EEG recording, the similarities to K candidate concepts that never occurred in training
(e.g. cosine between the predicted CLIP prompt embedding and each concept's CLIP text
embedding). Reports top-1/top-5 accuracy over all K candidates and over subsets of n candidates
(2/4/50/200-way; the expected value over all subsets, exactly; ties count against the true
concept), with the chance levels.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: per EEG, the scores over the K candidate concepts.
    references: per EEG, the index of its concept among the K candidates.
    n_ways: subset sizes (default 2, 4, 50, 200; sizes above K are skipped, K is always added).
    top_ks: k of top-k (default 1, 5).
Returns:
    "{n}way_top{k}" and "chance_{n}way_top{k}" for each n and k, num_queries, num_candidates,
    skipped_n_ways.
Examples:
    >>> metric = evaluate.load("path/to/zero_shot_retrieval.py")
    >>> metric.compute(predictions=[[0.9, 0.1, 0.0], [0.2, 0.1, 0.5]], references=[0, 1], top_ks=[1])["3way_top1"]
    0.5
"""

_CITATION = join_citations(THINGS_EEG2_CITATION, NICE_CITATION)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ZeroShotRetrieval(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, n_ways=(2, 4, 50, 200), top_ks=(1, 5)):
        return zero_shot_retrieval(predictions, references, n_ways=n_ways, top_ks=top_ks)

"""The temporal-adjacency probe (``brainvis_hf.evaluation.controls``): its predictions against an
independent k-nearest-neighbour classifier (scikit-learn), its documented tie rules, and its
verdicts on a block design (far above chance) and on the same recordings in randomised order
(at chance, inside an exact binomial bound)."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from scipy.stats import binom

from brainvis_hf.evaluation import (
    RECORDING_ORDER_COLUMN,
    chance_level,
    temporal_adjacency_predictions,
    temporal_adjacency_probe,
)

datasets.disable_progress_bars()
NUM_CLASSES, PER_BLOCK, SUBJECTS = 8, 15, (1, 2)


def _sklearn_predictions(ref_order, ref_labels, ref_groups, q_order, q_groups, k):
    """Independent computation: scikit-learn's k-NN on the 1-d recording order, one fit per group.

    With ``weights="distance"`` and k <= 2, its vote is the probe's rule: two neighbours that
    disagree give the nearer one's label (no distance ties here: orders are continuous)."""
    from sklearn.neighbors import KNeighborsClassifier

    out = np.full(len(q_order), -1)
    for g in np.unique(q_groups):
        ref = ref_groups == g
        knn = KNeighborsClassifier(n_neighbors=k, weights="distance").fit(ref_order[ref, None], ref_labels[ref])
        out[q_groups == g] = knn.predict(q_order[q_groups == g, None])
    return out


def _design(*, block: bool, seed: int = 0):
    """Recordings of 2 subjects, 8 classes x 15; every 5th recording in time is a test recording.

    ``block=True``: each class's 15 recordings are contiguous in time (EEG-ImageNet's design);
    ``block=False``: the same recordings in a random order. Times are continuous (jittered)."""
    rng = np.random.default_rng(seed)
    features = datasets.Features({"label": datasets.ClassLabel(num_classes=NUM_CLASSES),
                                  "subject": datasets.Value("int32"), RECORDING_ORDER_COLUMN: datasets.Value("float64")})
    splits = {"train": {k: [] for k in features}, "test": {k: [] for k in features}}
    n = NUM_CLASSES * PER_BLOCK
    for s in SUBJECTS:
        labels = np.repeat(np.arange(NUM_CLASSES), PER_BLOCK)
        if not block:
            labels = rng.permutation(labels)
        times = np.arange(n) * 2.0 + rng.uniform(0, 1, n)  # seconds; no two recordings equidistant
        for i in range(n):
            rows = splits["test" if i % 5 == 2 else "train"]
            rows["label"].append(int(labels[i]))
            rows["subject"].append(s)
            rows[RECORDING_ORDER_COLUMN].append(float(times[i]))
    return datasets.DatasetDict({k: datasets.Dataset.from_dict(v, features=features) for k, v in splits.items()})


@pytest.mark.parametrize("block", [True, False])
@pytest.mark.parametrize("k", [1, 2])
def test_predictions_equal_an_independent_knn(block, k):
    data = _design(block=block, seed=k)
    ref, query = data["train"], data["test"]
    args = [np.asarray(ref[RECORDING_ORDER_COLUMN]), np.asarray(ref["label"]), np.asarray(ref["subject"]),
            np.asarray(query[RECORDING_ORDER_COLUMN]), np.asarray(query["subject"])]
    ours = temporal_adjacency_predictions(args[0], args[1], args[3], reference_groups=args[2], query_groups=args[4],
                                          num_neighbours=k)
    np.testing.assert_array_equal(ours, _sklearn_predictions(*args, k))
    result = temporal_adjacency_probe(data, num_neighbours=k)
    assert result["accuracy"] == pytest.approx(np.mean(ours == np.asarray(query["label"])))
    assert result["num_queries"] == len(query) == 2 * NUM_CLASSES * PER_BLOCK // 5 and result["num_unmatched"] == 0


def test_block_design_is_exposed_and_randomised_order_sits_at_chance():
    block = temporal_adjacency_probe(_design(block=True))
    # only the queries at a block edge can get a neighbour of the next class
    assert block["accuracy"] > 0.9 and block["above_chance"] is True and block["p_value"] < 1e-12
    assert block["chance"] == pytest.approx(chance_level(_design(block=True)))
    n = block["num_queries"]
    for seed in (0, 1, 2):
        randomised = temporal_adjacency_probe(_design(block=False, seed=seed))
        hits = round(randomised["accuracy"] * n)
        # central 99.9% of Binomial(48, chance); the probe's hits are independent draws at chance here
        assert binom.ppf(0.0005, n, randomised["chance"]) <= hits <= binom.isf(0.0005, n, randomised["chance"])
        assert randomised["above_chance"] is False


def test_chance_is_the_largest_class_frequency_of_the_split():
    # an EEG-free prediction scores sum_c q(c) p(c) <= max_c p(c) in expectation, whatever the training classes
    data = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"label": [2, 2, 2, 1]}),
                                 "test": datasets.Dataset.from_dict({"label": [0, 0, 1]})})
    assert chance_level(data) == pytest.approx(2 / 3)


def test_tie_rules_and_groups():
    # distance tie between times 1 and 3 for a query at 2: the earlier recording wins
    assert temporal_adjacency_predictions([3.0, 1.0], [1, 0], [2.0], num_neighbours=1).tolist() == [0]
    # two neighbours that disagree: the nearer one's label
    assert temporal_adjacency_predictions([0.0, 2.5, 10.0], [4, 7, 4], [2.0], num_neighbours=2).tolist() == [7]
    # three neighbours: the majority, even when farther than the nearest
    assert temporal_adjacency_predictions([0.0, 2.5, 4.0], [4, 7, 4], [2.0], num_neighbours=3).tolist() == [4]
    # neighbours only come from the query's own group; a group without references gets -1
    got = temporal_adjacency_predictions([1.0, 1.1], [0, 1], [1.0, 1.0, 1.0], reference_groups=[1, 2],
                                         query_groups=[2, 1, 3])
    assert got.tolist() == [1, 0, -1]


def test_bad_input_is_named():
    data = _design(block=True)
    with pytest.raises(ValueError, match="split 'test' has no column 'trial' to order recordings by"):
        temporal_adjacency_probe(data, order_column="trial")
    with pytest.raises(ValueError, match="no split 'validation'"):
        temporal_adjacency_probe(data, reference_split="validation")
    with pytest.raises(ValueError, match="split and reference_split are both 'train'"):
        temporal_adjacency_probe(data, split="train")
    with pytest.raises(ValueError, match="num_neighbours=0: expected >= 1"):
        temporal_adjacency_predictions([1.0], [0], [1.0], num_neighbours=0)
    with pytest.raises(ValueError, match="give both reference_groups and query_groups, or neither"):
        temporal_adjacency_predictions([1.0], [0], [1.0], reference_groups=[1])
    with pytest.raises(ValueError, match="the recording order contains NaN/Inf values"):
        temporal_adjacency_predictions([np.nan], [0], [1.0])


def test_old_import_paths_give_the_same_functions():
    import brainvis_hf
    from brainvis_hf.evaluation import controls
    from brainvis_hf.training import protocols

    for name in ("temporal_adjacency_probe", "binomial_p_above", "chance_level", "RECORDING_ORDER_COLUMN"):
        assert getattr(protocols, name) is getattr(controls, name)
    assert brainvis_hf.temporal_adjacency_probe is controls.temporal_adjacency_probe

"""Controls that look for a confound instead of a decoder: chance levels, exact binomial tails
and the temporal-adjacency probe.

In a block design (EEG-ImageNet, Spampinato et al. 2017) every class's recordings are contiguous
in time, so anything that drifts slowly (electrode impedance, vigilance, temperature) labels the
recordings by block; Li et al. (2020/2021) showed that classifiers learn those drifts. The
temporal-adjacency probe measures how much of the labels the *recording order alone* gives
away: it "classifies" each test recording as the majority label of its neighbours in time,
without looking at the EEG. Far above chance means the split design lets temporal proximity
stand in for the stimulus; at chance means it does not. See docs/protocols.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: column that a data set declares as its recording order (an acquisition time or trial number)
RECORDING_ORDER_COLUMN = "recording_order"


def binomial_p_above(successes: int, trials: int, p: float) -> float:
    """One-sided P(X >= successes) for X ~ Binomial(trials, p) (exact, in log space)."""
    if trials <= 0:
        return 1.0
    p = min(max(p, 1e-12), 1 - 1e-12)
    terms = [
        math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1) + k * math.log(p)
        + (trials - k) * math.log1p(-p)
        for k in range(successes, trials + 1)
    ]
    if not terms:
        return 0.0
    top = max(terms)
    return float(min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms)))


def chance_level(dataset_dict, split: str = "test") -> float:
    """Chance accuracy on ``split``: the frequency of its most frequent class.

    Any prediction made without the true label (a constant, a shuffled-label model, the recording
    order of a randomised design) has an expected accuracy of ``sum_c q(c) p(c) <= max_c p(c)``,
    where ``p`` is the split's class distribution and ``q`` the predictions'; so a binomial test
    against this level is conservative even when the split's classes are unbalanced. With
    balanced classes it is ``1 / num_classes``.
    """
    labels = np.asarray(dataset_dict[split]["label"])
    if labels.size == 0:
        return float("nan")
    return float(np.bincount(labels).max() / labels.size)


def temporal_adjacency_predictions(
    reference_order: Any,
    reference_labels: Any,
    query_order: Any,
    *,
    reference_groups: Any | None = None,
    query_groups: Any | None = None,
    num_neighbours: int = 2,
) -> np.ndarray:
    """The label each query gets from its ``num_neighbours`` nearest references in recording order.

    Neighbours are the references of the query's group (its subject / session; all references
    when no groups are given) with the smallest ``|reference_order - query_order|``; distance
    ties go to the earlier recording. The prediction is their most frequent label; a tie between
    labels goes to the label of the nearest neighbour among the tied ones. Queries whose group has
    no reference get ``-1``.

    Raises:
        ValueError: ``num_neighbours < 1``, mismatched lengths, non-finite orders, or groups given
            on one side only.
    """
    if num_neighbours < 1:
        raise ValueError(f"num_neighbours={num_neighbours}: expected >= 1")
    ref_order = np.asarray(reference_order, dtype=np.float64)
    ref_labels = np.asarray(reference_labels, dtype=np.int64)
    q_order = np.asarray(query_order, dtype=np.float64)
    if ref_order.ndim != 1 or ref_order.shape != ref_labels.shape:
        raise ValueError(f"reference_order {ref_order.shape} and reference_labels {ref_labels.shape} must be equal-length 1-d")
    if not (np.isfinite(ref_order).all() and np.isfinite(q_order).all()):
        raise ValueError("the recording order contains NaN/Inf values")
    if (reference_groups is None) != (query_groups is None):
        raise ValueError("give both reference_groups and query_groups, or neither")
    ref_groups = np.zeros(len(ref_order), np.int64) if reference_groups is None else np.asarray(reference_groups)
    q_groups = np.zeros(len(q_order), np.int64) if query_groups is None else np.asarray(query_groups)
    if ref_groups.shape != ref_order.shape or q_groups.shape != q_order.shape:
        raise ValueError("groups must have one value per recording")
    predictions = np.full(len(q_order), -1, dtype=np.int64)
    for group in np.unique(q_groups):
        members = np.flatnonzero(ref_groups == group)
        if members.size == 0:
            continue
        members = members[np.argsort(ref_order[members], kind="stable")]  # earlier recordings first
        for q in np.flatnonzero(q_groups == group):
            distance = np.abs(ref_order[members] - q_order[q])
            nearest = members[np.argsort(distance, kind="stable")[:num_neighbours]]
            votes = ref_labels[nearest]
            counts = np.bincount(votes)
            best = set(np.flatnonzero(counts == counts.max()).tolist())
            predictions[q] = next(int(v) for v in votes if int(v) in best)
    return predictions


def temporal_adjacency_probe(
    dataset_dict,
    *,
    order_column: str = RECORDING_ORDER_COLUMN,
    num_neighbours: int = 2,
    split: str = "test",
    reference_split: str = "train",
    group_column: str | None = "subject",
    alpha: float = 0.01,
) -> dict[str, Any]:
    """Classify ``split`` recordings from their neighbours in recording order only (no EEG at all).

    Every recording of ``split`` gets the majority label of the ``num_neighbours`` recordings of
    ``reference_split`` of the same ``group_column`` (subject) closest in ``order_column``
    (:func:`temporal_adjacency_predictions`). In a block design, where a class's recordings are
    contiguous in time and the splits are drawn from the same blocks, this scores far above
    chance although it never looks at the EEG; in a randomised design it sits at chance.

    ``order_column`` must really be the recording order (an acquisition timestamp or trial
    number). The default, ``recording_order``, is a column a data set declares; no shipped
    builder writes it, because neither release stores the order in time: EEG-ImageNet's
    ``eeg_index`` is the position in the signals file, and THINGS-EEG2's preprocessed files are
    sorted by image.

    Returns:
        ``{"accuracy", "chance" (:func:`chance_level`: the largest class frequency of ``split``),
        "p_value" (one-sided exact binomial test of the hits against chance), "above_chance"
        (p_value < alpha), "num_queries", "num_unmatched" (queries whose group has no reference),
        "order_column", "num_neighbours", "split", "reference_split"}``.

    Raises:
        ValueError: a missing split or column, ``split == reference_split``, or bad arguments.
    """
    if split == reference_split:
        raise ValueError(f"split and reference_split are both {split!r}; the probe classifies one split from another")
    for name in (split, reference_split):
        if name not in dataset_dict:
            raise ValueError(f"no split {name!r} (have {sorted(dataset_dict)})")
        needed = [order_column, "label"] + ([group_column] if group_column else [])
        missing = [c for c in needed if c not in dataset_dict[name].column_names]
        if missing:
            raise ValueError(f"split {name!r} has no column {missing[0]!r} to order recordings by"
                             if missing[0] == order_column else f"split {name!r} has no column {missing[0]!r}")
    ref, query = dataset_dict[reference_split], dataset_dict[split]
    groups = {}
    if group_column:
        groups = {"reference_groups": np.asarray(ref[group_column]), "query_groups": np.asarray(query[group_column])}
    predictions = temporal_adjacency_predictions(ref[order_column], ref["label"], query[order_column],
                                                 num_neighbours=num_neighbours, **groups)
    labels = np.asarray(query["label"], dtype=np.int64)
    hits = int(np.sum(predictions == labels))
    n = len(labels)
    chance = chance_level(dataset_dict, split)
    p_value = binomial_p_above(hits, n, chance)
    return {"accuracy": hits / n if n else float("nan"), "chance": chance, "p_value": p_value,
            "above_chance": bool(p_value < alpha), "alpha": alpha, "num_queries": n,
            "num_unmatched": int(np.sum(predictions < 0)), "order_column": order_column,
            "num_neighbours": num_neighbours, "split": split, "reference_split": reference_split}

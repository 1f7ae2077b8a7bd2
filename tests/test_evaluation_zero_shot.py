"""Zero-shot retrieval metrics against independent computations, on embeddings built here."""

from __future__ import annotations

import evaluate
import numpy as np
import pytest

from brainvis_hf.evaluation import cosine_scores, metric_module_path, zero_shot_evaluation, zero_shot_retrieval


def _rank_hits(scores, labels, k):
    # independent: count candidates scoring >= the true one (ties against), hit when fewer than k
    true = scores[np.arange(len(labels)), labels]
    beating = (scores >= true[:, None]).sum(axis=1) - 1
    return np.mean(beating < k)


def test_full_ranking_and_two_way_match_independent_counts():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(30, 12))
    labels = rng.integers(0, 12, size=30)
    m = zero_shot_retrieval(scores, labels, n_ways=(2, 4, 50), top_ks=(1, 5))
    assert m["12way_top1"] == pytest.approx(_rank_hits(scores, labels, 1))
    assert m["12way_top5"] == pytest.approx(_rank_hits(scores, labels, 5))
    # 2-way exact: the chance a single random other candidate scores below the true one
    true = scores[np.arange(30), labels]
    lower = (scores < true[:, None]).sum(axis=1)
    assert m["2way_top1"] == pytest.approx(np.mean(lower / 11))
    assert m["2way_top5"] == 1.0 and m["chance_2way_top1"] == 0.5 and m["chance_4way_top1"] == 0.25
    assert m["skipped_n_ways"] == [50] and m["num_candidates"] == 12 and m["num_queries"] == 30


def test_cosine_scores_flatten_and_center():
    q = np.array([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 2.0], [0.0, 0.0]]])
    c = np.array([[[3.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [0.0, 0.0]]])
    np.testing.assert_allclose(cosine_scores(q, c), [[1.0, 1 / np.sqrt(2)], [0.0, 1 / np.sqrt(2)]])
    centred = cosine_scores(q, c, center=True)  # mean (2, .5): candidates become (1,-.5) and (-1,.5)
    np.testing.assert_allclose(centred[:, 0], -centred[:, 1])
    with pytest.raises(ValueError, match="queries have 4 values each but candidates 6"):
        cosine_scores(q, np.zeros((2, 6)))


def test_signal_beats_chance_and_noise_sits_at_chance():
    rng = np.random.default_rng(1)
    concepts = rng.normal(size=(200, 77, 8))  # "CLIP text embeddings" of 200 unseen concepts
    labels = np.repeat(np.arange(200), 4)
    with_signal = concepts[labels] + 3.0 * rng.normal(size=(800, 77, 8))
    noise = rng.normal(size=(800, 77, 8))
    good = zero_shot_evaluation(with_signal, concepts, labels)["text"]
    bad = zero_shot_evaluation(noise, concepts, labels)["text"]
    assert good["200way_top1"] > 10 * good["chance_200way_top1"]
    assert good["2way_top1"] > 0.9
    for key in ("2way_top1", "4way_top1", "50way_top1", "200way_top5"):
        assert abs(bad[key] - bad[f"chance_{key}"]) < 0.05, key


def test_image_space_is_reported_when_given():
    rng = np.random.default_rng(2)
    text, images = rng.normal(size=(10, 6)), rng.normal(size=(10, 4))
    labels = np.arange(10)
    m = zero_shot_evaluation(text, text, labels, image_query_embeds=images, image_embeds=images)
    assert m["text"]["10way_top1"] == 1.0 and m["image"]["10way_top1"] == 1.0
    with pytest.raises(ValueError, match="give both image_query_embeds and image_embeds"):
        zero_shot_evaluation(text, text, labels, image_embeds=images)


def test_evaluate_module_returns_the_function_value():
    rng = np.random.default_rng(3)
    scores, labels = rng.normal(size=(20, 8)), rng.integers(0, 8, size=20)
    metric = evaluate.load(metric_module_path("zero_shot_retrieval"))
    got = metric.compute(predictions=scores.tolist(), references=labels.tolist(), n_ways=[2, 4])
    assert got == pytest.approx(zero_shot_retrieval(scores, labels, n_ways=[2, 4]))

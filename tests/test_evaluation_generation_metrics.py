"""GA (N-way top-k accuracy), Inception Score and Fréchet distance against independent
computations: brute-force enumeration, NumPy/SciPy formulas."""

import itertools
import math
import re

import numpy as np
import pytest
import torch
from scipy import linalg
from scipy.special import rel_entr

from brainvis_hf.evaluation import (
    frechet_distance,
    frechet_distance_from_statistics,
    inception_score,
    n_way_top_k_accuracy,
    n_way_top_k_hit_rates,
)

# ------------------------------------------------------------------------------------------------
# N-way top-k accuracy
# ------------------------------------------------------------------------------------------------


def _brute_force(probs, target, n_way, top_k):
    """Enumerate every subset of n_way - 1 other classes; rank the kept classes by descending
    score with the true class placed after every kept class of equal score (ties count against
    the true class); average the hits over subsets, then over images."""
    num_classes = probs.shape[1]
    per_image = []
    for scores, label in zip(probs, target):
        others = [c for c in range(num_classes) if c != label]
        hits = []
        for subset in itertools.combinations(others, n_way - 1):
            kept = [(scores[c], 0, c) for c in subset] + [(scores[label], 1, label)]
            ranking = sorted(kept, key=lambda item: (-item[0], item[1]))
            position = [c for _, _, c in ranking].index(label)
            hits.append(position < top_k)
        per_image.append(np.mean(hits))
    return float(np.mean(per_image))


@pytest.fixture(scope="module")
def tied_probs():
    rng = np.random.default_rng(0)
    # few distinct values -> many ties between the true class and others
    probs = rng.integers(0, 4, size=(6, 8)).astype(np.float64)
    target = rng.integers(0, 8, size=6)
    return probs, target


@pytest.mark.parametrize("n_way,top_k", [(2, 1), (3, 1), (4, 2), (5, 3), (8, 1), (8, 4)])
def test_exact_equals_brute_force_enumeration_with_ties(tied_probs, n_way, top_k):
    probs, target = tied_probs
    assert n_way_top_k_accuracy(probs, target, n_way, top_k, exact=True) == pytest.approx(_brute_force(probs, target, n_way, top_k), abs=1e-12)


def test_exact_equals_brute_force_on_continuous_probs():
    rng = np.random.default_rng(1)
    probs = torch.softmax(torch.from_numpy(rng.normal(size=(5, 9))), dim=1)  # torch input
    target = torch.from_numpy(rng.integers(0, 9, size=5))
    for n_way, top_k in [(4, 1), (6, 2)]:
        expected = _brute_force(probs.numpy(), target.numpy(), n_way, top_k)
        assert n_way_top_k_accuracy(probs, target, n_way, top_k, exact=True) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n_way,top_k", [(5, 1), (10, 3)])
def test_sampled_mean_converges_to_exact(n_way, top_k):
    rng = np.random.default_rng(2)
    num_classes, num_images, num_trials, num_seeds = 30, 12, 50, 40
    probs = rng.dirichlet(np.ones(num_classes) * 0.3, size=num_images)
    probs[:, :5] = probs[:, [0]]  # some ties
    target = rng.integers(0, num_classes, size=num_images)
    exact_rates = n_way_top_k_hit_rates(probs, target, n_way, top_k, exact=True)
    sampled = np.mean([n_way_top_k_accuracy(probs, target, n_way, top_k, num_trials, seed=s) for s in range(num_seeds)])
    # standard error of the mean of num_images * num_trials * num_seeds Bernoulli draws
    sigma = math.sqrt(np.sum(exact_rates * (1 - exact_rates)) / (num_trials * num_seeds)) / num_images
    assert 0.05 < exact_rates.mean() < 0.95  # a non-trivial case
    assert abs(sampled - exact_rates.mean()) < 5 * sigma + 1e-12


def test_sampled_mode_is_seeded_and_varies_across_seeds():
    rng = np.random.default_rng(3)
    probs = rng.random((10, 40))
    target = rng.integers(0, 40, size=10)
    a = n_way_top_k_accuracy(probs, target, 10, 1, num_trials=5, seed=7)
    assert a == n_way_top_k_accuracy(probs, target, 10, 1, num_trials=5, seed=7)
    values = {n_way_top_k_accuracy(probs, target, 10, 1, num_trials=5, seed=s) for s in range(10)}
    assert len(values) > 1


def test_sampled_mode_matches_literal_published_loop():
    """The original code: per trial, draw n_way - 1 others with np.random.choice, put the true
    class first and check the top-k of the kept scores (ties resolved against the true class)."""
    rng = np.random.default_rng(4)
    probs = rng.random((4, 20))
    target = rng.integers(0, 20, size=4)
    draw_rng = np.random.default_rng(11)
    hits = []
    for scores, label in zip(probs, target):
        pick_range = [i for i in range(20) if i != label]
        for _ in range(2000):
            picked = draw_rng.choice(pick_range, 4, replace=False)
            kept = np.concatenate([[scores[label]], scores[picked]])
            hits.append(np.sum(kept[1:] >= kept[0]) < 2)
    ours = np.mean([n_way_top_k_accuracy(probs, target, 5, 2, num_trials=2000, seed=s) for s in range(2)])
    assert ours == pytest.approx(np.mean(hits), abs=0.02)


def test_edge_cases():
    probs = np.array([[0.1, 0.5, 0.2, 0.2], [0.4, 0.3, 0.2, 0.1]])
    target = np.array([2, 0])
    # n_way = K: every other class is kept; image 0 has 2 classes >= its true score -> top-3 hit only
    for k, expected in [(1, 0.5), (2, 0.5), (3, 1.0)]:
        assert n_way_top_k_accuracy(probs, target, n_way=4, top_k=k, exact=True) == expected
        assert n_way_top_k_accuracy(probs, target, n_way=4, top_k=k, num_trials=3, seed=0) == expected
    # top_k >= n_way: always a hit
    assert n_way_top_k_accuracy(probs, target, n_way=2, top_k=2) == 1.0
    # one image
    assert n_way_top_k_accuracy(probs[:1], target[:1], n_way=2, exact=True) == pytest.approx(1 / 3)
    # all scores tied: ties count against the true class
    assert n_way_top_k_accuracy(np.full((3, 5), 0.2), [0, 1, 2], n_way=3, exact=True) == 0.0
    assert n_way_top_k_accuracy(np.full((3, 5), 0.2), [0, 1, 2], n_way=3, seed=0) == 0.0
    # the hit probability of the closed form for the papers' setting (K = 1000, 50-way top-1)
    p = np.zeros((1, 1000))
    p[0, :11] = 1.0  # 10 others tie with / beat the true class 0
    expected = math.comb(989, 49) / math.comb(999, 49)
    assert n_way_top_k_accuracy(p, [0], exact=True) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(probs=np.ones((2, 4)), target=[0, 1], n_way=5), "`n_way` must be between 2 and the number of classes (4); got 5"),
        (dict(probs=np.ones((2, 4)), target=[0, 1], n_way=1), "`n_way` must be between 2"),
        (dict(probs=np.ones((2, 4)), target=[0, 1, 2], n_way=2), "`probs` has 2 rows but `target` has 3 entries"),
        (dict(probs=np.ones(4), target=[0], n_way=2), "`probs` must be 2-D"),
        (dict(probs=np.array([[np.nan, 1.0]]), target=[0], n_way=2), "NaN or infinite"),
        (dict(probs=np.ones((1, 4)), target=[4], n_way=2), "`target` class ids must be in [0, 3]"),
        (dict(probs=np.ones((1, 4)), target=[0.5], n_way=2), "integer class ids"),
        (dict(probs=np.ones((1, 4)), target=[0], n_way=2, top_k=0), "`top_k` must be >= 1"),
        (dict(probs=np.zeros((0, 4)), target=[], n_way=2), "empty"),
    ],
)
def test_n_way_errors(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        n_way_top_k_accuracy(**kwargs)


# ------------------------------------------------------------------------------------------------
# Inception Score
# ------------------------------------------------------------------------------------------------


def _numpy_inception_score(probs, splits):
    scores = []
    n = len(probs)
    for i in range(splits):
        part = probs[i * n // splits : (i + 1) * n // splits]
        marginal = part.mean(axis=0)
        kl = np.array([rel_entr(row, marginal).sum() for row in part])
        scores.append(np.exp(kl.mean()))
    return np.mean(scores), np.std(scores)


@pytest.mark.parametrize("splits", [1, 3, 10])
def test_inception_score_matches_numpy_formula(splits):
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(53, 20)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    mean, std = inception_score(torch.from_numpy(probs).float(), splits=splits)
    ref_mean, ref_std = _numpy_inception_score(probs, splits)
    assert mean == pytest.approx(ref_mean, rel=1e-5)
    assert std == pytest.approx(ref_std, rel=1e-4, abs=1e-6)


def test_inception_score_known_values():
    # one-hot over K distinct classes: IS = K; identical rows: IS = 1
    assert inception_score(np.eye(7), splits=1) == pytest.approx((7.0, 0.0))
    assert inception_score(np.tile([[0.2, 0.8]], (6, 1)), splits=2) == pytest.approx((1.0, 0.0))


def test_inception_score_errors():
    with pytest.raises(ValueError, match="row 1 sums to 2.000000"):
        inception_score(np.array([[0.5, 0.5], [1.0, 1.0]]), splits=1)
    with pytest.raises(ValueError, match="non-negative"):
        inception_score(np.array([[1.5, -0.5]]), splits=1)
    with pytest.raises(ValueError, match=r"`splits` must be between 1 and the number of images \(2\); got 3"):
        inception_score(np.eye(2), splits=3)


# ------------------------------------------------------------------------------------------------
# Fréchet distance
# ------------------------------------------------------------------------------------------------


def _pytorch_fid_formula(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = covmean.real
    diff = mu1 - mu2
    return diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def test_frechet_distance_matches_scipy_sqrtm_formula():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(200, 12))
    b = rng.normal(size=(150, 12)) @ rng.normal(size=(12, 12)) * 0.5 + 0.3
    assert frechet_distance(a, b) == pytest.approx(_pytorch_fid_formula(a, b), rel=1e-8)
    assert frechet_distance(torch.from_numpy(a).float(), b) == pytest.approx(_pytorch_fid_formula(a.astype(np.float32).astype(np.float64), b), rel=1e-5)


def test_frechet_distance_identical_sets_and_1d_closed_form():
    rng = np.random.default_rng(7)
    a = rng.normal(size=(64, 32)) * 10
    assert abs(frechet_distance(a, a)) < 1e-8 * np.trace(np.cov(a, rowvar=False))
    low_rank = rng.normal(size=(10, 32))  # N < F: singular covariance
    assert abs(frechet_distance(low_rank, low_rank)) < 1e-8
    # 1-D Gaussians: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance_from_statistics([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)


def test_frechet_distance_errors():
    with pytest.raises(ValueError, match="`features_a` needs at least 2 samples"):
        frechet_distance(np.zeros((1, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="`features_a` has 3 features per sample but `features_b` has 4"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="`features_b` contains NaN"):
        frechet_distance(np.zeros((5, 3)), np.full((5, 3), np.inf))

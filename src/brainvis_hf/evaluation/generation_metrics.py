"""Generation metrics on classifier outputs and features: N-way top-k accuracy (GA), Inception
Score and the Fréchet distance.

Tie rule of the N-way top-k accuracy (used by both the sampled and the exact mode): a kept
other class *beats* the true class when its score is greater than **or equal to** the true
class's score, i.e. ties count against the true class. A trial is a hit when fewer than
``top_k`` kept other classes beat the true class. (A classifier that outputs a constant
therefore scores 0, never 100%.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._utils import to_class_ids, to_numpy

# ------------------------------------------------------------------------------------------------
# N-way top-k accuracy (generation accuracy, GA)
# ------------------------------------------------------------------------------------------------


def _check_n_way_inputs(probs: Any, target: Any, n_way: int, top_k: int, num_trials: int) -> tuple[np.ndarray, np.ndarray]:
    scores = to_numpy(probs, "probs", dtype=np.float64)
    labels = to_numpy(target, "target")
    if scores.ndim != 2:
        raise ValueError(f"`probs` must be 2-D (num_images x num_classes); got shape {tuple(scores.shape)}")
    if labels.ndim != 1:
        raise ValueError(f"`target` must be 1-D (num_images,); got shape {tuple(labels.shape)}")
    if scores.shape[0] != labels.shape[0]:
        raise ValueError(f"`probs` has {scores.shape[0]} rows but `target` has {labels.shape[0]} entries")
    if scores.shape[0] == 0:
        raise ValueError("`probs` is empty: need at least one image")
    if not np.all(np.isfinite(scores)):
        raise ValueError("`probs` contains NaN or infinite values")
    labels = to_class_ids(labels, "target", scores.shape[1], "probs")
    num_classes = scores.shape[1]
    if not 2 <= n_way <= num_classes:
        raise ValueError(f"`n_way` must be between 2 and the number of classes ({num_classes}); got {n_way}")
    if top_k < 1:
        raise ValueError(f"`top_k` must be >= 1; got {top_k}")
    if num_trials < 1:
        raise ValueError(f"`num_trials` must be >= 1; got {num_trials}")
    return scores, labels.astype(np.int64)


def _num_beating(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per image, the number of *other* classes whose score is >= the true class's (tie rule)."""
    true_scores = scores[np.arange(len(labels)), labels]
    return (scores >= true_scores[:, None]).sum(axis=1) - 1  # minus the true class itself


def _exact_hit_probability(num_others: int, num_beating: int, draws: int, top_k: int) -> float:
    """P(fewer than top_k of `draws` classes drawn without replacement from `num_others` classes,
    `num_beating` of which beat the true class, are beating ones): a hypergeometric CDF, computed
    with exact integer arithmetic (Python int division rounds correctly)."""
    others_not_beating = num_others - num_beating
    favourable = sum(
        math.comb(num_beating, j) * math.comb(others_not_beating, draws - j) for j in range(min(top_k, draws + 1))
    )
    return favourable / math.comb(num_others, draws)


def n_way_top_k_hit_rates(
    probs: Any,
    target: Any,
    n_way: int = 50,
    top_k: int = 1,
    num_trials: int = 50,
    seed: int | None = None,
    exact: bool = False,
) -> np.ndarray:
    """Per-image N-way top-k accuracy: the fraction of hits over ``num_trials`` trials (sampled
    mode) or the hit probability over all draws (``exact=True``). See
    :func:`n_way_top_k_accuracy` for the arguments; returns a float64 array of shape ``(N,)``."""
    scores, labels = _check_n_way_inputs(probs, target, n_way, top_k, num_trials)
    num_images, num_classes = scores.shape
    beating = _num_beating(scores, labels)
    if top_k >= n_way:  # the true class is always among the top-k of n_way kept classes
        return np.ones(num_images, dtype=np.float64)
    draws = n_way - 1
    if exact:
        cache: dict[int, float] = {}
        rates = np.empty(num_images, dtype=np.float64)
        for i, m in enumerate(beating.tolist()):
            if m not in cache:
                cache[m] = _exact_hit_probability(num_classes - 1, m, draws, top_k)
            rates[i] = cache[m]
        return rates

    # Sampled mode, the published protocol: per image and trial keep the true class plus
    # `n_way - 1` other classes drawn uniformly without replacement, and count a hit when the true
    # class is in the top-k of the kept scores (ties against the true class).
    rng = np.random.default_rng(seed)
    rates = np.empty(num_images, dtype=np.float64)
    for i in range(num_images):
        others = np.delete(np.arange(num_classes), labels[i])
        beats = scores[i, others] >= scores[i, labels[i]]
        # `draws` distinct others per trial: the first `draws` of a random permutation
        keys = rng.random((num_trials, num_classes - 1))
        picked = np.argpartition(keys, draws - 1, axis=1)[:, :draws] if draws < num_classes - 1 else np.broadcast_to(np.arange(num_classes - 1), (num_trials, draws))
        rates[i] = np.mean(beats[picked].sum(axis=1) < top_k)
    return rates


def n_way_top_k_accuracy(
    probs: Any,
    target: Any,
    n_way: int = 50,
    top_k: int = 1,
    num_trials: int = 50,
    seed: int | None = None,
    exact: bool = False,
) -> float:
    """N-way top-k accuracy (generation accuracy, GA) of classifier outputs.

    For each image, keep the score of the true class plus those of ``n_way - 1`` other classes
    drawn at random without replacement; a trial is a hit when the true class is within the
    top-k of the kept scores. Ties count against the true class (a kept other class with a score
    equal to the true class's ranks above it).

    Args:
        probs: ``(N, K)`` classifier probabilities (or any scores with the same ranking, e.g.
            logits) for the generated images, e.g. ImageNet-1k (K = 1000).
        target: ``(N,)`` true class ids, in the classifier's label space (the GA protocol takes
            them from the classifier's prediction on the ground-truth image).
        n_way: number of kept classes, ``2 <= n_way <= K`` (papers: 50).
        top_k: hit when the true class is among the ``top_k`` highest kept scores (papers: 1).
        num_trials: random draws per image in sampled mode (papers: 50).
        seed: seed of the NumPy generator in sampled mode (``None``: fresh entropy).
        exact: return the expected value over all draws (hypergeometric, no sampling noise)
            instead of sampling; ``num_trials`` and ``seed`` are then ignored.

    Returns:
        The accuracy averaged over images (and trials), in ``[0, 1]``.
    """
    return float(np.mean(n_way_top_k_hit_rates(probs, target, n_way, top_k, num_trials, seed, exact)))


# ------------------------------------------------------------------------------------------------
# Inception Score
# ------------------------------------------------------------------------------------------------


def inception_score(probs: Any, splits: int = 10) -> tuple[float, float]:
    """Inception Score of class probabilities, as torch-fidelity defines it.

    The N rows are cut into ``splits`` consecutive chunks ``[i*N//splits, (i+1)*N//splits)``
    (no shuffling; shuffle the rows beforehand to mimic torch-fidelity's ``isc_shuffle``); per
    chunk the score is ``exp(mean_x KL(p(y|x) || p(y)))`` with ``p(y)`` the chunk's mean
    distribution. Terms with ``p(y|x) = 0`` contribute 0 (``0 log 0 = 0``).

    Args:
        probs: ``(N, K)`` class probabilities (rows must be non-negative and sum to 1 within
            1e-3; they are renormalised exactly).
        splits: number of chunks, ``1 <= splits <= N``.

    Returns:
        ``(mean, std)`` of the per-chunk scores (population std, ``ddof=0``, as torch-fidelity).
    """
    p = to_numpy(probs, "probs", dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"`probs` must be 2-D (num_images x num_classes); got shape {tuple(p.shape)}")
    num_images = p.shape[0]
    if not 1 <= splits <= num_images:
        raise ValueError(f"`splits` must be between 1 and the number of images ({num_images}); got {splits}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("`probs` must be finite and non-negative (pass softmax probabilities, not logits)")
    row_sums = p.sum(axis=1)
    if not np.allclose(row_sums, 1.0, atol=1e-3):
        worst = int(np.argmax(np.abs(row_sums - 1)))
        raise ValueError(f"rows of `probs` must sum to 1 (pass softmax probabilities, not logits); row {worst} sums to {row_sums[worst]:.6f}")
    p = p / row_sums[:, None]
    scores = []
    for i in range(splits):
        chunk = p[i * num_images // splits : (i + 1) * num_images // splits]
        marginal = chunk.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(chunk > 0, chunk * (np.log(chunk) - np.log(marginal)), 0.0)
        scores.append(float(np.exp(terms.sum(axis=1).mean())))
    return float(np.mean(scores)), float(np.std(scores))


# ------------------------------------------------------------------------------------------------
# Fréchet distance
# ------------------------------------------------------------------------------------------------


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def frechet_distance_from_statistics(mu_a: Any, sigma_a: Any, mu_b: Any, sigma_b: Any) -> float:
    """Fréchet distance between the Gaussians N(mu_a, sigma_a) and N(mu_b, sigma_b):
    ``|mu_a - mu_b|^2 + Tr(sigma_a + sigma_b - 2 (sigma_a sigma_b)^(1/2))``.

    ``Tr((sigma_a sigma_b)^(1/2))`` is computed as the sum of the square roots of the
    eigenvalues of the symmetric PSD matrix ``sigma_a^(1/2) sigma_b sigma_a^(1/2)`` (same
    eigenvalues as ``sigma_a sigma_b``), which needs no complex arithmetic and no regularising
    offset; tiny negative eigenvalues from round-off are clipped at 0.
    """
    mu_a, mu_b = to_numpy(mu_a, "mu_a", dtype=np.float64), to_numpy(mu_b, "mu_b", dtype=np.float64)
    sigma_a, sigma_b = to_numpy(sigma_a, "sigma_a", dtype=np.float64), to_numpy(sigma_b, "sigma_b", dtype=np.float64)
    if mu_a.shape != mu_b.shape or mu_a.ndim != 1:
        raise ValueError(f"means must be 1-D and of equal length; got {mu_a.shape} and {mu_b.shape}")
    dim = mu_a.shape[0]
    for name, sigma in (("sigma_a", sigma_a), ("sigma_b", sigma_b)):
        if sigma.shape != (dim, dim):
            raise ValueError(f"`{name}` must be {dim} x {dim}; got shape {sigma.shape}")
    sigma_a = (sigma_a + sigma_a.T) / 2
    sigma_b = (sigma_b + sigma_b.T) / 2
    root_a = _sqrt_psd(sigma_a)
    middle = root_a @ sigma_b @ root_a
    trace_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum())
    diff = mu_a - mu_b
    value = float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * trace_sqrt)
    return max(value, 0.0)


def feature_statistics(features: Any, name: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample covariance (``ddof=1``, as pytorch-fid) of ``(N, F)`` features, N >= 2."""
    x = to_numpy(features, name, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (num_samples x num_features); got shape {tuple(x.shape)}")
    if x.shape[0] < 2:
        raise ValueError(f"`{name}` needs at least 2 samples to estimate a covariance; got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{name}` contains NaN or infinite values")
    return x.mean(axis=0), np.cov(x, rowvar=False, ddof=1).reshape(x.shape[1], x.shape[1])


def frechet_distance(features_a: Any, features_b: Any) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID when the features
    are Inception-v3 pool features).

    Args:
        features_a: ``(N_a, F)`` features, ``N_a >= 2``.
        features_b: ``(N_b, F)`` features, ``N_b >= 2`` (the counts may differ).

    Returns:
        The distance (>= 0; identical sets give 0 up to round-off, ~1e-10 relative).
    """
    mu_a, sigma_a = feature_statistics(features_a, "features_a")
    mu_b, sigma_b = feature_statistics(features_b, "features_b")
    if mu_a.shape != mu_b.shape:
        raise ValueError(f"`features_a` has {mu_a.shape[0]} features per sample but `features_b` has {mu_b.shape[0]}")
    return frechet_distance_from_statistics(mu_a, sigma_a, mu_b, sigma_b)

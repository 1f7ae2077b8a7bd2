"""Evaluation benchmarks: speed ratios measured in one run (same machine, same load).

    python benchmarks/bench_evaluation.py [--quick]

1. SSIM (integral images, NumPy) vs scikit-image's structural_similarity on 512 x 512 x 3 uint8
   images (the generated image size), with the difference of the values.
2. GA on a test-set-sized problem (N generated images x 1000 ImageNet classes, 50-way top-1):
   exact closed form vs the sampled protocol (50 trials per image).
3. Fréchet distance: our eigen-based trace vs pytorch-fid's scipy.linalg.sqrtm formula
   (F-dimensional features), with the difference of the values.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import linalg
from skimage.metrics import structural_similarity

from brainvis_hf.evaluation import frechet_distance, n_way_top_k_accuracy, ssim


def _best_of(fn, repeats):
    best = float("inf")
    value = None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def _sqrtm_fid(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    size = 256 if args.quick else 512
    a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-50, 51, a.shape), 0, 255).astype(np.uint8)
    t_ours, v_ours = _best_of(lambda: ssim(a, b), 5)
    t_ref, v_ref = _best_of(lambda: structural_similarity(a, b, channel_axis=-1, data_range=255), 5)
    print(f"SSIM {size}x{size}x3: ours {t_ours * 1e3:.1f} ms, skimage {t_ref * 1e3:.1f} ms, "
          f"ratio skimage/ours {t_ref / t_ours:.2f}x, |diff| {abs(v_ours - v_ref):.1e}")

    n, k = (400 if args.quick else 2000), 1000
    probs = rng.dirichlet(np.ones(k) * 0.05, size=n)
    target = rng.integers(0, k, size=n)
    t_exact, v_exact = _best_of(lambda: n_way_top_k_accuracy(probs, target, 50, 1, exact=True), 3)
    t_sampled, v_sampled = _best_of(lambda: n_way_top_k_accuracy(probs, target, 50, 1, 50, seed=0), 1)
    print(f"GA {n} images x {k} classes, 50-way top-1: exact {t_exact:.3f} s, sampled (50 trials) {t_sampled:.3f} s, "
          f"ratio sampled/exact {t_sampled / t_exact:.1f}x; exact {v_exact:.4f} vs sampled {v_sampled:.4f}")

    f = 512 if args.quick else 1024
    feats_a = rng.normal(size=(2 * f, f))
    feats_b = rng.normal(size=(2 * f, f)) * 1.1 + 0.05
    t_ours, v_ours = _best_of(lambda: frechet_distance(feats_a, feats_b), 2)
    t_ref, v_ref = _best_of(lambda: _sqrtm_fid(feats_a, feats_b), 1)
    print(f"Frechet distance F={f}: ours {t_ours:.2f} s, scipy sqrtm {t_ref:.2f} s, ratio sqrtm/ours {t_ref / t_ours:.2f}x, "
          f"relative diff {abs(v_ours - v_ref) / abs(v_ref):.1e}")


if __name__ == "__main__":
    main()

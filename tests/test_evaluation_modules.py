"""The bundled `evaluate` modules load offline with evaluate.load(<path>) and return exactly
what the plain functions return; each module file has one import per line."""

import re
from pathlib import Path

import evaluate
import numpy as np
import pytest

from brainvis_hf.evaluation import (
    METRIC_MODULES,
    eeg_classification_metrics,
    frechet_distance,
    inception_score,
    metric_module_path,
    n_way_top_k_accuracy,
    ssim,
)


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(0)


def test_module_files_exist_with_one_import_per_line():
    for name in METRIC_MODULES:
        path = Path(metric_module_path(name))
        assert path.is_file() and path.parent.name == name
        for line in path.read_text().splitlines():
            if line.startswith(("import ", "from ")):
                assert "," not in line and "(" not in line, f"{path}: more than one import on a line: {line}"
    with pytest.raises(ValueError, match="unknown metric module 'nope'"):
        metric_module_path("nope")


def test_n_way_module(rng):
    probs = rng.dirichlet(np.ones(60), size=8)
    target = rng.integers(0, 60, size=8)
    metric = evaluate.load(metric_module_path("n_way_top_k_accuracy"))
    for kwargs in (dict(n_way=50, top_k=1, exact=True), dict(n_way=20, top_k=3, num_trials=7, seed=5)):
        got = metric.compute(predictions=probs.tolist(), references=target.tolist(), **kwargs)
        assert got == {"n_way_top_k_accuracy": pytest.approx(n_way_top_k_accuracy(probs, target, **kwargs), abs=1e-12)}


def test_inception_score_module(rng):
    probs = rng.dirichlet(np.ones(10), size=30)
    metric = evaluate.load(metric_module_path("inception_score"))
    for start in range(0, 30, 10):  # accumulate batches
        metric.add_batch(predictions=probs[start : start + 10].tolist())
    got = metric.compute(splits=3)
    mean, std = inception_score(probs, splits=3)
    assert got["inception_score_mean"] == pytest.approx(mean, rel=1e-12)
    assert got["inception_score_std"] == pytest.approx(std, rel=1e-9, abs=1e-12)


def test_fid_module(rng):
    generated = rng.normal(size=(20, 4))
    reference = rng.normal(size=(13, 4)) + 0.5
    metric = evaluate.load(metric_module_path("fid"))
    metric.add_batch(predictions=generated[:10].tolist())
    metric.add_batch(predictions=generated[10:].tolist())
    assert metric.compute(reference_features=reference)["fid"] == pytest.approx(frechet_distance(generated, reference), rel=1e-12)
    with pytest.raises(ValueError, match=re.escape("needs `reference_features=`")):
        evaluate.load(metric_module_path("fid")).compute(predictions=generated.tolist())


def test_ssim_module_is_lossless(rng):
    images_a = [rng.integers(0, 256, (12, 15, 3), dtype=np.uint8) for _ in range(3)]
    images_b = [rng.integers(0, 256, (12, 15, 3), dtype=np.uint8) for _ in range(3)]
    got = evaluate.load(metric_module_path("ssim")).compute(predictions=images_a, references=images_b)
    expected = [ssim(a, b) for a, b in zip(images_a, images_b)]
    assert got["ssim_per_image"] == pytest.approx(expected, abs=1e-12)
    assert got["ssim"] == pytest.approx(np.mean(expected), abs=1e-12)


def test_eeg_classification_module(rng):
    logits = rng.normal(size=(25, 40))
    labels = rng.integers(0, 40, size=25)
    got = evaluate.load(metric_module_path("eeg_classification")).compute(predictions=logits.tolist(), references=labels.tolist())
    expected = eeg_classification_metrics(logits, labels)
    expected["confusion_matrix"] = expected["confusion_matrix"].tolist()
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == (pytest.approx(value, abs=1e-12) if isinstance(value, float) else value)

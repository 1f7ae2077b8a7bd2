"""Image classifier, feature extractors, FID, and `brainvis evaluate` on a generate-style folder
built here to the documented format (docs/architecture.md), with a tiny random ViT classifier
(1000 labels) and a tiny ViT feature extractor."""

import json
import re
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor, ViTModel

from brainvis_hf.cli import main
from brainvis_hf.evaluation import (
    FeatureExtractorUnavailableError,
    TransformersImageFeatureExtractor,
    classify_images,
    eeg_classification_metrics,
    evaluate_generated,
    extract_features,
    fid,
    frechet_distance,
    inception_score,
    n_way_top_k_accuracy,
    n_way_top_k_hit_rates,
    ssim,
)

NUM_EEG_CLASSES = 40


def _tiny_vit_config(**kwargs):
    return ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, **kwargs)


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_classifier")
    model = ViTForImageClassification(_tiny_vit_config(num_labels=1000))
    with torch.no_grad():  # spread the logits so that the probabilities are not all ~1/1000
        model.classifier.weight.mul_(50)
    model.save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def feature_extractor_dir(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("tiny_features")
    ViTModel(_tiny_vit_config(), add_pooling_layer=False).save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return str(path)


def _write_generated_folder(root, num_eegs=4, samples=2, seed=0):
    """A `brainvis generate` output folder: images/<eeg_id>_<k>.png (32 x 32),
    stage1/<eeg_id>_<k>.png, ground_truth/<eeg_id>.png (48 x 40: a different size),
    contact_sheet.png and manifest.json."""
    rng = np.random.default_rng(seed)
    for sub in ("images", "stage1", "ground_truth"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    class_names = [f"class {i}" for i in range(NUM_EEG_CLASSES)]
    eegs, images = [], []
    for e in range(num_eegs):
        eeg_id = str(100 + 7 * e)
        ground_truth = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(ground_truth).save(root / "ground_truth" / f"{eeg_id}.png")
        logits = rng.normal(size=NUM_EEG_CLASSES)
        probs = np.exp(logits) / np.exp(logits).sum()
        true_label = int(rng.integers(0, NUM_EEG_CLASSES))
        eegs.append({
            "eeg_id": eeg_id, "true_label": true_label, "true_label_name": class_names[true_label],
            "ground_truth": f"ground_truth/{eeg_id}.png", "predicted_label": int(probs.argmax()),
            "predicted_label_name": class_names[int(probs.argmax())], "probs": probs.tolist(),
        })
        for k in range(samples):
            # generated = noisy copy of the (resized) ground truth, so SSIM is non-trivial
            base = np.asarray(Image.fromarray(ground_truth).resize((32, 32), Image.BICUBIC)).astype(int)
            image = np.clip(base + rng.integers(-60, 61, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(root / "images" / f"{eeg_id}_{k}.png")
            Image.fromarray(image[::-1]).save(root / "stage1" / f"{eeg_id}_{k}.png")
            images.append({"eeg_id": eeg_id, "sample": k, "seed": k, "file": f"images/{eeg_id}_{k}.png", "stage1_file": f"stage1/{eeg_id}_{k}.png"})
    Image.new("RGB", (64, 64)).save(root / "contact_sheet.png")
    manifest = {"model": "tiny-brainvis", "num_images_per_eeg": samples, "class_names": class_names, "eegs": eegs, "images": images}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return manifest


@pytest.fixture(scope="module")
def generated_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("generated")
    _write_generated_folder(root)
    return root


def _load(path):
    with Image.open(path) as image:
        return image.convert("RGB")


# ------------------------------------------------------------------------------------------------
# classifier, feature extractors, FID
# ------------------------------------------------------------------------------------------------


def test_classify_images_matches_manual_forward(classifier_dir):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 30, 3), dtype=np.uint8) for _ in range(5)]
    probs = classify_images(images, classifier_dir, batch_size=2, device="cpu")
    model = ViTForImageClassification.from_pretrained(classifier_dir).eval()
    processor = ViTImageProcessor.from_pretrained(classifier_dir)
    with torch.no_grad():
        expected = torch.softmax(model(**processor(images=[Image.fromarray(i) for i in images], return_tensors="pt")).logits.double(), -1).numpy()
    assert probs.shape == (5, 1000)
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(classify_images(images, model, batch_size=5, image_processor=processor), probs, atol=1e-6)


def test_transformers_feature_extractor_matches_manual(feature_extractor_dir):
    extractor = TransformersImageFeatureExtractor.from_pretrained(feature_extractor_dir)
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    features = extract_features(extractor, images, batch_size=2, device="cpu")
    model = ViTModel.from_pretrained(feature_extractor_dir, add_pooling_layer=False).eval()
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255 * 2 - 1  # mean = std = 0.5
    with torch.no_grad():
        expected = model(pixel_values=pixels).last_hidden_state.mean(dim=1).double().numpy()
    assert features.shape == (3, 16)
    np.testing.assert_allclose(features, expected, atol=1e-5)


def _tiny_conv_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 5, 3, stride=2), nn.AdaptiveAvgPool2d(2), nn.Flatten())


def test_fid_with_any_feature_extractor():
    rng = np.random.default_rng(2)
    images_a = [rng.integers(0, 256, (24, 20, 3), dtype=np.uint8) for _ in range(9)]
    images_b = [np.clip(i.astype(int) + 40, 0, 255).astype(np.uint8) for i in images_a[:7]]
    net = _tiny_conv_net()
    with torch.no_grad():
        features_a = net(torch.from_numpy(np.stack(images_a)).permute(0, 3, 1, 2).float() / 255).numpy()
        features_b = net(torch.from_numpy(np.stack(images_b)).permute(0, 3, 1, 2).float() / 255).numpy()
    expected = frechet_distance(features_a, features_b)
    assert expected > 0
    assert fid(images_a, images_b, net, batch_size=4, device="cpu") == pytest.approx(expected, rel=1e-6)
    assert fid(images_a, images_b, net, batch_size=100) == pytest.approx(expected, rel=1e-6)
    assert fid(images_a, images_a, net) == pytest.approx(0.0, abs=1e-9)
    # batch tensors: uint8 N x H x W x 3 and float N x 3 x H x W in [0, 1]
    batch = torch.from_numpy(np.stack(images_a))
    assert fid(batch, batch.permute(0, 3, 1, 2).float() / 255, net) == pytest.approx(0.0, abs=1e-9)


def test_fid_errors(monkeypatch):
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (16, 16 + i, 3), dtype=np.uint8) for i in range(3)]
    with pytest.raises(ValueError, match=re.escape("`images` have different sizes")):
        fid(images, images, _tiny_conv_net())
    assert fid(images, images, _tiny_conv_net(), image_size=(16, 16)) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="the feature extractor must return an N x F tensor for N = 3 images; got"):
        fid(images, images, nn.Flatten(0), image_size=(16, 16))
    # no standard Inception available (neither package importable): a clear error saying what to do
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    monkeypatch.setitem(sys.modules, "pytorch_fid", None)
    with pytest.raises(FeatureExtractorUnavailableError, match="pass `feature_extractor=` an nn.Module"):
        fid(images, images, image_size=(16, 16))


# ------------------------------------------------------------------------------------------------
# brainvis evaluate
# ------------------------------------------------------------------------------------------------


def test_cli_writes_all_files_and_numbers_equal_direct_calls(generated_dir, classifier_dir, feature_extractor_dir, tmp_path, capsys):
    out = tmp_path / "metrics"
    rc = main(["evaluate", "--generated", str(generated_dir), "--classifier", classifier_dir, "--feature-extractor", feature_extractor_dir,
               "--n-way", "50", "--top-k", "1", "--num-trials", "20", "--seed", "3", "--inception-splits", "3", "--output", str(out), "--device", "cpu"])
    assert rc == 0
    for name in ("metrics.json", "metrics.md", "confusion_matrix.png", "per_class_ga.png"):
        assert (out / name).is_file(), name
    for name in ("confusion_matrix.png", "per_class_ga.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and min(image.size) > 100
    metrics = json.loads((out / "metrics.json").read_text())

    # direct calls, on the files listed in the manifest
    manifest = json.loads((generated_dir / "manifest.json").read_text())
    index = {e["eeg_id"]: i for i, e in enumerate(manifest["eegs"])}
    generated = [_load(generated_dir / entry["file"]) for entry in manifest["images"]]
    eeg_of_image = [index[entry["eeg_id"]] for entry in manifest["images"]]
    ground_truth = [_load(generated_dir / e["ground_truth"]) for e in manifest["eegs"]]
    probs = classify_images(generated, classifier_dir, device="cpu")
    target = classify_images(ground_truth, classifier_dir, device="cpu").argmax(axis=1)[eeg_of_image]
    assert metrics["generation_accuracy"]["value"] == pytest.approx(n_way_top_k_accuracy(probs, target, 50, 1, 20, seed=3), abs=1e-12)
    assert metrics["summary"]["ga_50way_top1"] == metrics["generation_accuracy"]["value"]
    assert (metrics["inception_score"]["mean"], metrics["inception_score"]["std"]) == pytest.approx(inception_score(probs, 3), rel=1e-6)
    extractor = TransformersImageFeatureExtractor.from_pretrained(feature_extractor_dir)
    resized_gt = [g.resize((32, 32), Image.BICUBIC) for g in ground_truth]
    expected_fid = frechet_distance(extract_features(extractor, generated), extract_features(extractor, resized_gt))
    assert metrics["fid"]["computed"] and metrics["fid"]["value"] == pytest.approx(expected_fid, rel=1e-5)
    expected_ssim = np.mean([ssim(np.asarray(g), np.asarray(resized_gt[i])) for g, i in zip(generated, eeg_of_image)])
    assert metrics["ssim"]["mean"] == pytest.approx(expected_ssim, abs=1e-10)
    assert metrics["ssim"]["size"] == [32, 32]
    eeg = eeg_classification_metrics(np.array([e["probs"] for e in manifest["eegs"]]), np.array([e["true_label"] for e in manifest["eegs"]]))
    for key in ("top1_accuracy", "top3_accuracy", "top5_accuracy", "macro_f1"):
        assert metrics["eeg_classification"][key] == pytest.approx(eeg[key])
    assert metrics["eeg_classification"]["confusion_matrix"] == eeg["confusion_matrix"].tolist()
    # per-class GA: mean of the per-image rates of each EEG class
    rates = n_way_top_k_hit_rates(probs, target, 50, 1, 20, seed=3)
    for e, entry in enumerate(manifest["eegs"]):
        name = manifest["class_names"][entry["true_label"]]
        mask = [i for i, j in enumerate(eeg_of_image) if manifest["eegs"][j]["true_label"] == entry["true_label"]]
        assert metrics["per_class_ga"][name] == pytest.approx(rates[mask].mean())
        others = [i for i in range(len(eeg_of_image)) if i not in mask]
        false_alarm = np.mean([
            n_way_top_k_hit_rates(probs[others], np.full(len(others), t), 50, 1, 20, seed=3).mean()
            for t in sorted(set(target[mask].tolist()))
        ])
        assert metrics["per_class_ga_false_alarm"][name] == pytest.approx(false_alarm)
        assert metrics["per_class_ga_above_false_alarm"][name] == pytest.approx(rates[mask].mean() - false_alarm)
    # the Markdown table in the papers' layout, and the same table on stdout
    table = (out / "metrics.md").read_text()
    assert table.splitlines()[0] == "| Model | EEG top-1 (%) ↑ | GA 50-way top-1 (%) ↑ | IS ↑ | FID ↓ | SSIM ↑ |"
    assert f"| tiny-brainvis | {eeg['top1_accuracy'] * 100:.2f} | {metrics['generation_accuracy']['value'] * 100:.2f} |" in table
    assert table.splitlines()[0] in capsys.readouterr().out


def test_exact_ga_and_fid_not_computed_without_inception(generated_dir, classifier_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    monkeypatch.setitem(sys.modules, "pytorch_fid", None)
    metrics = evaluate_generated(generated_dir, classifier_dir, n_way=10, top_k=2, exact=True, output_dir=tmp_path, device="cpu")
    assert metrics["fid"]["computed"] is False and metrics["fid"]["value"] is None
    assert "Inception-v3 features are not available" in metrics["fid"]["reason"]
    assert "FID: not computed" in (tmp_path / "metrics.md").read_text()
    manifest = json.loads((generated_dir / "manifest.json").read_text())
    generated = [_load(generated_dir / entry["file"]) for entry in manifest["images"]]
    ground_truth = [_load(generated_dir / e["ground_truth"]) for e in manifest["eegs"]]
    index = {e["eeg_id"]: i for i, e in enumerate(manifest["eegs"])}
    target = classify_images(ground_truth, classifier_dir).argmax(axis=1)[[index[i["eeg_id"]] for i in manifest["images"]]]
    expected = n_way_top_k_accuracy(classify_images(generated, classifier_dir), target, 10, 2, exact=True)
    assert metrics["generation_accuracy"]["value"] == pytest.approx(expected, abs=1e-12)


def _broken_copy(generated_dir, tmp_path, mutate):
    root = tmp_path / "broken"
    shutil.copytree(generated_dir, root)
    manifest = json.loads((root / "manifest.json").read_text())
    mutate(root, manifest)
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _drop_image(root, manifest):
    (root / manifest["images"].pop()["file"]).unlink()


def _null_ground_truth(root, manifest):
    manifest["eegs"][1]["ground_truth"] = None


def _delete_ground_truth(root, manifest):
    (root / manifest["eegs"][0]["ground_truth"]).unlink()


def _delete_image(root, manifest):
    (root / manifest["images"][2]["file"]).unlink()


def _extra_image(root, manifest):
    Image.new("RGB", (32, 32)).save(root / "images" / "999_0.png")


def _unknown_eeg(root, manifest):
    manifest["images"][0]["eeg_id"] = "nope"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (_drop_image, "num_images_per_eeg is 2 but these EEGs have a different number of images (eeg_id, count): [('121', 1)]"),
        (_null_ground_truth, "eeg_id '107' has no ground truth ('ground_truth' is None)"),
        (_delete_ground_truth, "ground-truth image"),
        (_delete_image, "images/107_0.png listed in"),
        (_extra_image, "1 image(s) in"),
        (_unknown_eeg, "images[0] (images/100_0.png) refers to eeg_id 'nope', which is not in 'eegs'"),
    ],
)
def test_bad_folders_give_clear_errors(generated_dir, classifier_dir, tmp_path, capsys, mutate, message):
    root = _broken_copy(generated_dir, tmp_path, mutate)
    rc = main(["evaluate", "--generated", str(root), "--classifier", classifier_dir, "--feature-extractor", "none"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("brainvis evaluate: error: ")
    assert message in err


def test_bad_settings_fail_before_any_model_runs(generated_dir, tmp_path):
    with pytest.raises(ValueError, match=re.escape("`num_trials` must be >= 1; got 0")):
        evaluate_generated(generated_dir, "not/loaded", "none", num_trials=0, output_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="cannot load the feature extractor"):
        evaluate_generated(generated_dir, "not/loaded", str(tmp_path / "missing"), output_dir=tmp_path)


def test_missing_manifest_and_n_way_too_large(generated_dir, classifier_dir, tmp_path, capsys):
    assert main(["evaluate", "--generated", str(tmp_path), "--classifier", classifier_dir]) == 2
    assert "manifest.json not found: is" in capsys.readouterr().err
    with pytest.raises(ValueError, match=re.escape("n_way (1001) must be between 2 and the number of classifier labels (1000")):
        evaluate_generated(generated_dir, classifier_dir, "none", n_way=1001, output_dir=tmp_path)


def test_unloadable_models_and_default_classifier(generated_dir, tmp_path, capsys):
    from brainvis_hf.cli.evaluate import DEFAULT_CLASSIFIER
    from brainvis_hf.evaluation import DEFAULT_IMAGE_CLASSIFIER

    assert DEFAULT_CLASSIFIER == DEFAULT_IMAGE_CLASSIFIER  # the CLI keeps an import-free copy
    missing = tmp_path / "no_such_model"
    assert main(["evaluate", "--generated", str(generated_dir), "--classifier", str(missing), "--output", str(tmp_path)]) == 2
    assert f"cannot load the image classifier '{missing}'" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="cannot load the feature extractor"):
        TransformersImageFeatureExtractor.from_pretrained(str(missing))


def test_per_class_ga_of_noise_images_is_not_high():
    """A classifier that files every (noise) image under one class gives that class GA 1; its
    false-alarm rate is 1 too, so the per-class score the chart shows is 0 for every class."""
    from brainvis_hf.evaluation.report import per_class_generation_accuracy

    num_classes, per_class = 10, 4
    target = np.repeat(np.arange(num_classes), per_class)
    groups = {f"c{c}": np.flatnonzero(target == c) for c in range(num_classes)}
    hit_rates = lambda p, t: n_way_top_k_hit_rates(p, t, 5, 1, exact=True)  # noqa: E731
    rng = np.random.default_rng(0)
    noise = rng.dirichlet(np.ones(num_classes), size=len(target)) * 0.5
    noise[:, 7] += 0.5  # "missile" for every image
    rates = hit_rates(noise, target)
    rows = per_class_generation_accuracy(noise, target, groups, hit_rates, rates)
    assert rows["c7"]["ga"] == pytest.approx(1.0) and rows["c7"]["false_alarm"] == pytest.approx(1.0)
    assert max(abs(r["above_false_alarm"]) for r in rows.values()) < 0.35
    assert max(r["above_false_alarm"] for r in rows.values()) < max(r["ga"] for r in rows.values()) - 0.5
    # images that show their class: GA high, false alarms low
    good = np.full((len(target), num_classes), 0.01)
    good[np.arange(len(target)), target] = 0.9
    rows = per_class_generation_accuracy(good, target, groups, hit_rates, hit_rates(good, target))
    assert all(r["ga"] == pytest.approx(1.0) and r["false_alarm"] == pytest.approx(0.0) for r in rows.values())
    assert all(r["above_false_alarm"] == pytest.approx(1.0) for r in rows.values())

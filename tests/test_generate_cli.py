"""Tests of `brainvis generate` and the folder writer behind it (apps/generate_folder.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from brainvis_hf.cli import main
from brainvis_hf.pipelines import BrainVisPipeline
from brainvis_hf.apps.generate_folder import (
    GenerationSettings,
    generate_to_folder,
    load_eeg_records,
    merge_manifests,
    parse_indices,
    shard,
)

FAST_ARGS = ["--num-images-per-eeg", "2", "--steps", "2", "--refine-steps", "3", "--batch-size", "3", "--quiet"]


@pytest.fixture(scope="module")
def eeg_npy(tmp_path_factory):
    path = tmp_path_factory.mktemp("eeg_input") / "eeg.npy"
    np.save(path, np.random.default_rng(0).standard_normal((3, 128, 440)).astype(np.float32))
    return path


@pytest.fixture(scope="module")
def npy_run(tiny_pipeline_dir, eeg_npy, tmp_path_factory):
    """A finished `brainvis generate` run on three recordings (2 images each, refinement on)."""
    out = tmp_path_factory.mktemp("generate") / "out"
    assert main(["generate", "--model", str(tiny_pipeline_dir), "--eeg", str(eeg_npy), "--output", str(out), *FAST_ARGS]) == 0
    return out


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_folder_layout_and_manifest(npy_run, tiny_pipeline_dir):
    out = npy_run
    names = {f"{i}_{k}.png" for i in range(3) for k in range(2)}
    assert {p.name for p in (out / "images").iterdir()} == names
    assert {p.name for p in (out / "stage1").iterdir()} == names
    assert not any((out / "ground_truth").iterdir())
    manifest = _manifest(out)
    assert manifest["model"] == str(tiny_pipeline_dir) and manifest["num_images_per_eeg"] == 2
    assert len(manifest["class_names"]) == 40 and manifest["class_names"][0] == "sorrel horse"
    assert [e["eeg_id"] for e in manifest["eegs"]] == ["0", "1", "2"]
    for entry in manifest["eegs"]:
        assert entry["true_label"] is None and entry["true_label_name"] is None and entry["ground_truth"] is None
        assert len(entry["probs"]) == 40 and abs(sum(entry["probs"]) - 1) < 1e-4
        assert entry["predicted_label"] == int(np.argmax(entry["probs"]))
        assert entry["predicted_label_name"] == manifest["class_names"][entry["predicted_label"]]
    assert [(im["eeg_id"], im["sample"]) for im in manifest["images"]] == [(str(i), k) for i in range(3) for k in range(2)]
    for im in manifest["images"]:
        assert im["seed"] == 0 + int(im["eeg_id"]) * 2 + im["sample"]
        assert im["file"] == f"images/{im['eeg_id']}_{im['sample']}.png"
        assert im["stage1_file"] == f"stage1/{im['eeg_id']}_{im['sample']}.png"
    assert not (out / ".manifest_parts").exists() or not any((out / ".manifest_parts").iterdir())
    with PIL.Image.open(out / "contact_sheet.png") as sheet:
        # 3 rows (caption 16 + 128 + 4) + header 18 + 4; 5 columns (gt, 2 stage 1, 2 refined) of 128 + 4
        assert sheet.size == (4 + 5 * 132, 18 + 3 * 148 + 4)


def test_images_are_the_pipeline_images_with_the_recorded_seeds(npy_run, tiny_pipeline_dir, eeg_npy):
    pipe = BrainVisPipeline.from_pretrained(tiny_pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    manifest = _manifest(npy_run)
    eeg = np.load(eeg_npy)
    seeds = [im["seed"] for im in manifest["images"]]
    out = pipe(eeg, num_images_per_prompt=2, num_inference_steps=2, refine_num_inference_steps=3,
               generator=pipe.generators_from_seeds(seeds), return_stage1_images=True, output_type="pil")  # fmt: skip
    for j, im in enumerate(manifest["images"]):
        written = np.asarray(PIL.Image.open(npy_run / im["file"]), dtype=np.int16)
        np.testing.assert_allclose(written, np.asarray(out.images[j], dtype=np.int16), atol=1)
        stage1 = np.asarray(PIL.Image.open(npy_run / im["stage1_file"]), dtype=np.int16)
        np.testing.assert_allclose(stage1, np.asarray(out.stage1_images[j], dtype=np.int16), atol=1)
    assert [e["predicted_label_name"] for e in manifest["eegs"]] == out.predicted_labels


def test_resume_skips_finished_images(npy_run, tiny_pipeline_dir, eeg_npy, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(npy_run, out)
    before = _manifest(out)
    (out / "images" / "1_0.png").unlink()
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    assert main(["generate", "--model", str(tiny_pipeline_dir), "--eeg", str(eeg_npy), "--output", str(out), *FAST_ARGS]) == 0
    assert (out / "images" / "1_0.png").is_file()
    assert {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir() if p.name != "1_0.png"} == stamps
    assert _manifest(out) == before
    np.testing.assert_allclose(
        np.asarray(PIL.Image.open(out / "images" / "1_0.png"), dtype=np.int16),
        np.asarray(PIL.Image.open(npy_run / "images" / "1_0.png"), dtype=np.int16),
        atol=1,
    )


def test_resume_refuses_other_settings(npy_run, tiny_pipeline_dir, eeg_npy, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(npy_run, out)
    code = main(["generate", "--model", str(tiny_pipeline_dir), "--eeg", str(eeg_npy), "--output", str(out),
                 *FAST_ARGS, "--seed", "1"])  # fmt: skip
    assert code == 2
    assert "already holds images generated with other settings (seed: 0 -> 1)" in capsys.readouterr().err


def test_more_indices_extend_the_manifest(tiny_pipeline_dir, eeg_npy, npy_run, tmp_path):
    """A second run with other recordings of the same input adds them; the manifest keeps both."""
    out = tmp_path / "out"
    assert main(["generate", "--model", str(tiny_pipeline_dir), "--eeg", str(eeg_npy), "--indices", "2",
                 "--output", str(out), *FAST_ARGS]) == 0  # fmt: skip
    assert main(["generate", "--model", str(tiny_pipeline_dir), "--eeg", str(eeg_npy), "--indices", "0-1",
                 "--output", str(out), *FAST_ARGS]) == 0  # fmt: skip
    manifest = _manifest(out)
    assert [e["eeg_id"] for e in manifest["eegs"]] == ["2", "0", "1"]  # earlier EEGs first
    assert sorted((i["eeg_id"], i["sample"]) for i in manifest["images"]) == sorted(
        (i["eeg_id"], i["sample"]) for i in _manifest(npy_run)["images"]
    )
    assert manifest["generation"]["eeg_source"] == str(eeg_npy.resolve())


def test_another_input_into_the_same_folder_is_refused(npy_run, tiny_pipeline_dir, eeg_npy, tmp_path, capsys):
    """Array EEG ids are row numbers: images of another file would be mistaken for finished ones."""
    out = tmp_path / "out"
    shutil.copytree(npy_run, out)
    other = tmp_path / "other.npy"
    np.save(other, np.zeros((3, 128, 440), dtype=np.float32))
    code = main(["generate", "--model", str(tiny_pipeline_dir), "--eeg", str(other), "--output", str(out), *FAST_ARGS])
    assert code == 2
    err = capsys.readouterr().err
    assert f"other settings (eeg_source: {str(eeg_npy.resolve())!r} -> {str(other.resolve())!r})" in err


def test_prepared_dataset_with_ground_truth(tiny_pipeline_dir, prepared_data_dir, tmp_path):
    from brainvis_hf.data import load_prepared_dataset
    from brainvis_hf.evaluation.report import read_generated_folder

    out = tmp_path / "out"
    code = main(["generate", "--model", str(tiny_pipeline_dir), "--eeg", str(prepared_data_dir), "--split", "test",
                 "--indices", "0,2", "--num-images-per-eeg", "1", "--steps", "2", "--no-refine", "--quiet",
                 "--output", str(out)])  # fmt: skip
    assert code == 0
    rows = load_prepared_dataset(prepared_data_dir)["test"].select([0, 2])
    manifest = _manifest(out)
    assert [e["eeg_id"] for e in manifest["eegs"]] == [str(i) for i in rows["eeg_index"]]
    for entry, row in zip(manifest["eegs"], rows):
        assert entry["true_label"] == row["label"] and entry["true_label_name"] == row["label_text"]
        assert entry["ground_truth"] == f"ground_truth/{row['eeg_index']}.png"
        gt = np.asarray(PIL.Image.open(out / entry["ground_truth"]))
        np.testing.assert_array_equal(gt, np.asarray(row["image"].convert("RGB")))
    assert all(im["stage1_file"] is None for im in manifest["images"])
    assert not (out / "stage1").exists()
    folder = read_generated_folder(out)  # the evaluation side accepts the folder
    assert len(folder.image_files) == 2 and len(folder.ground_truth_files) == 2


def test_signals_file_with_indices(tiny_pipeline_dir, synthetic_eeg_files, tmp_path):
    from brainvis_hf.data import load_signals
    from brainvis_hf.data.labels import WNID_TO_WORDS

    data = load_signals(synthetic_eeg_files.eeg_path)
    usable = [i for i, rec in enumerate(data["dataset"]) if rec["eeg"].shape[1] >= 460][:2]
    out = tmp_path / "out"
    code = main(["generate", "--model", str(tiny_pipeline_dir), "--eeg", str(synthetic_eeg_files.eeg_path),
                 "--indices", ",".join(map(str, usable)), "--image-root", str(synthetic_eeg_files.image_root),
                 "--num-images-per-eeg", "1", "--steps", "1", "--no-refine", "--quiet", "--output", str(out)])  # fmt: skip
    assert code == 0
    manifest = _manifest(out)
    assert [e["eeg_id"] for e in manifest["eegs"]] == [str(i) for i in usable]
    for entry, i in zip(manifest["eegs"], usable):
        rec = data["dataset"][i]
        assert entry["true_label"] == rec["label"]
        assert entry["true_label_name"] == WNID_TO_WORDS[data["labels"][rec["label"]]]
        assert (out / entry["ground_truth"]).is_file()


def test_records_from_pt_and_npy_agree(tmp_path):
    array = np.random.default_rng(0).standard_normal((2, 128, 440)).astype(np.float32)
    np.save(tmp_path / "a.npy", array)
    torch.save(torch.from_numpy(array), tmp_path / "a.pt")
    from_npy = load_eeg_records(tmp_path / "a.npy", indices=[1])
    from_pt = load_eeg_records(tmp_path / "a.pt", indices=[1])
    assert [r.eeg_id for r in from_pt] == ["1"] and from_pt[0].number == 1
    np.testing.assert_array_equal(from_pt[0].eeg, from_npy[0].eeg)
    np.testing.assert_array_equal(from_pt[0].eeg, array[1])
    single = load_eeg_records(tmp_path / "a.npy", indices=None)
    assert len(single) == 2


@pytest.mark.parametrize(
    "make,extra,message",
    [
        (lambda d: d / "missing.npy", [], "does not exist"),
        (lambda d: (d / "x.txt").write_text("1") and d / "x.txt", [], "neither a prepared data folder nor"),
        (lambda d: np.save(d / "i.npy", np.zeros((2, 128, 440), dtype=np.int32)) or d / "i.npy", [], "floating-point EEG array, got dtype int32"),
        (lambda d: np.save(d / "s.npy", np.zeros((2, 3, 4, 5), dtype=np.float32)) or d / "s.npy", [], r"shape (C, T) or (N, C, T), got shape (2, 3, 4, 5)"),
        (lambda d: np.save(d / "o.npy", np.zeros((2, 128, 440), dtype=np.float32)) or d / "o.npy", ["--indices", "1-5"], "indices [2, 3, 4, 5] are out of range; it holds 2 recordings"),
        (lambda d: np.save(d / "b.npy", np.zeros((2, 128, 440), dtype=np.float32)) or d / "b.npy", ["--indices", "a-b"], "--indices: cannot read 'a-b'"),
        (lambda d: torch.save({"x": 1}, d / "d.pt") or d / "d.pt", [], "expected a tensor of shape (C, T) or (N, C, T) or an EEG-ImageNet signals dict, got dict"),
        (lambda d: np.save(d / "c.npy", np.zeros((2, 64, 440), dtype=np.float32)) or d / "c.npy", [], "must have 128 channels"),
    ],
    ids=["missing", "suffix", "int", "ndim", "range", "indices", "pt dict", "channels"],
)
def test_bad_inputs(tiny_pipeline_dir, tmp_path, capsys, make, extra, message):
    path = make(tmp_path)
    code = main(["generate", "--model", str(tiny_pipeline_dir), "--eeg", str(path), "--output", str(tmp_path / "out"),
                 "--steps", "1", "--quiet", *extra])  # fmt: skip
    assert code == 2
    assert message in capsys.readouterr().err


def test_parse_indices():
    assert parse_indices("0,5,10-12") == [0, 5, 10, 11, 12]
    assert parse_indices(None) is None
    with pytest.raises(ValueError, match="ends before it starts"):
        parse_indices("5-3")


def test_shard_is_contiguous_and_complete():
    items = list(range(7))
    shares = [shard(items, r, 3) for r in range(3)]
    assert shares == [[0, 1, 2], [3, 4], [5, 6]]  # the first len % world processes get one more
    assert shard(items[:1], 1, 2) == []
    with pytest.raises(ValueError):
        shard(items, 2, 2)


def test_shard_equals_accelerate_split_between_processes():
    from types import SimpleNamespace

    from accelerate.state import PartialState

    for world in range(1, 5):
        for length in range(10):
            items = list(range(length))
            for rank in range(world):
                fake_state = SimpleNamespace(num_processes=world, process_index=rank, device=torch.device("cpu"))
                with PartialState.split_between_processes(fake_state, items) as expected:
                    assert shard(items, rank, world) == list(expected), (world, length, rank)


def test_merge_manifests_orders_and_overrides():
    a = {"model": "m", "eegs": [{"eeg_id": "2", "x": 1}], "images": [{"eeg_id": "2", "sample": 1}, {"eeg_id": "2", "sample": 0}]}
    b = {"model": "m", "eegs": [{"eeg_id": "1", "x": 2}, {"eeg_id": "2", "x": 3}], "images": [{"eeg_id": "1", "sample": 0}]}
    merged = merge_manifests([a, b], eeg_order=["1", "2"])
    assert merged["eegs"] == [{"eeg_id": "1", "x": 2}, {"eeg_id": "2", "x": 3}]
    assert [(i["eeg_id"], i["sample"]) for i in merged["images"]] == [("1", 0), ("2", 0), ("2", 1)]


def test_two_processes_split_the_work_and_the_main_one_merges(tiny_pipeline_dir, eeg_npy, npy_run, tmp_path):
    """Two workers (threads with a real barrier, each with its own pipeline) == one process."""
    records = load_eeg_records(eeg_npy)
    settings = GenerationSettings(num_images_per_eeg=2, num_inference_steps=2, refine_num_inference_steps=3, batch_size=3)
    out = tmp_path / "out"
    barrier = threading.Barrier(2, timeout=300)
    pipes = [BrainVisPipeline.from_pretrained(tiny_pipeline_dir) for _ in range(2)]
    results, errors, generated = {}, [], {}

    def worker(rank):
        try:
            calls = []
            pipes[rank].unet.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
            results[rank] = generate_to_folder(pipes[rank], records, out, settings, model_name=str(tiny_pipeline_dir),
                                               rank=rank, world_size=2, barrier=barrier.wait, show_progress=False)  # fmt: skip
            generated[rank] = calls
        except Exception as err:  # pragma: no cover - surfaced below
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results[1] is None and results[0] == _manifest(out)
    # each worker made 3 of the 6 images, in one pipeline call (stage 1: one UNet call of 3 rows per step)
    assert generated[0][0] == 3 and generated[1][0] == 3
    single = _manifest(npy_run)
    assert [e["eeg_id"] for e in results[0]["eegs"]] == [e["eeg_id"] for e in single["eegs"]]
    for a, b in zip(results[0]["eegs"], single["eegs"]):
        assert a["predicted_label"] == b["predicted_label"]
        np.testing.assert_allclose(a["probs"], b["probs"], atol=1e-5)
    assert [(i["eeg_id"], i["sample"], i["seed"], i["file"]) for i in results[0]["images"]] == [
        (i["eeg_id"], i["sample"], i["seed"], i["file"]) for i in single["images"]
    ]
    for im in single["images"]:
        np.testing.assert_allclose(
            np.asarray(PIL.Image.open(out / im["file"]), dtype=np.int16),
            np.asarray(PIL.Image.open(npy_run / im["file"]), dtype=np.int16),
            atol=1,
        )


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(tiny_pipeline_dir, eeg_npy, npy_run, tmp_path):
    if shutil.which("accelerate") is None:
        pytest.skip("the accelerate command is not installed")
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = ["accelerate", "launch", "--num_processes", "2", "--cpu", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "-m", "brainvis_hf", "generate", "--model", str(tiny_pipeline_dir), "--eeg",
           str(eeg_npy), "--output", str(out), *FAST_ARGS]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = _manifest(out)
    assert [(i["eeg_id"], i["sample"]) for i in manifest["images"]] == [
        (i["eeg_id"], i["sample"]) for i in _manifest(npy_run)["images"]
    ]
    for im in manifest["images"]:
        np.testing.assert_allclose(
            np.asarray(PIL.Image.open(out / im["file"]), dtype=np.int16),
            np.asarray(PIL.Image.open(npy_run / im["file"]), dtype=np.int16),
            atol=1,
        )


def test_sd_option_assembles_the_pipeline(npy_run, tiny_alignment_model, tiny_sd_dir, eeg_npy, tmp_path):
    """--model ALIGNMENT --sd SD_FOLDER gives the images of the saved pipeline with the same parts."""
    tiny_alignment_model.save_pretrained(tmp_path / "align")
    out = tmp_path / "out"
    assert main(["generate", "--model", str(tmp_path / "align"), "--sd", str(tiny_sd_dir), "--eeg", str(eeg_npy),
                 "--indices", "1", "--output", str(out), *FAST_ARGS]) == 0  # fmt: skip
    manifest = _manifest(out)
    assert manifest["model"] == f"{tmp_path / 'align'} + {tiny_sd_dir}"
    for im in manifest["images"]:
        np.testing.assert_allclose(
            np.asarray(PIL.Image.open(out / im["file"]), dtype=np.int16),
            np.asarray(PIL.Image.open(npy_run / im["file"]), dtype=np.int16),
            atol=1,
        )


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = capsys.readouterr().out
    for option in ("--model", "--eeg", "--output", "--num-images-per-eeg", "--steps", "--refine-steps", "--no-refine",
                   "--seed", "--batch-size", "--split", "--indices", "--device"):  # fmt: skip
        assert option in text


def test_the_manifest_names_have_one_home():
    """generate_folder (the app) and evaluation/report.py (the library) share generation_manifest.py."""
    from brainvis_hf import generation_manifest
    from brainvis_hf.evaluation import report
    from brainvis_hf.apps import generate_folder

    for name in ("MANIFEST_NAME", "PARTS_DIR", "read_manifest", "merge_manifests", "check_manifest_paths", "write_manifest"):
        assert getattr(generate_folder, name) is getattr(generation_manifest, name)
    assert report.check_manifest_paths is generation_manifest.check_manifest_paths
    assert report.MANIFEST_NAME == generation_manifest.MANIFEST_NAME == "manifest.json"

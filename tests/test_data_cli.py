"""`brainvis data synth` / `brainvis data prepare` through brainvis_hf.cli.main."""

from __future__ import annotations

import datasets
import pytest
import torch

from brainvis_hf.cli import main

datasets.disable_progress_bars()


@pytest.mark.parametrize("argv", [["data", "--help"], ["data", "synth", "--help"], ["data", "prepare", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: brainvis data")
    if argv[1] == "--help":
        assert "synth" in out and "prepare" in out and "clip-targets" in out
    elif argv[1] == "synth":
        assert "--difficulty" in out and "--with-images" in out and "--num-images-per-class" in out
    else:
        assert "--push-to-hub" in out and "--split-num" in out and "--image-root" in out


def test_synth(tmp_path, capsys):
    out_dir = tmp_path / "synthetic_eeg"
    argv = ["data", "synth", "--output", str(out_dir), "--num-images-per-class", "3", "--num-subjects", "2",
            "--num-channels", "8", "--difficulty", "0.3", "--seed", "4", "--with-images"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert str(out_dir / "eeg_5_95_std.pth") in printed and str(out_dir / "block_splits_by_image_all.pth") in printed
    assert "240 recordings" in printed and str(out_dir / "images") in printed
    signals = torch.load(out_dir / "eeg_5_95_std.pth", weights_only=True)
    assert len(signals["dataset"]) == 240 and signals["dataset"][0]["eeg"].shape[0] == 8
    assert {r["subject"] for r in signals["dataset"]} == {1, 2}
    assert len(list((out_dir / "images").rglob("*.JPEG"))) == 120
    # existing files are kept unless --overwrite
    assert main(argv) == 2
    assert "already holds" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--seed", "5"]) == 0


def test_prepare(synthetic_eeg_files, eeg_imagenet_dataset, tmp_path, capsys):
    out = tmp_path / "prepared"
    argv = ["data", "prepare", "--eeg", str(synthetic_eeg_files.eeg_path), "--splits", str(synthetic_eeg_files.splits_path),
            "--output", str(out), "--subject", "2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"Wrote {out}/README.md" in printed
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    for split, ds in eeg_imagenet_dataset.items():
        expected = sorted(i for i, s in zip(ds["eeg_index"], ds["subject"]) if s == 2)
        assert sorted(loaded[split]["eeg_index"]) == expected
    assert "image" not in loaded["train"].features
    card = (out / "README.md").read_text()
    assert "- `subject`: 2 (0 = all)" in card and "- `split_num`: 0" in card

    # a non-empty output is refused without --overwrite, and kept
    assert main(argv) == 2
    assert "folder is not empty; pass --overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--subject", "0"]) == 0
    assert sum(d.num_rows for d in datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache2")).values()) == sum(
        d.num_rows for d in eeg_imagenet_dataset.values()
    )


def test_prepare_push_to_hub(synthetic_eeg_files, tmp_path, monkeypatch, capsys):
    uploads = []

    class FakeHfApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            return f"https://huggingface.co/datasets/{repo_id}"

        def upload_folder(self, *, folder_path, repo_id, repo_type, commit_message, ignore_patterns=()):
            from pathlib import Path
            from types import SimpleNamespace

            uploads.append((repo_id, repo_type, sorted(p.name for p in Path(folder_path).rglob("*.parquet"))))
            return SimpleNamespace(commit_url=f"https://huggingface.co/datasets/{repo_id}/commit/1")

    import brainvis_hf.hub.upload as upload_module

    monkeypatch.setattr(upload_module, "HfApi", FakeHfApi)
    out = tmp_path / "prepared"
    argv = ["data", "prepare", "--eeg", str(synthetic_eeg_files.eeg_path), "--splits", str(synthetic_eeg_files.splits_path),
            "--output", str(out), "--image-root", str(synthetic_eeg_files.image_root), "--push-to-hub", "me/eeg"]
    assert main(argv) == 0
    assert uploads == [("me/eeg", "dataset", ["test-00000-of-00001.parquet", "train-00000-of-00001.parquet",
                                              "validation-00000-of-00001.parquet"])]
    assert "Uploaded to https://huggingface.co/datasets/me/eeg/commit/1" in capsys.readouterr().out


def test_prepare_errors(synthetic_eeg_files, tmp_path, capsys):
    splits = str(synthetic_eeg_files.splits_path)
    assert main(["data", "prepare", "--eeg", str(tmp_path / "none.pth"), "--splits", splits, "--output", str(tmp_path / "o")]) == 2
    assert f"--eeg {tmp_path / 'none.pth'}: no such file" in capsys.readouterr().err
    argv = ["data", "prepare", "--eeg", str(synthetic_eeg_files.eeg_path), "--splits", splits, "--output", str(tmp_path / "o")]
    assert main([*argv, "--subject", "9"]) == 2
    assert "subject=9 is out of range: the file has subjects 1..2" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_prepare_drop_non_finite(tmp_path, capsys):
    from brainvis_hf.data import write_synthetic_eeg_imagenet

    files = write_synthetic_eeg_imagenet(tmp_path / "syn", num_images_per_class=3, num_subjects=1, num_channels=4, show_progress=False)
    signals = torch.load(files.eeg_path, weights_only=True)
    split0 = torch.load(files.splits_path, weights_only=True)["splits"][0]
    bad = next(i for i in split0["train"] if 450 <= signals["dataset"][i]["eeg"].shape[1] <= 600)
    signals["dataset"][bad]["eeg"][0, 50] = float("nan")
    torch.save(signals, files.eeg_path)
    argv = ["data", "prepare", "--eeg", str(files.eeg_path), "--splits", str(files.splits_path), "--output", str(tmp_path / "o")]
    assert main(argv) == 2
    assert f"NaN/Inf values in recording(s) [{bad}]" in capsys.readouterr().err
    assert main([*argv, "--drop-non-finite"]) == 0
    train = datasets.load_dataset(str(tmp_path / "o"), cache_dir=str(tmp_path / "cache"))["train"]
    assert bad not in train["eeg_index"] and len(train) > 0

"""Full disk, for real: a tiny tmpfs (needs root and mount; skipped with the reason otherwise).

`brainvis generate` and `brainvis data prepare` must stop with one line (exit 1), keep every
finished file intact, leave no temporary file, and finish on a rerun once there is space."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest

from brainvis_hf.cli import main


class TinyDisk(type(Path())):
    def grow(self) -> None:
        subprocess.run(["mount", "-o", "remount,size=8m", str(self)], check=True)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 96 KiB tmpfs; `grow()` remounts it at 8 MiB (the user freeing space)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / f"disk-{uuid.uuid4().hex[:8]}"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount_point)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")

    try:
        yield TinyDisk(mount_point)
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("brainvis ")]
    assert len(errors) == 1, err
    return errors[0]


def test_generate_on_a_full_disk(tiny_disk, tiny_pipeline_dir, tmp_path, capsys):
    eeg = tmp_path / "eeg.npy"
    np.save(eeg, np.random.default_rng(0).standard_normal((6, 128, 440)).astype(np.float32))
    args = ["--eeg", str(eeg), "--model", str(tiny_pipeline_dir), "--num-images-per-eeg", "2", "--steps", "1",
            "--refine-steps", "2", "--batch-size", "2", "--quiet"]  # fmt: skip
    reference = tmp_path / "reference"
    assert main(["generate", *args, "--output", str(reference)]) == 0
    capsys.readouterr()

    out = tiny_disk / "out"
    assert main(["generate", *args, "--output", str(out)]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("brainvis generate: error: no space left on the device while writing ")
    assert str(out) in line and ".tmp" not in line and "rerun the same command" in line
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]  # no partial file left behind
    recorded = []
    for part in (out / ".manifest_parts").glob("*.json"):  # what was recorded is intact and on disk
        for entry in json.loads(part.read_text())["images"]:
            recorded.append(entry["file"])
            assert (out / entry["file"]).read_bytes() == (reference / entry["file"]).read_bytes()
    assert 0 < len(recorded) < 12

    tiny_disk.grow()
    assert main(["generate", *args, "--output", str(out)]) == 0
    assert _tree(out) == _tree(reference)


def test_prepare_on_a_full_disk_keeps_the_previous_folder(tiny_disk, synthetic_eeg_files, tmp_path, capsys):
    previous = tiny_disk / "prepared"
    previous.mkdir()
    (previous / "README.md").write_text("the previous data set")
    before = _tree(previous)
    code = main(["data", "prepare", "--eeg", str(synthetic_eeg_files.eeg_path), "--splits", str(synthetic_eeg_files.splits_path),
                 "--output", str(previous), "--overwrite", "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    line = _one_line(capsys.readouterr().err)
    assert code == 1 and line.startswith("brainvis data: error: no space left on the device")
    assert _tree(previous) == before  # the old folder is untouched
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["prepared"]  # the partial new folder was removed
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)

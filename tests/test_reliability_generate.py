"""Fault injection for `brainvis generate` (apps/generate_folder.py): preemption schedules,
stale temporary files, manifest paths outside the output folder, an --output that is a file."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from brainvis_hf.cli import main
from brainvis_hf.pipelines import BrainVisPipeline
from brainvis_hf.apps.generate_folder import GenerationSettings, generate_to_folder, load_eeg_records


class Preempted(Exception):
    """Stands for the job being stopped (SIGTERM of a preemptible machine, a kill between images)."""


class PreemptingPipe:
    """Wraps a pipeline; the call after `budget` images raises, as a preemption would."""

    def __init__(self, pipe, budget: int | None, log: list[int]):
        self._pipe, self._budget, self._log, self._made = pipe, budget, log, 0

    def __getattr__(self, name):
        return getattr(self._pipe, name)

    def __call__(self, eeg, *args, generator=None, **kwargs):
        if self._budget is not None and self._made >= self._budget:
            raise Preempted
        out = self._pipe(eeg, *args, generator=generator, **kwargs)
        self._log.extend(int(g.initial_seed()) for g in generator)
        self._made += len(eeg)
        return out


@pytest.fixture(scope="module")
def tiny_pipe(tiny_pipeline_dir):
    pipe = BrainVisPipeline.from_pretrained(tiny_pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    path = tmp_path_factory.mktemp("eeg") / "eeg.npy"
    np.save(path, np.random.default_rng(1).standard_normal((4, 128, 440)).astype(np.float32))
    return load_eeg_records(path)


def _settings(batch_size: int) -> GenerationSettings:
    return GenerationSettings(num_images_per_eeg=2, num_inference_steps=2, refine_num_inference_steps=2, batch_size=batch_size)


def _run(pipe, records, out, settings, budget, log):
    return generate_to_folder(PreemptingPipe(pipe, budget, log), records, out, settings, model_name="tiny",
                              show_progress=False, eeg_source="eeg.npy")  # fmt: skip


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


_REFERENCES: dict[int, tuple[Path, list[int]]] = {}


def _uninterrupted(tiny_pipe, records, tmp_path_factory, batch_size: int = 1):
    """One uninterrupted run per batch size (images depend on which images share a batch, in the
    last bits of the UNet arithmetic; a resumed run keeps the batches of the uninterrupted one)."""
    if batch_size not in _REFERENCES:
        out = tmp_path_factory.mktemp("reference") / "out"
        log: list[int] = []
        _run(tiny_pipe, records, out, _settings(batch_size), None, log)
        _REFERENCES[batch_size] = (out, log)
    return _REFERENCES[batch_size]


@pytest.fixture(scope="module")
def uninterrupted(tiny_pipe, records, tmp_path_factory):
    return _uninterrupted(tiny_pipe, records, tmp_path_factory)


def _one_error_line(err: str) -> bool:
    """stderr holds one error line (progress bars aside) and no traceback."""
    errors = [line for line in err.splitlines() if line.startswith("brainvis ")]
    return len(errors) == 1 and "Traceback" not in err and err.rstrip("\n").endswith(errors[0])


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("every,batch_size", [(1, 1), (3, 1), (2, 2), (3, 2)],
                         ids=["every image", "every 3", "every batch of 2", "every 2 batches of 2"])  # fmt: skip
def test_preemption_schedule_finishes_each_image_once_and_byte_identical(tiny_pipe, records, tmp_path_factory, tmp_path, every, batch_size):
    reference, reference_log = _uninterrupted(tiny_pipe, records, tmp_path_factory, batch_size)
    total = 2 * len(records)
    assert sorted(reference_log) == list(range(total))  # seeds 0..7 of the 8 images
    out = tmp_path / "out"
    log: list[int] = []
    runs = 0
    while True:
        runs += 1
        assert runs <= total + 1, "the job does not converge"
        try:
            _run(tiny_pipe, records, out, _settings(batch_size), every, log)
            break
        except Preempted:
            # a writer killed mid-PNG (or out of disk space) leaves its temporary file behind
            (out / "images" / f".0_0.png.tmp{_dead_pid()}").write_bytes(b"partial")
    per_run = math.ceil(every / batch_size) * batch_size  # the pipe stops between batches
    assert runs == math.ceil(total / per_run)
    assert sorted(log) == sorted(reference_log)  # every image generated exactly once
    assert _tree(out) == _tree(reference)  # no stale temporaries, identical images, manifest, sheet


def test_interrupted_runs_keep_every_recorded_image(tiny_pipe, records, tmp_path):
    """The bug report's case: two interruptions, then a resume that must redo nothing."""
    out = tmp_path / "out"
    log: list[int] = []
    for _ in range(2):
        with pytest.raises(Preempted):
            _run(tiny_pipe, records, out, _settings(1), 3, log)
    assert len(log) == 6
    manifest_parts = list((out / ".manifest_parts").glob("*.json"))
    assert len(manifest_parts) == 1
    recorded = json.loads(manifest_parts[0].read_text())["images"]
    assert sorted(e["seed"] for e in recorded) == sorted(log)
    _run(tiny_pipe, records, out, _settings(1), None, log)
    assert sorted(log) == list(range(8))


def test_live_writers_temporaries_are_kept(tiny_pipe, records, tmp_path):
    import os

    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    mine = out / "images" / f".9_9.png.tmp{os.getppid()}"  # a live process (pytest's parent)
    mine.write_bytes(b"in progress")
    _run(tiny_pipe, records[:1], out, GenerationSettings(num_images_per_eeg=1, num_inference_steps=1, refine=False), None, [])
    assert mine.is_file()


@pytest.mark.parametrize("bad", ["../outside.png", "/etc/hostname", "images/../../outside.png"])
@pytest.mark.parametrize("key", ["file", "stage1_file"])
def test_resume_refuses_manifest_paths_outside_the_folder(uninterrupted, tiny_pipeline_dir, records, tmp_path, capsys, bad, key):
    out = tmp_path / "out"
    shutil.copytree(uninterrupted[0], out)
    (tmp_path / "outside.png").write_bytes((out / "images" / "0_0.png").read_bytes())
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["images"][0][key] = bad
    (out / "manifest.json").write_text(json.dumps(manifest))
    before = _tree(out)
    np.save(tmp_path / "eeg.npy", np.stack([r.eeg for r in records]))
    code = main(["generate", "--model", str(tiny_pipeline_dir), "--eeg", str(tmp_path / "eeg.npy"), "--output", str(out),
                 "--num-images-per-eeg", "2", "--steps", "2", "--refine-steps", "2", "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert _one_error_line(err)
    assert f"{out / 'manifest.json'}: images[0].{key} is {bad!r}" in err
    assert _tree(out) == before  # nothing written, nothing deleted


@pytest.mark.parametrize("field,bad", [("images", "../outside.png"), ("images", "/tmp/x.png"), ("eegs", "../gt.png")])
def test_evaluate_refuses_manifest_paths_outside_the_folder(uninterrupted, tmp_path, capsys, field, bad):
    out = tmp_path / "out"
    shutil.copytree(uninterrupted[0], out)
    manifest = json.loads((out / "manifest.json").read_text())
    key = "file" if field == "images" else "ground_truth"
    manifest[field][0][key] = bad
    (out / "manifest.json").write_text(json.dumps(manifest))
    code = main(["evaluate", "--generated", str(out), "--output", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert code == 2
    assert _one_error_line(err)
    assert f"{out / 'manifest.json'}: {field}[0].{key} is {bad!r}" in err


def test_output_that_is_a_file(tiny_pipeline_dir, tmp_path, capsys):
    np.save(tmp_path / "eeg.npy", np.zeros((1, 128, 440), dtype=np.float32))
    target = tmp_path / "out.png"
    target.write_bytes(b"keep me")
    code = main(["generate", "--model", str(tiny_pipeline_dir), "--eeg", str(tmp_path / "eeg.npy"), "--output", str(target), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and _one_error_line(err)
    assert f"--output {target} is an existing file" in err
    assert target.read_bytes() == b"keep me"

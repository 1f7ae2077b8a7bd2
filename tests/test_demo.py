"""``brainvis demo --quick``: every part of the report folder, the saved pipeline regenerates the
same images under the same seed, the cards parse / carry the run's metrics / render, and the
report page loads in a real headless Chromium (skipped, saying why, without Chromium)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re

import numpy as np
import pytest
import torch
from huggingface_hub import DatasetCard, ModelCard
from PIL import Image

from brainvis_hf.apps.demo import DEMO_STAGES, ColourCaptioner, run_demo
from brainvis_hf.apps.demo_report import check_report_in_browser, find_chromium

FIGURES = ("eeg_traces.png", "training_curves.png", "confusion_matrix.png", "contact_sheet.png")


@contextlib.contextmanager
def _console_to(buffer):
    """Everything a run prints, as the console would show it: stdout, stderr and the libraries'
    logging handlers (which hold the stream they were created with) all go to ``buffer``."""
    handlers = [h for name in ("transformers", "datasets", "diffusers", "huggingface_hub")
                for h in logging.getLogger(name).handlers if isinstance(h, logging.StreamHandler)]
    previous = [h.stream for h in handlers]
    for handler in handlers:
        handler.stream = buffer
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            yield
    finally:
        for handler, stream in zip(handlers, previous):
            handler.stream = stream


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One quick demo run (on a CPU it uses one torch thread unless told otherwise), its console captured."""
    threads = torch.get_num_threads()
    console = io.StringIO()
    with _console_to(console):
        result = run_demo(tmp_path_factory.mktemp("demo") / "out", seed=3, quick=True)
    result.console = console.getvalue()
    result.log = result.console.splitlines()
    result.threads_before_after = (threads, torch.get_num_threads())
    return result


def test_console_is_one_line_per_phase(demo):
    """No Trainer log dicts, no LOAD REPORT tables, no library progress bars: <= 60 lines in all;
    the libraries' output is kept in logs/demo.log and the runs' trainer_state.json."""
    console = demo.console
    assert len(console.splitlines()) <= 60, console
    assert "LOAD REPORT" not in console and "'loss'" not in console and "'eval_loss'" not in console
    assert "Loading weights" not in console and "Writing model shards" not in console
    assert len(demo.log) == 1 + 8 + 1  # header, one line per phase, where the report is
    for line in demo.log[1:-1]:
        assert re.match(r"\[\d/8\] [A-Za-z ]+ \d+\.\d s", line), line
    library_log = (demo.output_dir / "logs" / "demo.log").read_text(encoding="utf-8")
    assert "'loss'" in library_log  # Trainer log dicts went to the file
    assert [line for line in library_log.splitlines() if "LOAD REPORT" in line and "runs" in line] == []
    state = json.loads((demo.output_dir / "demo_state.json").read_text(encoding="utf-8"))
    assert list(state["finished"]) == [
        "synthesise", "prepare", "CLIP targets", *(f"train/{s}" for s in DEMO_STAGES), "train", "assemble",
        "generate", "evaluate", "report",
    ]


def test_every_part_of_the_report_folder_exists(demo):
    out = demo.output_dir
    assert demo.report_path == out / "report.html" and demo.report_path.is_file()
    for name in FIGURES:
        with Image.open(out / "figures" / name) as image:
            assert image.format == "PNG" and min(image.size) > 50, name
    assert (out / "pipeline" / "model_index.json").is_file() and (out / "pipeline" / "README.md").is_file()
    assert (out / "generated" / "manifest.json").is_file() and (out / "generated" / "contact_sheet.png").is_file()
    assert (out / "evaluation" / "metrics.json").is_file()
    assert (out / "data" / "prepared" / "README.md").is_file() and (out / "data" / "prepared" / "clip_targets").is_dir()
    for stage in DEMO_STAGES:
        run = out / "runs" / stage
        for name in ("config.json", "model.safetensors", "metrics.json", "trainer_state.json", "README.md",
                     "training_curves.png"):
            assert (run / name).is_file(), f"{stage}/{name}"
        assert list(run.glob("runs/**/events.out.tfevents.*")), f"{stage}: no TensorBoard logs"
    info = json.loads((out / "demo.json").read_text())
    assert info["seed"] == 3 and info["quick"] is True
    assert set(info["timings_s"]) == {"synthesise", "prepare", "CLIP targets", "train", "assemble", "generate",
                                      "evaluate", "report", "total"}
    # the run's thread setting is undone
    assert demo.threads_before_after[0] == demo.threads_before_after[1]
    # progress: one line per phase, in order
    phases = [line for line in demo.log if re.match(r"\[\d/8\] ", line)]
    assert [p.split("]")[0] for p in phases] == [f"[{i}/8" for i in range(1, 9)]


def test_report_page_content(demo):
    page = demo.report_path.read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) >= 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    for title in ("EEG traces", "Training curves", "Confusion matrix", "Generated images (contact sheet)", "Metrics"):
        assert f"<h2>{title}</h2>" in page, title
    # what the diffusion part is, and how to get photographs
    assert "trained from scratch on the demo" in page and "synthetic class images" in page and "brainvis demo --sd-model REPO" in page
    assert "<h2>Generation accuracy: what the EEG contributes</h2>" in page
    # the alignment loss the demo trained with (not the paper's) is written down, and was used
    align_config = json.loads((demo.run_dirs["align"].parent / "align_config.json").read_text())
    assert align_config == {"alignment_classification_loss_weight": 1.0, "alignment_centred_loss_weight": 2.0}
    assert json.loads((demo.run_dirs["align"] / "config.json").read_text())["alignment_centred_loss_weight"] == 2.0
    assert "batch-centred cosine term (weight 2," in page
    for title in ("Control: images from the oracle class name", "Control: images from shuffled EEG"):
        assert f"<h2>{title}</h2>" in page, title
    # a stage below 0.8 x its linear baseline is named under the stage table, with the reason for freq
    stages = json.loads((demo.output_dir / "demo.json").read_text())["stage_results"]
    below = [name for name, r in stages.items() if r.get("linear_baseline_test_accuracy") is not None
             and r.get("test_accuracy") is not None and r["test_accuracy"] < 0.8 * r["linear_baseline_test_accuracy"]]
    assert (f"Below 0.8 x its baseline here: {', '.join(below)}." in page) == bool(below)
    assert ("The frequency branch alone reads only the amplitude spectrum" in page) == ("freq" in below)
    # links to the saved pipeline and its model card, which exist; nothing loaded from outside
    from brainvis_hf.apps.demo_report import page_references

    assert '<a href="pipeline/">' in page and '<a href="pipeline/README.md">' in page
    assert page_references(demo.report_path) == ([], ["pipeline/", "pipeline/README.md"], [])
    # the metrics table shows the run's numbers
    for key, value in demo.metrics.items():
        if isinstance(value, float):
            assert f'<td class="num">{value:.4g}</td>' in page, key


def test_eeg_metric_matches_an_independent_computation(demo):
    """The report's EEG top-1 is the saved pipeline's classifier accuracy on the whole test split."""
    from datasets import load_dataset

    from brainvis_hf.pipelines import BrainVisPipeline

    pipe = BrainVisPipeline.from_pretrained(demo.pipeline_dir)
    test = load_dataset(str(demo.data_dir), split="test").with_format("numpy")
    with torch.no_grad():
        logits = pipe.eeg_encoder(eeg_values=torch.from_numpy(np.asarray(test["eeg"], dtype=np.float32))).logits
    accuracy = float((logits.argmax(-1).numpy() == np.asarray(test["label"])).mean())
    assert demo.metrics["eeg_top1_accuracy"] == pytest.approx(accuracy, abs=1e-12)


def test_saved_pipeline_regenerates_the_same_images(demo, tmp_path):
    from brainvis_hf.pipelines import BrainVisPipeline
    from brainvis_hf.apps.generate_folder import GenerationSettings, load_eeg_records

    manifest = json.loads((demo.generated_dir / "manifest.json").read_text())
    info = json.loads((demo.output_dir / "demo.json").read_text())
    pipe = BrainVisPipeline.from_pretrained(demo.pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    records = load_eeg_records(demo.data_dir, split="test", indices=info["test_indices"][:2])
    generation = manifest["generation"]
    settings = GenerationSettings(**{k: v for k, v in generation.items() if k in GenerationSettings.__dataclass_fields__})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for record in records:
            seeds = [settings.image_seed(record, k) for k in range(settings.num_images_per_eeg)]
            out = pipe(
                record.eeg[None],
                num_images_per_eeg=settings.num_images_per_eeg,
                num_inference_steps=settings.num_inference_steps,
                refine=settings.refine,
                refine_strength=settings.refine_strength,
                refine_guidance_scale=settings.refine_guidance_scale,
                refine_num_inference_steps=settings.refine_num_inference_steps,
                generator=pipe.generators_from_seeds(seeds),
                output_type="np",
            )
            for k, image in enumerate(out.images):
                entry = next(e for e in manifest["images"] if e["eeg_id"] == record.eeg_id and e["sample"] == k)
                assert entry["seed"] == seeds[k]
                saved = np.asarray(Image.open(demo.generated_dir / entry["file"]).convert("RGB"), dtype=np.int16)
                again = np.asarray((np.clip(image, 0, 1) * 255).round(), dtype=np.int16)
                assert saved.shape == again.shape
                assert np.abs(saved - again).max() <= 1, f"{entry['file']} differs after reloading the pipeline"
    finally:
        torch.set_num_threads(threads)


def test_documented_generate_command_regenerates_the_same_images(demo, tmp_path):
    """The `brainvis generate` command the report prints gives byte-identical pixels."""
    from brainvis_hf.cli import main

    command = json.loads((demo.output_dir / "demo.json").read_text())["regenerate_command"]
    assert command[-2] == "--output"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*command[:-1], str(tmp_path / "again")]) == 0
    finally:
        torch.set_num_threads(threads)
    original = json.loads((demo.generated_dir / "manifest.json").read_text())
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert [(e["eeg_id"], e["sample"], e["seed"]) for e in again["images"]] == [
        (e["eeg_id"], e["sample"], e["seed"]) for e in original["images"]
    ]
    for entry in original["images"]:
        first = np.asarray(Image.open(demo.generated_dir / entry["file"]), dtype=np.int16)
        second = np.asarray(Image.open(tmp_path / "again" / entry["file"]), dtype=np.int16)
        assert np.abs(first - second).max() <= 1, entry["file"]


def test_pipeline_card_has_the_run_metrics_and_renders(demo):
    from brainvis_hf.hub_pipeline import render_card_html

    card = ModelCard.load(demo.pipeline_dir / "README.md")
    data = card.data
    assert data.library_name == "diffusers" and data.pipeline_tag == "text-to-image"
    assert {"eeg", "bci", "brain-decoding", "diffusers"} <= set(data.tags)
    assert "random-weights" not in data.tags  # the demo's diffusion model is trained
    results = {r.metric_type: r.metric_value for r in data.eval_results}
    expected = {k: v for k, v in demo.metrics.items() if isinstance(v, float)}
    assert results == pytest.approx(expected, abs=1e-6)  # the card rounds to 6 decimals
    text = card.text
    assert "## Limitations and ethics" in text and "not mind reading" in text and "## Citation" in text
    # hyper-parameters come from the runs: the align stage's learning rate as in its metrics.json
    align = json.loads((demo.run_dirs["align"] / "metrics.json").read_text())
    assert f"| align | {align['hyperparameters']['learning_rate']:.4g} |" in text
    html = render_card_html(card)
    assert "<table>" in html and "<h2>Evaluation</h2>" in html


def test_stage_and_dataset_cards_parse_and_render(demo):
    from brainvis_hf.hub_pipeline import render_card_html

    for stage in DEMO_STAGES:
        card = ModelCard.load(demo.run_dirs[stage] / "README.md")
        metrics = json.loads((demo.run_dirs[stage] / "metrics.json").read_text())
        results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
        for key in ("loss", "accuracy"):
            if key in metrics["evaluation"]["test"]:
                assert results[("test", key)] == pytest.approx(metrics["evaluation"]["test"][key], rel=1e-5), stage
        assert {"eeg", "bci", "brain-decoding"} <= set(card.data.tags)
        assert "<h2>" in render_card_html(card)
    dataset_card = DatasetCard.load(demo.data_dir / "README.md")
    assert dataset_card.data.to_dict()["configs"]
    assert "<table>" in render_card_html(dataset_card)


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (Debian: apt-get install -y chromium)")
def test_report_loads_in_chromium(demo, tmp_path):
    """Loads in headless Chromium with every image decoded; its full-page screenshot shows every
    section, the GA table and the two control contact sheets included (each section's band of the
    screenshot is not blank, and the picture sections hold many colours)."""
    verdict = check_report_in_browser(demo.output_dir, screenshot=tmp_path / "report.png")
    assert verdict["errors"] == [] and verdict["external"] == []
    assert len(verdict["images"]) == verdict["num_img_tags"] >= 6
    assert all(image["naturalWidth"] > 0 and image["naturalHeight"] > 0 for image in verdict["images"])
    assert verdict["ok"] is True
    sections = {s["title"]: s for s in verdict["sections"]}
    required = {"Metrics": False, "Generation accuracy: what the EEG contributes": False,
                "Generated images (contact sheet)": True, "Generation accuracy per class": True,
                "Control: images from the oracle class name": True, "Control: images from shuffled EEG": True}
    with Image.open(verdict["screenshot"]) as shot:
        page = np.asarray(shot.convert("RGB"))
    assert page.shape[0] >= verdict["pageHeight"] - 2 and page.shape[1] >= 1000
    for title, is_picture in required.items():
        band = page[sections[title]["top"] : sections[title]["bottom"]]
        assert band.shape[0] > 40, title
        ink = (band < 200).any(axis=2).mean()  # share of pixels that are not white / light grey
        assert ink > 0.005, f"{title}: the screenshot's band is blank"
        if is_picture:
            colours = len(np.unique(band.reshape(-1, 3), axis=0))
            assert colours > 50, f"{title}: {colours} colours in its band; the figure did not render"


def test_cli_refuses_to_overwrite_an_earlier_run(demo, capsys):
    from brainvis_hf.cli import main

    assert main(["demo", "--output", str(demo.output_dir), "--quick"]) == 2
    assert "already holds a demo run" in capsys.readouterr().err
    assert demo.report_path.is_file()  # nothing was deleted


def test_cli_refuses_a_foreign_folder(tmp_path, capsys):
    from brainvis_hf.cli import main

    (tmp_path / "thesis.tex").write_text("precious")
    assert main(["demo", "--output", str(tmp_path), "--quick", "--overwrite"]) == 2
    assert "is not empty and is not a demo folder" in capsys.readouterr().err
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_colour_captioner_describes_images():
    captioner = ColourCaptioner()
    stripes = np.zeros((32, 32, 3), dtype=np.uint8)
    stripes[:, ::4] = (40, 80, 200)
    stripes[:, 1::4] = (40, 80, 200)
    stripes[:, 2::4] = (240, 240, 240)
    stripes[:, 3::4] = (240, 240, 240)
    red = np.full((32, 32, 3), (200, 40, 40), dtype=np.uint8)
    captions = captioner([Image.fromarray(stripes), Image.fromarray(red)])
    assert captions[0] == "a photo of white and blue vertical stripes"
    assert captions[1].startswith("a photo of red ")


def test_sd_model_option_uses_the_given_stable_diffusion_weights(tmp_path):
    """`--sd-model FOLDER`: the pipeline's diffusion parts and the CLIP targets' text encoder come
    from that Stable Diffusion folder (here a tiny one written in the test, other seed)."""
    from dataclasses import replace

    from safetensors.torch import load_file

    from brainvis_hf.apps.demo import QUICK_SETTINGS
    from brainvis_hf.pipelines.tiny import save_tiny_stable_diffusion

    sd_dir = save_tiny_stable_diffusion(tmp_path / "sd", seed=7)
    settings = replace(
        QUICK_SETTINGS,
        num_images_per_class=3,
        training_overrides={s: {"max_steps": 2, "eval_strategy": "no", "save_strategy": "no", "logging_steps": 1,
                                "load_best_model_at_end": False} for s in DEMO_STAGES},
        num_test_eegs=2, num_images_per_eeg=1, num_inference_steps=2, refine_num_inference_steps=2, n_way=5,
        num_trials=5,
    )
    result = run_demo(tmp_path / "out", seed=1, settings=settings, sd_model=str(sd_dir), log=lambda line: None)
    saved = load_file(str(result.pipeline_dir / "unet" / "diffusion_pytorch_model.safetensors"))
    given = load_file(str(sd_dir / "unet" / "diffusion_pytorch_model.safetensors"))
    assert saved.keys() == given.keys() and all(torch.equal(saved[k], given[k]) for k in given)
    index = json.loads((result.data_dir / "clip_targets" / "index.json").read_text())
    assert index["clip_model"].startswith(str(sd_dir))  # its text encoder made the CLIP targets
    page = result.report_path.read_text(encoding="utf-8")
    assert f"Diffusion weights: {sd_dir}" in page and "synthetic class images" not in page
    card = ModelCard.load(result.pipeline_dir / "README.md")
    assert "random-weights" not in card.data.tags


def test_ctrl_c_then_resume_redoes_nothing_finished_and_equals_an_uninterrupted_run(demo, tmp_path, monkeypatch, capsys):
    """Ctrl-C inside training (third stage): one line, exit 130, the two finished stages recorded and
    not the phase; --resume keeps the finished stages' files and ends with the fixture's results
    (same seed and settings, no interruption); resuming with other settings is refused."""
    import brainvis_hf.training as training
    from brainvis_hf.cli import main

    out = tmp_path / "out"
    real_train_stage = training.train_stage

    def interrupted_train_stage(stage, *args, **kwargs):
        if stage == "freq":
            raise KeyboardInterrupt
        return real_train_stage(stage, *args, **kwargs)

    monkeypatch.setattr(training, "train_stage", interrupted_train_stage)
    assert main(["demo", "--output", str(out), "--quick", "--seed", "3"]) == 130
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (f"brainvis demo: interrupted during train; `brainvis demo --output {out} --resume` "
                       "continues after CLIP targets")
    state = json.loads((out / "demo_state.json").read_text(encoding="utf-8"))
    assert list(state["finished"]) == ["synthesise", "prepare", "CLIP targets", "train/time-pretrain",
                                       "train/time-finetune"]
    kept = {path: path.stat().st_mtime_ns for path in
            [out / "runs" / "time-pretrain" / "model.safetensors", out / "runs" / "time-finetune" / "model.safetensors",
             out / "data" / "prepared" / "clip_targets" / "index.json"]}

    monkeypatch.setattr(training, "train_stage", real_train_stage)
    assert main(["demo", "--output", str(out), "--quick", "--seed", "4", "--resume"]) == 2
    assert "was started with other settings (seed 3 -> 4)" in capsys.readouterr().err

    assert main(["demo", "--output", str(out), "--quick", "--seed", "3", "--resume"]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) <= 60 and "LOAD REPORT" not in captured.err
    assert [line.split(" done earlier")[0] for line in lines if "done earlier" in line] == [
        "[1/8] synthesise", "[2/8] prepare", "[3/8] CLIP targets"]
    assert {path: path.stat().st_mtime_ns for path in kept} == kept  # not redone
    assert captured.out.strip() == str(out / "report.html")

    # the same result as the uninterrupted run of the fixture (same seed and settings)
    assert json.loads((out / "demo.json").read_text())["metrics"] == pytest.approx(demo.metrics, nan_ok=True)
    for stage in DEMO_STAGES:
        assert (out / "runs" / stage / "model.safetensors").read_bytes() == (
            demo.run_dirs[stage] / "model.safetensors").read_bytes(), stage
    manifest = json.loads((demo.generated_dir / "manifest.json").read_text())
    for entry in manifest["images"]:
        first = np.asarray(Image.open(demo.generated_dir / entry["file"]), dtype=np.int16)
        second = np.asarray(Image.open(out / "generated" / entry["file"]), dtype=np.int16)
        assert np.array_equal(first, second), entry["file"]

    # a finished run resumes to the same result without redoing anything
    result = run_demo(out, seed=3, quick=True, resume=True, log=lambda line: None)
    assert result.metrics == json.loads((out / "demo.json").read_text())["metrics"]


def test_resume_refuses_a_run_without_state_and_conflicting_flags(tmp_path):
    (tmp_path / "report.html").write_text("<html></html>")
    with pytest.raises(ValueError, match="holds a demo run without demo_state.json"):
        run_demo(tmp_path, quick=True, resume=True, log=lambda line: None)
    with pytest.raises(ValueError, match="exclude each other"):
        run_demo(tmp_path, quick=True, resume=True, overwrite=True, log=lambda line: None)
    assert (tmp_path / "report.html").read_text() == "<html></html>"


def test_sigint_prints_one_line_and_exits_130(tmp_path):
    """A real Ctrl-C (SIGINT) to `brainvis demo`: exit status 130, one line saying how to resume,
    no traceback; the phases finished before it are recorded, the interrupted one is not."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "brainvis"
    if not script.is_file():
        pytest.skip(f"no brainvis console script next to {sys.executable}")
    out = tmp_path / "out"
    # a test run started in the background by a non-interactive shell (nohup, `cmd &`) inherits
    # SIGINT ignored, and so would the demo: give it the disposition of a terminal's foreground job
    process = subprocess.Popen([str(script), "demo", "--quick", "--output", str(out)], stderr=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    try:
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            # during training (torch). A Ctrl-C during the CLIP targets can land in a garbage
            # collector's weakref callback, where Python drops it: the demo then stops before its
            # next phase (test_a_ctrl_c_swallowed_by_a_finaliser_still_stops_the_run)
            if line.startswith("[3/8] CLIP targets"):
                process.send_signal(signal.SIGINT)
                break
        rest_err = process.stderr.read()
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    lines += rest_err.splitlines()
    assert process.returncode == 130, "\n".join(lines)
    assert "Traceback" not in rest_err
    # the phase printed last is recorded (recorded first, printed second); what follows is not
    assert re.fullmatch(r"brainvis demo: interrupted (during train|between phases); `brainvis demo "
                        rf"--output {re.escape(str(out))} --resume` continues after CLIP targets", lines[-1]), lines[-1]
    state = json.loads((out / "demo_state.json").read_text(encoding="utf-8"))
    finished = list(state["finished"])  # and training stages finished before the signal, if any
    assert finished[:3] == ["synthesise", "prepare", "CLIP targets"]
    assert all(name.startswith("train/") for name in finished[3:]), finished


def test_a_ctrl_c_swallowed_by_a_finaliser_still_stops_the_run(tmp_path, monkeypatch, request):
    """A SIGINT whose KeyboardInterrupt is raised inside a finaliser (as measured in the CLIP-targets
    phase: a weakref callback of the garbage collector) is "ignored" by Python; the demo still stops
    before its next phase, saying where to resume, and the SIGINT handler is restored."""
    import os
    import signal
    import sys
    import time

    from brainvis_hf.apps.demo import DemoInterrupted

    swallowed = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: swallowed.append(info.exc_type))
    # Python's own handler, as in a terminal (a background test run inherits SIGINT ignored, and
    # the demo rightly leaves an ignored SIGINT alone)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, inherited))

    class Finaliser:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(2)  # the handler runs here: its KeyboardInterrupt cannot leave __del__

    def on_phase_done(phase):
        if phase == "prepare":
            Finaliser()  # garbage at once

    with pytest.raises(DemoInterrupted) as err:
        run_demo(tmp_path / "out", quick=True, log=lambda line: None, on_phase_done=on_phase_done)
    assert swallowed == [KeyboardInterrupt]  # Python dropped the first one
    assert str(err.value).endswith("--resume` continues after prepare")
    state = json.loads((tmp_path / "out" / "demo_state.json").read_text(encoding="utf-8"))
    assert list(state["finished"]) == ["synthesise", "prepare"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_library_output_goes_to_the_log_and_comes_back(tmp_path):
    """The quiet mode's redirection: prints, warnings-as-logging and progress bars of the libraries
    land in the log stream; afterwards the handlers write where they wrote before."""
    from transformers.utils import logging as hf_logging
    from tqdm.auto import tqdm

    from brainvis_hf.apps.demo import _library_output_to

    logger = hf_logging.get_logger("transformers.modeling_utils")
    console, log = io.StringIO(), io.StringIO()
    with _console_to(console):
        with _library_output_to(log):
            print("{'loss': 1.0}")
            logger.warning("a LOAD REPORT table")
            for _ in tqdm(range(3), desc="Loading weights"):
                pass
        logger.warning("after")
    assert "{'loss': 1.0}" in log.getvalue() and "a LOAD REPORT table" in log.getvalue()
    assert "Loading weights" in log.getvalue()
    assert console.getvalue().strip().endswith("after") and "LOAD REPORT" not in console.getvalue()


def test_stage_results_carry_the_linear_baseline_when_the_run_has_one():
    from brainvis_hf.apps.demo import _stage_result

    metrics = {"global_step": 6, "best_metric": 0.5, "evaluation": {"test": {"accuracy": 0.4, "runtime": 1.0}}}
    assert _stage_result(metrics) == {"global_step": 6, "best_metric": 0.5, "test_accuracy": 0.4}
    metrics["linear_baseline"] = {"validation": {"accuracy": 0.1}, "test": {"accuracy": 0.2}, "model": "logistic"}
    result = _stage_result(metrics)
    assert result["linear_baseline_validation_accuracy"] == 0.1 and result["linear_baseline_test_accuracy"] == 0.2


def test_metrics_json_has_the_generation_accuracy_rows(demo):
    """OUT/metrics.json: GA of refined and stage-1 images from EEG, the oracle class name and shuffled
    EEG, and the EEG classifier's accuracy, each with sd / standard error over samples; the values
    agree with an independent count from the manifests and the shipped classifier."""
    from brainvis_hf.evaluation.image_classifier import classify_images, load_image_classifier
    from brainvis_hf.training.demo_weights import demo_image_classifier_dir

    metrics = json.loads((demo.output_dir / "metrics.json").read_text(encoding="utf-8"))
    ga = metrics["generation_accuracy"]
    assert ga["classifier"] == str(demo_image_classifier_dir()) and ga["chance"] == pytest.approx(1 / ga["n_way"])
    rows = ga["rows"]
    assert set(rows) == {"eeg_refined", "eeg_stage1", "oracle_class_name_refined", "oracle_class_name_stage1",
                         "shuffled_eeg_refined", "shuffled_eeg_stage1", "eeg_classifier"}
    for key, row in rows.items():
        assert row["se"] == pytest.approx(row["sd"] / np.sqrt(row["n"])), key
        assert 0.0 <= row["value"] <= 1.0
    # the EEG row is evaluate_generated's GA; the classifier row is the report's EEG top-1
    assert rows["eeg_refined"]["value"] == pytest.approx(demo.metrics[f"ga_{ga['n_way']}way_top1"])
    assert rows["eeg_classifier"]["value"] == pytest.approx(demo.metrics["eeg_top1_accuracy"])
    assert rows["eeg_classifier"]["n"] == json.loads((demo.output_dir / "demo.json").read_text())["data_sizes"]["test"]
    # with n_way = the classifier's classes, GA is plain top-1: recount the oracle's stage-1 hits
    model, processor = load_image_classifier(str(demo_image_classifier_dir()), "cpu")
    folder = demo.output_dir / "generated_controls" / "oracle_class_name"
    manifest = json.loads((folder / "manifest.json").read_text())
    truth = {e["eeg_id"]: e["true_label"] for e in manifest["eegs"]}
    predicted = classify_images([folder / e["stage1_file"] for e in manifest["images"]], model,
                                image_processor=processor).argmax(axis=1)
    if ga["n_way"] == model.config.num_labels:
        hits = [p == truth[e["eeg_id"]] for p, e in zip(predicted, manifest["images"])]
        assert rows["oracle_class_name_stage1"]["value"] == pytest.approx(np.mean(hits))
    # the shuffled control used other recordings' EEG, from the whole test split
    pairs = json.loads((demo.output_dir / "generated_controls" / "shuffled_eeg_sources.json").read_text())["pairs"]
    assert [p["eeg_id"] for p in pairs] == [e["eeg_id"] for e in manifest["eegs"]]
    assert sum(p["eeg_from"] != p["eeg_id"] for p in pairs) >= len(pairs) - 1
    assert set(metrics["checks"]) >= {"ga_from_eeg_at_least_3x_chance", "ga_from_shuffled_eeg_within_2se_of_chance"}



def test_train_diffusion_trains_and_uses_its_own_components(tmp_path):
    """`--train-diffusion`: the diffusion components and the image classifier are trained on the run's
    data (a few steps here) and used instead of the shipped ones: the saved pipeline's UNet is the run's,
    and GA is scored with the run's classifier."""
    from dataclasses import replace

    from safetensors.torch import load_file

    from brainvis_hf.apps.demo import QUICK_SETTINGS

    settings = replace(
        QUICK_SETTINGS, num_images_per_class=3,
        training_overrides={s: {"max_steps": 2, "eval_strategy": "no", "save_strategy": "no", "logging_steps": 1,
                                "load_best_model_at_end": False} for s in DEMO_STAGES},
        num_test_eegs=2, num_images_per_eeg=1, num_inference_steps=2, refine_num_inference_steps=2, n_way=5,
        num_trials=5,
    )
    lines = []
    result = run_demo(tmp_path / "out", seed=1, settings=settings, train_diffusion=True, log=lines.append)
    assert sum(bool(re.match(r"\[\d/9\] ", line)) for line in lines) == 9 and any("train diffusion" in l for l in lines)
    run = result.output_dir / "runs" / "diffusion"
    saved = load_file(str(result.pipeline_dir / "unet" / "diffusion_pytorch_model.safetensors"))
    trained = load_file(str(run / "unet" / "diffusion_pytorch_model.safetensors"))
    assert saved.keys() == trained.keys() and all(torch.equal(saved[k], trained[k]) for k in trained)
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    assert metrics["generation_accuracy"]["classifier"] == str(result.output_dir / "runs" / "image_classifier")
    assert "--train-diffusion" in result.report_path.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="excludes sd_model"):
        run_demo(tmp_path / "other", quick=True, train_diffusion=True, sd_model="x", log=lambda line: None)


def test_cli_has_the_train_diffusion_flag(capsys):
    from brainvis_hf.cli import main

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "--train-diffusion" in capsys.readouterr().out

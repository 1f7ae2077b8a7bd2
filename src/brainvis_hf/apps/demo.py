"""``brainvis demo``: the whole BrainVis chain on synthetic data, offline, on a CPU, in minutes.

:func:`run_demo` runs these phases, printing one line per phase with its time (and, in a terminal,
a progress bar while training and generating; the libraries' own output goes to
``OUT/logs/demo.log`` unless ``verbose``). Finished phases are recorded in ``OUT/demo_state.json``,
so ``resume=True`` continues an interrupted run:

1. **synthesise** an EEG-ImageNet-format data set (``write_synthetic_eeg_imagenet``, with tiny
   class images) — the real file format, a learnable class-dependent signal;
2. **prepare** it (``load_eeg_imagenet`` -> ``prepare_dataset``: Parquet + dataset card);
   (``train_diffusion=True`` / ``--train-diffusion``: **train diffusion** — the small VAE + UNet
   and the image classifier are trained here instead of loaded from ``brainvis_hf/demo_weights``);
3. **CLIP targets**: the class-name text embedding of every image (``compute_clip_targets``) with
   the pipeline's own text encoder (the demo weights' tiny CLIP text model, or Stable Diffusion's
   with ``sd_model``, whose fine targets then come from :class:`ColourCaptioner`, a deterministic
   stand-in for BLIP-2 that describes an image's colours and stripes);
4. **train** every stage with the ``tiny`` preset (time-pretrain -> time-finetune -> freq ->
   timefreq -> align), each a ``brainvis train`` run folder;
5. **assemble** a ``BrainVisPipeline`` (alignment model + the demo's small diffusion model trained
   on the synthetic class images, or the ``sd_model`` weights) and save it with its model card;
6. **generate** images for test recordings (the ``brainvis generate`` folder format), and the two
   controls: stage 1 prompted with the oracle class name, and EEG shuffled across test trials;
7. **evaluate** them (``evaluate_generated``: GA, IS, FID, SSIM with the demo's image classifier
   and a tiny random feature extractor for FID; the GA rows of :func:`generation_accuracy_rows`)
   and the EEG classifier on the whole test split;
8. write the **report**: ``report.html`` (self-contained), figures as PNG, ``demo.json``,
   ``metrics.json``.

Output folder::

    OUT/report.html              the report (opens from disk; every image embedded)
    OUT/figures/*.png            its figures (EEG traces, training curves, confusion matrix, ...)
    OUT/demo.json                settings, timings and metrics of the run
    OUT/pipeline/                BrainVisPipeline.save_pretrained + README.md (model card)
    OUT/data/synthetic/          eeg_5_95_std.pth, block_splits_by_image_all.pth, images/
    OUT/data/prepared/           Parquet shards, dataset card, clip_targets/
    OUT/runs/<stage>/            one brainvis train run folder per stage (model card included)
    OUT/metrics.json             the GA rows (with standard errors) and the EEG classifier's accuracy
    OUT/generated/               images/, stage1/, ground_truth/, manifest.json, contact_sheet.png
    OUT/generated_controls/      oracle_class_name/, shuffled_eeg/ (same format), shuffled_eeg_sources.json
    OUT/evaluation/              metrics.json, metrics.md, confusion_matrix.png, per_class_ga.png,
                                 generation_accuracy.json
    OUT/eval_models/             the tiny random FID feature extractor used
    OUT/demo_state.json          settings and finished phases (``resume``)
    OUT/logs/demo.log            the libraries' console output (Trainer log dicts, loading reports)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .._io import finite_or_none

# Each phase imports its modules (torch, transformers, diffusers, the package's training and
# pipeline code) when it starts, inside `quiet()`: the console shows the phase line at once
# rather than after seconds of imports, and import-time library warnings stay out of it.

#: the training stages, in order, with what each starts from
DEMO_STAGES: tuple[str, ...] = ("time-pretrain", "time-finetune", "freq", "timefreq", "align")

#: sub-folders (and files) of the output folder that the demo writes; ``overwrite`` removes only these
DEMO_OUTPUTS: tuple[str, ...] = (
    "report.html", "figures", "demo.json", "metrics.json", "pipeline", "data", "runs", "generated",
    "generated_controls", "evaluation", "eval_models", "demo_state.json", "demo_state.json.tmp", "logs",
)

#: ``OUT/demo_state.json``: the settings and finished phases of a run (``--resume``)
STATE_FILE = "demo_state.json"

DIFFUSION_NOTE = (
    "The diffusion part of this pipeline is a small Stable Diffusion (VAE, 1 M-parameter UNet, the tiny "
    "CLIP text model of brainvis_hf.pipelines.tiny) trained from scratch on the demo's synthetic class images, "
    "conditioned on the CLIP text embeddings of their class words ({source}). It draws the demo's coloured "
    "stripe patterns, not photographs. Photographs need the Stable Diffusion v1.5 weights: run "
    "`brainvis demo --sd-model REPO` (e.g. stable-diffusion-v1-5/stable-diffusion-v1-5) where they can be "
    "downloaded."
)
GA_NOTE = (
    "Generation accuracy (GA) is measured with a small image classifier trained on the demo's synthetic training "
    "images ({source}); the true class of a generated image is that classifier's class for its ground-truth "
    "stimulus. Four rows separate what the EEG contributes from what the class prompt contributes: images from "
    "the test EEG; images from the oracle class name (stage 1 prompted with the true class words' text "
    "embedding, no EEG); images from EEG shuffled across test trials (a control that must sit near chance); and "
    "the EEG classifier's own accuracy (its prediction is the refinement prompt)."
)
SYNTHETIC_NOTE = (
    "The EEG is synthetic (brainvis_hf.data.synthetic: class-specific evoked bursts over 1/f background "
    "noise, in the exact EEG-ImageNet file format), so the accuracies measure the code path, not the method "
    "on real brain signals."
)


@dataclass
class DemoSettings:
    """Sizes of one demo run (see :data:`FULL_SETTINGS` and :data:`QUICK_SETTINGS`)."""

    num_images_per_class: int = 10
    num_subjects: int = 2
    difficulty: float = 0.3
    image_size: int = 32
    # training: TrainingArguments overrides per stage (on top of the `tiny` preset)
    training_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    # weight of the class cross-entropy in the alignment loss. The paper trains `align` on the CLIP
    # loss only (0), which lets the classifier head drift to chance on this small data; the
    # pipeline's refinement prompt is that head's prediction, so the demo keeps the CE (1).
    alignment_classification_loss_weight: float = 1.0
    # weight of the batch-centred cosine loss in the alignment loss (BrainVisConfig's
    # alignment_centred_loss_weight; 0 in the paper). The demo's class prompt embeddings share 96 %
    # of their energy; the paper's loss barely sees the class-specific rest, which stage 1 draws
    # (stage-1 GA from test EEG, 40-way: 0.35 with 0 after 30 epochs, 0.875 with 2 after 20; docs/demo.md).
    alignment_centred_loss_weight: float = 2.0
    # generation
    num_test_eegs: int = 40
    num_images_per_eeg: int = 2
    num_inference_steps: int = 50
    refine_num_inference_steps: int = 100
    refine_strength: float = 0.85
    refine_guidance_scale: float = 7.5
    generation_batch_size: int = 16
    height: int | None = None
    width: int | None = None
    # evaluation (n_way: at most the image classifier's classes; 40 for the demo's)
    n_way: int = 40
    num_trials: int = 50
    # the diffusion stage and the image classifier, with ``train_diffusion=True`` (--train-diffusion):
    # overrides of training.demo_weights' DEMO_DIFFUSION_TRAINING / DEMO_CLASSIFIER_TRAINING
    diffusion_training_overrides: dict[str, Any] = field(default_factory=dict)
    classifier_training_overrides: dict[str, Any] = field(default_factory=dict)


#: ``brainvis demo``: 40 classes x 10 images x 2 subjects = 800 recordings, half the tiny
#: preset's epochs, 20 test EEGs x 2 images with the paper's 50 + 100 x 0.85 diffusion steps.
#: The alignment stage trains longer at a constant learning rate, with the batch-centred cosine
#: loss: its prompt projector must learn the class-specific part of the prompt embedding (4 % of
#: its energy with the demo's text encoder), and that part is what stage 1 draws.
FULL_SETTINGS = DemoSettings(
    training_overrides={
        "time-pretrain": {"num_train_epochs": 4},
        "time-finetune": {"num_train_epochs": 4},
        "freq": {"num_train_epochs": 6},
        "timefreq": {"num_train_epochs": 4},
        "align": {"num_train_epochs": 20, "learning_rate": 3e-3, "lr_scheduler_type": "constant", "weight_decay": 0.0},
    },
    num_test_eegs=20,
)

#: ``brainvis demo --quick`` (tests): 160 recordings, a few optimizer steps per stage, 6 EEGs.
QUICK_SETTINGS = DemoSettings(
    num_images_per_class=4,
    num_subjects=1,
    difficulty=0.3,
    training_overrides={
        stage: {"max_steps": 6, "logging_steps": 2, "eval_steps": 3, "save_steps": 3, "eval_strategy": "steps",
                "save_strategy": "steps"}
        for stage in DEMO_STAGES
    },
    num_test_eegs=6,
    num_images_per_eeg=2,
    num_inference_steps=4,
    refine_num_inference_steps=4,
    n_way=10,
    num_trials=10,
    diffusion_training_overrides={"vae_steps": 4, "max_steps": 4, "batch_size": 16, "save_steps": 2, "use_ema": False},
    classifier_training_overrides={"max_steps": 4},
)

#: with real Stable Diffusion weights: fewer, larger images (a GPU is advisable).
SD_GENERATION = dict(num_test_eegs=8, num_images_per_eeg=2, generation_batch_size=4)


@dataclass
class DemoResult:
    """What :func:`run_demo` wrote and measured."""

    output_dir: Path
    report_path: Path
    pipeline_dir: Path
    generated_dir: Path
    data_dir: Path
    run_dirs: dict[str, Path]
    metrics: dict[str, Any]
    timings: dict[str, float]


# ---------------------------------------------------------------------------------------------
# small building blocks


_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (200, 40, 40), "orange": (235, 140, 30), "yellow": (230, 220, 50), "green": (50, 160, 60),
    "blue": (40, 80, 200), "purple": (130, 60, 170), "pink": (235, 130, 180), "brown": (120, 75, 40),
    "white": (240, 240, 240), "gray": (128, 128, 128), "black": (20, 20, 20),
}


class ColourCaptioner:
    """A deterministic stand-in for BLIP-2: describes an image's two main colours and stripes.

    ``captioner(list_of_PIL_images) -> list_of_captions`` such as ``"a photo of blue and white
    vertical stripes"``; the colours are the nearest named colours to the mean of the brighter
    and of the darker half of the pixels, the orientation compares the variation along rows and
    columns. It gives image-dependent fine targets without downloading a captioning model.
    """

    name = "brainvis-demo-colour-captioner"

    @staticmethod
    def _nearest(rgb: np.ndarray) -> str:
        names = list(_COLOURS)
        table = np.array([_COLOURS[n] for n in names], dtype=np.float64)
        return names[int(np.argmin(((table - rgb) ** 2).sum(axis=1)))]

    def caption(self, image) -> str:
        pixels = np.asarray(image.convert("RGB").resize((32, 32)), dtype=np.float64)
        flat = pixels.reshape(-1, 3)
        brightness = flat.mean(axis=1)
        median = np.median(brightness)
        bright, dark = flat[brightness >= median], flat[brightness < median]
        first = self._nearest(bright.mean(axis=0))
        second = self._nearest(dark.mean(axis=0)) if len(dark) else first
        gray = pixels.mean(axis=2)
        along_rows = np.abs(np.diff(gray, axis=1)).mean()
        along_cols = np.abs(np.diff(gray, axis=0)).mean()
        if 0.8 < along_rows / max(along_cols, 1e-9) < 1.25:
            orientation = "diagonal"
        else:
            orientation = "vertical" if along_rows > along_cols else "horizontal"
        colours = first if first == second else f"{first} and {second}"
        return f"a photo of {colours} {orientation} stripes"

    def __call__(self, images: Sequence[Any]) -> list[str]:
        return [self.caption(image) for image in images]


def build_tiny_image_classifier(save_dir: str | os.PathLike, *, num_labels: int = 1000, image_size: int = 32, seed: int = 0) -> Path:
    """Save a tiny random ImageNet-style ``ViTForImageClassification`` (+ image processor) to ``save_dir``.

    It stands in for the ImageNet classifier of the GA / IS metrics so that they run offline;
    its numbers are those of a random classifier.
    """
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(
        image_size=image_size, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=num_labels,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ViTForImageClassification(config).eval()
    model.save_pretrained(save_dir)
    ViTImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(save_dir)
    return Path(save_dir)


def build_tiny_feature_extractor(save_dir: str | os.PathLike, *, image_size: int = 32, seed: int = 1) -> Path:
    """Save a tiny random ``ViTModel`` (+ image processor) to ``save_dir``: FID features offline."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    config = ViTConfig(
        image_size=image_size, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ViTModel(config, add_pooling_layer=False).eval()
    model.save_pretrained(save_dir)
    ViTImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(save_dir)
    return Path(save_dir)


class _CtrlC:
    """Remembers a Ctrl-C, so that one whose ``KeyboardInterrupt`` was swallowed still stops the run.

    Python raises the ``KeyboardInterrupt`` of a SIGINT in whatever code runs at that moment. When
    that is a finaliser or a weakref callback -- garbage collection after the data libraries, as
    measured in the CLIP-targets phase: ``WeakKeyDictionary.__init__.<locals>.remove`` -- Python
    prints "Exception ignored in ..." (to the demo's library log) and goes on: the run finished as
    if Ctrl-C had not been pressed. While active (main thread only, replacing Python's default
    handler) the SIGINT handler also sets :attr:`pressed`, and :meth:`check`, called between
    phases, training stages and generation runs, raises the ``KeyboardInterrupt`` again.
    """

    def __init__(self) -> None:
        self.pressed = False
        self._previous: Any = None

    def _handle(self, signum, frame) -> None:
        self.pressed = True
        raise KeyboardInterrupt

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` when Ctrl-C was pressed (even if its first one was swallowed)."""
        if self.pressed:
            raise KeyboardInterrupt

    def __enter__(self) -> "_CtrlC":
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class _Progress:
    """One console line per phase (``[3/8] CLIP targets 2.5 s - ...``) with its duration.

    With ``verbose`` a line also announces each phase when it starts. ``check`` runs before each
    phase starts (:meth:`_CtrlC.check`)."""

    def __init__(self, phases: Sequence[str], log: Callable[[str], None], verbose: bool = False,
                 check: Callable[[], None] = lambda: None):
        self.phases = list(phases)
        self.log = log
        self.verbose = verbose
        self.check = check
        self.timings: dict[str, float] = {}
        self.current: str | None = None
        self._start = time.perf_counter()
        self._phase_start = self._start
        self._earlier = 0.0  # seconds of phases finished by an earlier (resumed) run

    def _tag(self, phase: str) -> str:
        return f"[{self.phases.index(phase) + 1}/{len(self.phases)}] {phase}"

    def start(self, phase: str, detail: str = "") -> None:
        self.check()
        self.current = phase
        self._phase_start = time.perf_counter()
        if self.verbose:
            self.log(f"{self._tag(phase)}: {detail} ..." if detail else f"{self._tag(phase)} ...")

    def stop(self, phase: str) -> float:
        """The phase's duration (recorded in ``timings``); the phase stays current until :meth:`done`."""
        seconds = time.perf_counter() - self._phase_start
        self.timings[phase] = round(seconds, 2)
        return seconds

    def done(self, phase: str, detail: str = "") -> None:
        """Print the phase's line: call it once the phase is recorded as finished."""
        self.current = None
        self.log(f"{self._tag(phase)} {self.timings[phase]:.1f} s{' - ' + detail if detail else ''}")

    def skipped(self, phase: str, record: dict[str, Any]) -> None:
        seconds = float(record.get("seconds", 0.0))
        self.timings[phase] = round(seconds, 2)
        self._earlier += seconds
        self.log(f"{self._tag(phase)} done earlier ({seconds:.1f} s), kept")

    @property
    def total(self) -> float:
        return time.perf_counter() - self._start + self._earlier


def _default_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _prepare_output_dir(output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"--output {output_dir} exists and is not a folder.")
    if not output_dir.exists():
        output_dir.mkdir(parents=True)
        return
    ours = [output_dir / name for name in DEMO_OUTPUTS if (output_dir / name).exists()]
    others = [p.name for p in output_dir.iterdir() if p.name not in DEMO_OUTPUTS]
    if ours and not overwrite:
        raise FileExistsError(
            f"--output {output_dir} already holds a demo run ({', '.join(sorted(p.name for p in ours))}); "
            "pass overwrite=True (--overwrite) to replace it, resume=True (--resume) to continue it, "
            "or choose another folder."
        )
    if others and not ours:
        raise FileExistsError(
            f"--output {output_dir} is not empty and is not a demo folder (it holds {', '.join(sorted(others)[:5])}); "
            "choose an empty or new folder."
        )
    for path in ours:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


# ---------------------------------------------------------------------------------------------
# console, resumption, interruption

#: the libraries whose logging handlers (and progress bars) go to ``logs/demo.log`` unless verbose
_LIBRARY_LOGGERS = ("transformers", "datasets", "diffusers", "huggingface_hub", "accelerate", "evaluate")


@contextlib.contextmanager
def _library_output_to(stream, *, stderr: bool = True):
    """Send the libraries' console output to ``stream``: prints (Trainer log dicts), progress bars,
    warnings and the handlers of their loggers. Everything is restored afterwards."""
    swapped = []
    for name in _LIBRARY_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                swapped.append((handler, _set_stream(handler, stream)))
    try:
        with contextlib.redirect_stdout(stream), (
            contextlib.redirect_stderr(stream) if stderr else contextlib.nullcontext()
        ):
            yield
    finally:
        for handler, previous in swapped:
            _set_stream(handler, previous)


def _set_stream(handler: logging.StreamHandler, stream):
    """``handler.setStream`` that tolerates a closed previous stream (it is not flushed then)."""
    handler.acquire()
    try:
        previous, handler.stream = handler.stream, stream
        with contextlib.suppress(ValueError, OSError, AttributeError):
            previous.flush()
    finally:
        handler.release()
    return previous


class DemoInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_demo`: says which phase was interrupted and how to continue.

    A ``KeyboardInterrupt``, so that callers (and ``brainvis``) treat it as one; the phase that was
    running is not marked finished, so ``resume=True`` redoes it from its start."""

    def __init__(self, output_dir: Path, phase: str | None, last_finished: str | None):
        self.output_dir, self.phase, self.last_finished = output_dir, phase, last_finished
        where = f"during {phase}" if phase else "between phases"
        after = f"after {last_finished}" if last_finished else "from the start"
        super().__init__(
            f"interrupted {where}; `brainvis demo --output {output_dir} --resume` continues {after}"
        )


class _RunState:
    """``OUT/demo_state.json``: the run's settings and its finished phases, rewritten atomically
    (write + rename, strict JSON) each time a phase finishes."""

    def __init__(self, path: Path, settings: dict[str, Any], finished: dict[str, dict[str, Any]] | None = None):
        self.path, self.settings, self.finished = path, settings, dict(finished or {})

    @classmethod
    def read(cls, path: Path) -> "_RunState":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(path, data["settings"], data["finished"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a readable demo state ({err}); start again with --overwrite") from None

    def done(self, name: str) -> bool:
        return name in self.finished

    def mark(self, name: str, seconds: float, detail: str = "", **outputs: Any) -> None:
        self.finished[name] = {"seconds": round(float(seconds), 2), "detail": detail, **outputs}
        self.save()

    def save(self) -> None:
        text = json.dumps({"format": 1, "settings": self.settings, "finished": self.finished}, indent=2,
                          allow_nan=False)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)


def _settings_differences(saved: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(saved) | set(wanted)):
        a, b = saved.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _settings_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {a!r} -> {b!r}")
    return out


def _open_state(output_dir: Path, fingerprint: dict[str, Any], *, resume: bool, overwrite: bool,
                log: Callable[[str], None]) -> _RunState:
    path = output_dir / STATE_FILE
    if resume:
        if overwrite:
            raise ValueError("resume=True (--resume) and overwrite=True (--overwrite) exclude each other.")
        if path.is_file():
            state = _RunState.read(path)
            differences = _settings_differences(state.settings, fingerprint)
            if differences:
                raise ValueError(
                    f"--resume: {output_dir} was started with other settings ({'; '.join(differences[:4])}); "
                    "resume with the same options, or start again with --overwrite."
                )
            return state
        if output_dir.is_dir() and any((output_dir / name).exists() for name in DEMO_OUTPUTS):
            raise ValueError(
                f"--resume: {output_dir} holds a demo run without {STATE_FILE} (an older or foreign run); "
                "start again with --overwrite."
            )
        log(f"nothing to resume in {output_dir}: starting a new run")
    _prepare_output_dir(output_dir, overwrite)
    state = _RunState(path, fingerprint)
    state.save()
    return state


def _remove(output_dir: Path, relative_paths: Sequence[str]) -> None:
    """Delete what an unfinished phase may have left, before it is redone."""
    for relative in relative_paths:
        path = output_dir / relative
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


#: what each phase writes (removed before the phase is redone after an interruption); generate
#: resumes image by image by itself, the train stages are tracked one by one
PHASE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "synthesise": ("data/synthetic",),
    "prepare": ("data/prepared", "data/.cache"),
    "train diffusion": ("runs/diffusion", "runs/image_classifier"),
    "CLIP targets": ("data/prepared/clip_targets",),
    "train": (),
    "assemble": ("pipeline",),
    "generate": (),
    "evaluate": ("evaluation", "eval_models"),
    "report": ("figures", "report.html", "demo.json", "metrics.json"),
}


# ---------------------------------------------------------------------------------------------
# the demo


PHASES = ("synthesise", "prepare", "CLIP targets", "train", "assemble", "generate", "evaluate", "report")
#: with ``train_diffusion=True``: the diffusion components and the image classifier are trained
#: on the prepared data (``OUT/runs/diffusion``, ``OUT/runs/image_classifier``) instead of loaded
PHASES_TRAIN_DIFFUSION = ("synthesise", "prepare", "train diffusion", *PHASES[2:])

#: the control generations of the evaluation (``OUT/generated_controls/<name>``)
CONTROLS: tuple[str, ...] = ("oracle_class_name", "shuffled_eeg")


def run_demo(
    output_dir: str | os.PathLike,
    *,
    seed: int = 0,
    quick: bool = False,
    sd_model: str | None = None,
    classifier: str | None = None,
    feature_extractor: str | None = None,
    settings: DemoSettings | None = None,
    device: str | None = None,
    num_threads: int | None = None,
    overwrite: bool = False,
    resume: bool = False,
    verbose: bool = False,
    train_diffusion: bool = False,
    log: Callable[[str], None] | None = None,
    on_phase_done: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the BrainVis demo end to end and write its report folder (see the module docstring).

    Args:
        output_dir: the report folder (created; an earlier demo run there is only replaced with
            ``overwrite=True``, or continued with ``resume=True``).
        seed: seeds the synthetic data, every training stage, the tiny components and generation;
            the same seed gives the same run.
        quick: a much smaller run (seconds per phase) for tests and a first look.
        sd_model: a Stable Diffusion v1.x folder or Hub repo id; its UNet, VAE, text encoder and
            scheduler replace the demo's small trained ones (the CLIP targets then use its text
            encoder, and the colour captioner gives their fine targets).
        classifier: an ``AutoModelForImageClassification`` (repo id or folder) for GA/IS instead
            of the demo's shipped image classifier (``training.demo_weights.demo_image_classifier_dir``).
        feature_extractor: FID features (as ``brainvis evaluate --feature-extractor``) instead of
            the tiny random one built in code.
        settings: explicit sizes (default: :data:`FULL_SETTINGS` or :data:`QUICK_SETTINGS`).
        device: where generation and evaluation run (default: CUDA when available).
        num_threads: CPU threads torch uses during the run (restored afterwards). Default: 1 on
            a CPU run unless ``OMP_NUM_THREADS`` is set — the demo's models are tiny, so a second
            thread buys little, and on a CPU shared with other work two threads per process
            oversubscribe the cores and run ~10x slower.
        overwrite: replace an earlier demo run in ``output_dir``.
        resume: continue the run in ``output_dir`` after its last finished phase (training: after
            its last finished stage), as recorded in ``demo_state.json``; refused when the run was
            started with other settings. Starts a new run when the folder holds none.
        verbose: also show the libraries' output (Trainer log dicts, progress bars, loading
            reports). By default it goes to ``OUT/logs/demo.log`` and the console gets one line per
            phase and a progress bar for training and generation.
        train_diffusion: train the diffusion components and the image classifier on the demo's
            data (``OUT/runs/diffusion``, ``OUT/runs/image_classifier``; 10-20 min on a CPU with
            the full settings) instead of loading the copies shipped in the package.
        log: receives the console lines (default: printed to stderr).
        on_phase_done: called with each phase's name once it is recorded as finished.

    Returns:
        :class:`DemoResult` with the paths written, the metrics and the time of each phase.

    Raises:
        DemoInterrupted: on Ctrl-C (a ``KeyboardInterrupt``); the phase that was running is not
            recorded as finished.
    """
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if num_threads is None and str(device) == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        num_threads = 1
    if num_threads is not None and num_threads < 1:
        raise ValueError(f"num_threads must be >= 1; got {num_threads}")
    previous_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    console = sys.stderr
    try:
        return _run_demo(
            Path(output_dir), seed=seed, quick=quick, sd_model=sd_model, classifier=classifier,
            feature_extractor=feature_extractor, settings=settings, device=device, overwrite=overwrite,
            resume=resume, verbose=verbose, train_diffusion=train_diffusion, console=console,
            log=log or (lambda message: print(message, file=console, flush=True)),
            on_phase_done=on_phase_done or (lambda phase: None),
        )
    finally:
        torch.set_num_threads(previous_threads)


def _run_demo(
    output_dir: Path,
    *,
    seed: int,
    quick: bool,
    sd_model: str | None,
    classifier: str | None,
    feature_extractor: str | None,
    settings: DemoSettings | None,
    device: str,
    overwrite: bool,
    resume: bool,
    verbose: bool,
    train_diffusion: bool,
    console,
    log: Callable[[str], None],
    on_phase_done: Callable[[str], None],
) -> DemoResult:
    import torch

    from .. import __version__

    settings = settings or (QUICK_SETTINGS if quick else FULL_SETTINGS)
    if sd_model is not None and settings is FULL_SETTINGS:
        settings = replace(settings, **SD_GENERATION)
    if sd_model is not None and train_diffusion:
        raise ValueError("train_diffusion=True (--train-diffusion) trains the demo's own diffusion components; "
                         "it excludes sd_model (--sd-model).")
    fingerprint = json.loads(json.dumps({
        "brainvis_hf": __version__, "seed": seed, "quick": quick, "sd_model": sd_model, "classifier": classifier,
        "feature_extractor": feature_extractor, "train_diffusion": train_diffusion, "settings": asdict(settings),
    }, allow_nan=False))  # fmt: skip
    state = _open_state(output_dir, fingerprint, resume=resume, overwrite=overwrite, log=log)
    (output_dir / "logs").mkdir(exist_ok=True)
    phases = PHASES_TRAIN_DIFFUSION if train_diffusion else PHASES
    ctrl_c = _CtrlC()
    progress = _Progress(phases, log, verbose, check=ctrl_c.check)
    log(f"brainvis demo -> {output_dir} (seed {seed}{', quick' if quick else ''}; torch threads "
        f"{torch.get_num_threads()}, device {device}){'' if verbose else '; library logs: logs/demo.log'}")
    with open(output_dir / "logs" / "demo.log", "a", encoding="utf-8") as library_log:
        quiet = (lambda **kw: contextlib.nullcontext()) if verbose else (
            lambda **kw: _library_output_to(library_log, **kw))
        try:
            torch.manual_seed(seed)
            with ctrl_c:
                return _run_phases(
                    output_dir, state=state, progress=progress, quiet=quiet, console=console, verbose=verbose,
                    seed=seed, quick=quick, sd_model=sd_model, classifier=classifier,
                    feature_extractor=feature_extractor, settings=settings, device=device, log=log,
                    on_phase_done=on_phase_done, train_diffusion=train_diffusion,
                )
        except KeyboardInterrupt as err:
            if isinstance(err, DemoInterrupted):
                raise
            finished = [p for p in phases if state.done(p)]
            raise DemoInterrupted(output_dir, progress.current, finished[-1] if finished else None) from None


def _run_phases(
    output_dir: Path, *, state: _RunState, progress: _Progress, quiet, console, verbose: bool, seed: int,
    quick: bool, sd_model: str | None, classifier: str | None, feature_extractor: str | None,
    settings: DemoSettings, device: str, log: Callable[[str], None], on_phase_done: Callable[[str], None],
    train_diffusion: bool = False,
) -> DemoResult:
    def finish(phase: str, detail: str = "", **outputs: Any) -> None:
        # recorded first, printed second: a printed phase is never redone by --resume
        state.mark(phase, progress.stop(phase), detail, **outputs)
        progress.done(phase, detail)
        on_phase_done(phase)

    def redo(phase: str) -> bool:
        """True when ``phase`` must run (after removing what an interrupted attempt left)."""
        if state.done(phase):
            progress.skipped(phase, state.finished[phase])
            return False
        _remove(output_dir, PHASE_OUTPUTS[phase])
        return True

    # 1. synthetic EEG-ImageNet ---------------------------------------------------------------
    with quiet():
        from ..data import load_eeg_imagenet, write_synthetic_eeg_imagenet
        from ..data.prepare import load_prepared_dataset, prepare_dataset

    raw_dir = output_dir / "data" / "synthetic"
    if redo("synthesise"):
        progress.start(
            "synthesise",
            f"{40 * settings.num_images_per_class * settings.num_subjects} recordings "
            f"(40 classes x {settings.num_images_per_class} images x {settings.num_subjects} subjects), "
            f"difficulty {settings.difficulty}",
        )
        with quiet():
            files = write_synthetic_eeg_imagenet(
                raw_dir,
                num_images_per_class=settings.num_images_per_class,
                num_subjects=settings.num_subjects,
                difficulty=settings.difficulty,
                seed=seed,
                with_images=True,
                image_size=settings.image_size,
            )
        finish(
            "synthesise", f"{files.num_recordings} recordings, {files.num_in_length_range} in the length range",
            files={k: str(Path(getattr(files, k)).relative_to(output_dir)) for k in ("eeg_path", "splits_path",
                                                                                       "image_root")},
        )
    saved_files = {k: output_dir / v for k, v in state.finished["synthesise"]["files"].items()}

    # 2. prepare ----------------------------------------------------------------------------------
    data_dir = output_dir / "data" / "prepared"
    if redo("prepare"):
        progress.start("prepare", "datasets builder -> Parquet + dataset card")
        with quiet():
            dataset_dict = load_eeg_imagenet(
                saved_files["eeg_path"], saved_files["splits_path"], image_root=saved_files["image_root"],
                cache_dir=output_dir / "data" / ".cache",
            )
            prepare_dataset(
                dataset_dict,
                data_dir,
                card_metadata={"pretty_name": "Synthetic EEG-ImageNet (brainvis demo)", "eeg_signal": {"sfreq": 1000.0}},
                preprocessing={
                    "source": "brainvis_hf.data.write_synthetic_eeg_imagenet (synthetic, not real EEG)",
                    "seed": seed, "difficulty": settings.difficulty, "split_num": 0, "subject": 0,
                    "time_window": (20, 460), "length_range": (450, 600),
                },
            )
            del dataset_dict
            shutil.rmtree(output_dir / "data" / ".cache", ignore_errors=True)
    with quiet():
        prepared = load_prepared_dataset(data_dir)
    sizes = {split: len(ds) for split, ds in prepared.items()}
    if not state.done("prepare"):
        finish("prepare", ", ".join(f"{k} {v}" for k, v in sizes.items()))

    # 3. the diffusion components: shipped, trained here (--train-diffusion) or --sd-model -------------
    runs_dir = output_dir / "runs"
    trained = {"diffusion": runs_dir / "diffusion", "image_classifier": runs_dir / "image_classifier"}
    if train_diffusion and redo("train diffusion"):
        from ..training.demo_weights import train_demo_diffusion, train_demo_image_classifier

        progress.start("train diffusion", "small VAE + UNet and the image classifier on the training images")
        with quiet():
            diffusion_run = train_demo_diffusion(trained["diffusion"], data_dir=data_dir, seed=seed, device="cpu",
                                                 **settings.diffusion_training_overrides)
            classifier_run = train_demo_image_classifier(trained["image_classifier"], data_dir=data_dir, seed=seed,
                                                         **settings.classifier_training_overrides)
        finish("train diffusion", f"UNet loss {diffusion_run.metrics.get('loss_last', float('nan')):.3f}, image "
               f"classifier test accuracy {classifier_run.metrics.get('test_accuracy', float('nan')):.3f}")
    diffusion_source = sd_model or (str(trained["diffusion"]) if train_diffusion else DEMO_DIFFUSION_SOURCE)
    components: dict[str, Any] = {}

    def sd_components() -> dict[str, Any]:
        if not components:
            with quiet():
                components.update(_diffusion_components(sd_model, trained["diffusion"] if train_diffusion else None))
        return components

    # 4. CLIP targets with the pipeline's text encoder ---------------------------------------------
    if redo("CLIP targets"):
        from ..data.clip_targets import compute_clip_targets

        progress.start("CLIP targets", "class-name (and caption) embeddings of every image")
        with quiet():
            compute_clip_targets(
                data_dir,
                clip_model=diffusion_source,
                # the demo's diffusion model was trained on class words: the fine target is the coarse
                # one; with Stable Diffusion the colour captioner stands in for BLIP-2
                captioner=ColourCaptioner() if sd_model else None,
                tokenizer=sd_components()["tokenizer"],
                text_encoder=sd_components()["text_encoder"],
                device=device,
                batch_size=32,
            )
        finish("CLIP targets", f"{sum(sizes.values())} images")

    # 5. training, stage by stage -----------------------------------------------------------------
    if redo("train"):
        progress.start("train", " -> ".join(DEMO_STAGES) + " (tiny preset)")
        run_dirs, stage_metrics = train_all_stages(
            data_dir, runs_dir, settings, seed=seed, log=log if verbose else (lambda message: None),
            done_stages={s for s in DEMO_STAGES if state.done(f"train/{s}")},
            on_stage_done=lambda stage, seconds: (state.mark(f"train/{stage}", seconds), progress.check()),
            quiet=quiet, progress_file=None if verbose else console,
        )
        finish("train", _stage_summary(stage_metrics))
    else:
        run_dirs = {stage: runs_dir / stage for stage in DEMO_STAGES}
        stage_metrics = {s: json.loads((d / "metrics.json").read_text(encoding="utf-8")) for s, d in run_dirs.items()}

    # 5. the pipeline -------------------------------------------------------------------------------
    with quiet():
        from ..models import BrainVisForCLIPAlignment
        from ..pipelines import BrainVisPipeline

        eeg_encoder = BrainVisForCLIPAlignment.from_pretrained(run_dirs["align"]).eval()
    pipeline_dir = output_dir / "pipeline"
    if redo("assemble"):
        progress.start("assemble", "alignment model + " + diffusion_source)
        with quiet():
            pipe = BrainVisPipeline(eeg_encoder=eeg_encoder, **sd_components())
            pipe.save_pretrained(pipeline_dir, safe_serialization=True)
        finish("assemble", str(pipeline_dir))

    # 6. generation ---------------------------------------------------------------------------------
    from .generate_folder import GenerationSettings, generate_to_folder, load_eeg_records

    generated_dir = output_dir / "generated"
    controls_dir = output_dir / "generated_controls"
    indices = _pick_test_rows(prepared["test"], settings.num_test_eegs)
    generation = GenerationSettings(
        num_images_per_eeg=settings.num_images_per_eeg,
        num_inference_steps=settings.num_inference_steps,
        refine=True,
        refine_num_inference_steps=settings.refine_num_inference_steps,
        refine_strength=settings.refine_strength,
        refine_guidance_scale=settings.refine_guidance_scale,
        seed=seed,
        height=settings.height,
        width=settings.width,
        batch_size=settings.generation_batch_size,
    )
    if redo("generate"):
        progress.start(
            "generate",
            f"{len(indices)} test EEGs x {settings.num_images_per_eeg} images, {settings.num_inference_steps} steps + "
            f"refinement {settings.refine_num_inference_steps} x {settings.refine_strength}",
        )
        with quiet():
            pipe = BrainVisPipeline.from_pretrained(pipeline_dir).to(device)  # generate with what was saved
            records = load_eeg_records(data_dir, split="test", indices=indices)
        # the image progress bar goes to the console (a terminal), the rest to the log
        show = verbose or _is_terminal(console)
        with quiet(stderr=verbose):
            generate_to_folder(pipe, records, generated_dir, generation, model_name=str(pipeline_dir),
                               show_progress=show)
            # the controls: same records, seeds and settings; only the stage-1 condition differs
            progress.check()
            oracle = replace(generation, prompt_source="class_name")
            generate_to_folder(pipe, records, controls_dir / "oracle_class_name", oracle, model_name=str(pipeline_dir),
                               show_progress=show)
            with quiet():
                shuffled = shuffled_eeg_records(records, prepared["test"], data_dir, seed=seed,
                                                sources_file=controls_dir / SHUFFLE_FILE)
            progress.check()
            generate_to_folder(pipe, shuffled, controls_dir / "shuffled_eeg", generation, model_name=str(pipeline_dir),
                               show_progress=show)
        finish("generate", f"{3 * len(indices) * settings.num_images_per_eeg} images (test EEG, oracle class name, "
               "shuffled EEG)")

    # 7. evaluation -------------------------------------------------------------------------------
    if classifier is not None:
        classifier_path = classifier
    elif train_diffusion:
        classifier_path = str(trained["image_classifier"])
    else:
        from ..training.demo_weights import demo_image_classifier_dir

        classifier_path = str(demo_image_classifier_dir())
    from ..evaluation import eeg_classification_metrics

    evaluation_dir = output_dir / "evaluation"
    if redo("evaluate"):
        from ..evaluation.report import evaluate_generated

        progress.start("evaluate", "GA, IS, FID, SSIM of the images; EEG classification on the whole test split")
        eval_models = output_dir / "eval_models"
        with quiet():
            classifier_source = classifier_path
            extractor_source = feature_extractor or build_tiny_feature_extractor(
                eval_models / "feature_extractor", seed=seed + 1)
            image_metrics = evaluate_generated(
                generated_dir,
                classifier=str(classifier_source),
                feature_extractor=str(extractor_source),
                n_way=settings.n_way,
                num_trials=settings.num_trials,
                seed=seed,
                output_dir=evaluation_dir,
                device=device,
                inception_splits=min(10, len(indices) * settings.num_images_per_eeg),
            )
            ga_rows = generation_accuracy_rows(
                generated_dir, {name: controls_dir / name for name in CONTROLS}, str(classifier_source),
                n_way=settings.n_way, num_trials=settings.num_trials, seed=seed, device=device,
            )
        (evaluation_dir / GA_ROWS_FILE).write_text(json.dumps(finite_or_none(ga_rows), indent=2, allow_nan=False),
                                                   encoding="utf-8")
    else:
        image_metrics = json.loads((evaluation_dir / "metrics.json").read_text(encoding="utf-8"))
        ga_rows = json.loads((evaluation_dir / GA_ROWS_FILE).read_text(encoding="utf-8"))
    logits, labels, class_names = _test_logits(eeg_encoder, prepared["test"])
    eeg_metrics = eeg_classification_metrics(logits, labels)
    ga_rows["rows"]["eeg_classifier"] = {
        "label": "EEG classifier (alignment model's head) top-1, whole test split",
        **_accuracy_row(logits.argmax(axis=1) == labels, chance=1.0 / logits.shape[1]),
    }
    if not state.done("evaluate"):
        rows = ga_rows["rows"]
        finish("evaluate", f"GA {settings.n_way}-way: EEG {rows['eeg_refined']['value']:.2f} (stage 1 "
               f"{rows['eeg_stage1']['value']:.2f}), oracle {rows['oracle_class_name_refined']['value']:.2f}, "
               f"shuffled {rows['shuffled_eeg_refined']['value']:.2f}; EEG top-1 {eeg_metrics['top1_accuracy']:.3f}")

    # 8. report -------------------------------------------------------------------------------------
    summary = _summary_metrics(eeg_metrics, image_metrics, settings, ga_rows)
    report_path = output_dir / "report.html"
    if redo("report"):
        progress.start("report", "report.html + figures + model card")
        from ..hub_pipeline import pipeline_model_card

        with quiet():
            card = pipeline_model_card(
                metrics=summary,
                training_runs={stage: run_dirs[stage] for stage in DEMO_STAGES},
                model_name="BrainVis demo pipeline (synthetic EEG" + (
                    ")" if sd_model else ", small diffusion model trained on the synthetic images)"),
                base_model=sd_model if sd_model and not Path(sd_model).exists() else None,
                dataset_name="Synthetic EEG-ImageNet (brainvis demo)",
                generation_settings={k: v for k, v in generation.as_dict().items()},
                random_weights=False,
                notes=[SYNTHETIC_NOTE] + ([] if sd_model else [DIFFUSION_NOTE.format(source=diffusion_source)]),
            )
            card.save(pipeline_dir / "README.md")
        timings = dict(progress.timings)
        demo_info = {
            "seed": seed,
            "quick": quick,
            "sd_model": sd_model,
            "settings": asdict(settings),
            "data_sizes": sizes,
            "metrics": summary,
            "stage_results": {stage: _stage_result(m) for stage, m in stage_metrics.items()},
            "generation": generation.as_dict(),
            "test_indices": indices,
            "classifier": classifier_path,
            "diffusion": diffusion_source,
            "train_diffusion": train_diffusion,
            "generation_accuracy": ga_rows,
            "regenerate_command": regenerate_command(output_dir, indices, generation),
            "timings_s": timings,
        }
        with quiet():
            report_path = write_demo_report(
                output_dir,
                prepared=prepared,
                run_dirs=run_dirs,
                eeg_metrics=eeg_metrics,
                class_names=class_names,
                image_metrics=image_metrics,
                summary=summary,
                demo_info=demo_info,
                sd_model=sd_model,
            )
        (output_dir / "metrics.json").write_text(json.dumps(finite_or_none(
            demo_metrics(summary, ga_rows, eeg_metrics)), indent=2, allow_nan=False), encoding="utf-8")
        seconds = progress.stop("report")
        timings = dict(progress.timings)
        timings["total"] = round(progress.total, 2)
        demo_info["timings_s"] = timings
        (output_dir / "demo.json").write_text(json.dumps(finite_or_none(demo_info), indent=2, default=str, allow_nan=False), encoding="utf-8")
        state.mark("report", seconds, str(report_path))
        progress.done("report", str(report_path))
        on_phase_done("report")
    else:
        timings = json.loads((output_dir / "demo.json").read_text(encoding="utf-8"))["timings_s"]
    log(f"done in {timings['total']:.0f} s: open {report_path}")
    return DemoResult(
        output_dir=output_dir,
        report_path=report_path,
        pipeline_dir=pipeline_dir,
        generated_dir=generated_dir,
        data_dir=data_dir,
        run_dirs=run_dirs,
        metrics=summary,
        timings=timings,
    )


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------
# pieces of run_demo


def train_all_stages(
    data_dir: Path,
    runs_dir: Path,
    settings: DemoSettings,
    *,
    seed: int,
    log: Callable[[str], None] = _default_log,
    done_stages: set[str] | frozenset[str] = frozenset(),
    on_stage_done: Callable[[str, float], None] | None = None,
    quiet: Callable[..., Any] | None = None,
    progress_file=None,
) -> tuple[dict[str, Path], dict[str, dict[str, Any]]]:
    """Train :data:`DEMO_STAGES` in order with the ``tiny`` preset, each stage from the previous
    ones' folders (``runs_dir/<stage>``); returns the run folders and each run's metrics.

    Stages in ``done_stages`` are not retrained (their ``metrics.json`` is read); an unfinished
    stage's folder is removed before it is trained. ``on_stage_done(stage, seconds)`` follows each
    trained stage; ``quiet()`` wraps the library calls; ``progress_file`` (a terminal) shows one
    progress bar over the stages."""
    from ..training import train_stage

    quiet = quiet or (lambda **kw: contextlib.nullcontext())
    run_dirs = {stage: runs_dir / stage for stage in DEMO_STAGES}
    inits = {
        "time-pretrain": [],
        "time-finetune": [run_dirs["time-pretrain"]],
        "freq": [],
        "timefreq": [run_dirs["time-finetune"], run_dirs["freq"]],
        "align": [run_dirs["timefreq"]],
    }
    configs: dict[str, Path] = {}
    align_config = {name: getattr(settings, name) for name in ("alignment_classification_loss_weight",
                                                                "alignment_centred_loss_weight") if getattr(settings, name)}
    if align_config:
        configs["align"] = runs_dir / "align_config.json"
        runs_dir.mkdir(parents=True, exist_ok=True)
        configs["align"].write_text(json.dumps(align_config, allow_nan=False), encoding="utf-8")
    bar = None
    if progress_file is not None and _is_terminal(progress_file):
        from tqdm.auto import tqdm

        bar = tqdm(total=len(DEMO_STAGES), desc="training", unit="stage", file=progress_file, leave=False)
    stage_metrics: dict[str, dict[str, Any]] = {}
    try:
        for stage in DEMO_STAGES:
            if stage in done_stages:
                stage_metrics[stage] = json.loads((run_dirs[stage] / "metrics.json").read_text(encoding="utf-8"))
                if bar is not None:
                    bar.update(1)
                continue
            log(f"      training {stage} ...")
            if run_dirs[stage].exists():
                shutil.rmtree(run_dirs[stage])
            started = time.perf_counter()
            with quiet():
                result = train_stage(
                    stage,
                    data_dir,
                    run_dirs[stage],
                    preset="tiny",
                    config=configs.get(stage),
                    init=inits[stage],
                    seed=seed,
                    training_overrides=dict(settings.training_overrides.get(stage, {})),
                    callbacks=[_BarCallback(bar, stage)] if bar is not None else (),
                )
            stage_metrics[stage] = result.metrics
            if bar is not None:
                bar.update(1)
            if on_stage_done is not None:
                on_stage_done(stage, time.perf_counter() - started)
    finally:
        if bar is not None:
            bar.close()
    return run_dirs, stage_metrics


def _BarCallback(bar, stage: str):
    """A ``TrainerCallback`` that shows the stage and its optimizer step on the progress bar."""
    from transformers import TrainerCallback

    class BarCallback(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            bar.set_postfix_str(f"{stage} step {state.global_step}/{state.max_steps}")

    return BarCallback()


#: where the shipped diffusion components come from (recorded in the CLIP targets and the report)
DEMO_DIFFUSION_SOURCE = "brainvis_hf demo weights (demo_weights/diffusion)"


def _diffusion_components(sd_model: str | None, trained_dir: Path | None = None) -> dict[str, Any]:
    """The pipeline's vae / text_encoder / tokenizer / unet / scheduler: Stable Diffusion
    (``sd_model``), a ``--train-diffusion`` run folder, or the demo weights shipped in the package."""
    if sd_model is None:
        from ..training.demo_weights import load_demo_diffusion_components
        from ..training.diffusion import load_diffusion_components

        return load_diffusion_components(trained_dir) if trained_dir is not None else load_demo_diffusion_components()
    from diffusers import StableDiffusionPipeline

    sd = StableDiffusionPipeline.from_pretrained(
        sd_model, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    return {name: getattr(sd, name) for name in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}


def regenerate_command(output_dir: Path, indices: Sequence[int], generation) -> list[str]:
    """The ``brainvis generate`` arguments that regenerate the demo's images from the saved pipeline
    (same rows, seeds and settings; only ``--output`` differs)."""
    return [
        "generate", "--model", str(output_dir / "pipeline"), "--eeg", str(output_dir / "data" / "prepared"),
        "--split", "test", "--indices", ",".join(str(i) for i in indices),
        "--num-images-per-eeg", str(generation.num_images_per_eeg), "--steps", str(generation.num_inference_steps),
        "--refine-steps", str(generation.refine_num_inference_steps),
        "--refine-strength", str(generation.refine_strength),
        "--refine-guidance-scale", str(generation.refine_guidance_scale),
        "--guidance-scale", str(generation.guidance_scale), "--seed", str(generation.seed),
        "--output", str(output_dir / "generated-again"),
    ]


#: ``OUT/evaluation/generation_accuracy.json``: the GA rows of the report (and of ``OUT/metrics.json``)
GA_ROWS_FILE = "generation_accuracy.json"
#: ``OUT/generated_controls/shuffled_eeg_sources.json``: which test recording's EEG each image used
SHUFFLE_FILE = "shuffled_eeg_sources.json"


def shuffled_eeg_records(records, test_set, data_dir: Path, *, seed: int, sources_file: Path) -> list:
    """The control of the EEG: each record keeps its id, seeds, true class and ground truth, but its
    EEG is that of another test recording, drawn by a seeded permutation of the *whole* test split
    (so a record gets an EEG of its own class with the class's share of the split, ~1/40: chance).
    The pairs are written to ``sources_file`` (the demo: ``OUT/generated_controls/shuffled_eeg_sources.json``)."""
    from .generate_folder import load_eeg_records

    eeg_index = [int(v) for v in test_set["eeg_index"]]
    row_of = {str(v): row for row, v in enumerate(eeg_index)}
    permutation = np.random.default_rng(seed + 7919).permutation(len(eeg_index))
    sources = [int(permutation[row_of[r.eeg_id]]) for r in records]
    donors = load_eeg_records(data_dir, split="test", indices=sources)
    labels = test_set["label"]
    pairs = [{"eeg_id": r.eeg_id, "true_label": r.true_label, "eeg_from": d.eeg_id, "eeg_label": int(labels[row])}
             for r, d, row in zip(records, donors, sources)]
    sources_file.parent.mkdir(parents=True, exist_ok=True)
    sources_file.write_text(json.dumps({"seed": seed + 7919, "pairs": pairs}, indent=1, allow_nan=False),
                                       encoding="utf-8")
    return [replace(r, eeg=d.eeg) for r, d in zip(records, donors)]


def _accuracy_row(hits: Any, *, chance: float) -> dict[str, Any]:
    """Mean, sd and standard error over samples of per-sample scores (hits or GA rates), and how
    far the mean is from chance in binomial standard errors at chance (``z_vs_chance``)."""
    values = np.asarray(hits, dtype=np.float64).ravel()
    n = int(values.size)
    sd = float(values.std(ddof=1)) if n > 1 else 0.0
    se_chance = float(np.sqrt(chance * (1.0 - chance) / n)) if n else float("nan")
    mean = float(values.mean()) if n else float("nan")
    return {
        "value": mean, "sd": sd, "se": sd / np.sqrt(n) if n else float("nan"), "n": n, "chance": chance,
        "times_chance": mean / chance if chance else None, "z_vs_chance": (mean - chance) / se_chance if se_chance else None,
        "within_2se_of_chance": bool(abs(mean - chance) <= 2.0 * se_chance),
    }


#: the GA rows: key -> (generated folder name or None for the EEG images, image field, label)
GA_ROWS: tuple[tuple[str, str | None, str, str], ...] = (
    ("eeg_refined", None, "file", "images from test EEG, refined (BrainVis)"),
    ("eeg_stage1", None, "stage1_file", "images from test EEG, stage 1"),
    ("oracle_class_name_refined", "oracle_class_name", "file", "images from the oracle class name, refined"),
    ("oracle_class_name_stage1", "oracle_class_name", "stage1_file", "images from the oracle class name, stage 1"),
    ("shuffled_eeg_refined", "shuffled_eeg", "file", "images from EEG shuffled across trials (control), refined"),
    ("shuffled_eeg_stage1", "shuffled_eeg", "stage1_file", "images from EEG shuffled across trials (control), stage 1"),
)


def generation_accuracy_rows(
    generated_dir: Path, controls: dict[str, Path], classifier: str, *, n_way: int, num_trials: int, seed: int,
    device: str | None = None,
) -> dict[str, Any]:
    """GA (``n_way``-way top-1) of the refined and stage-1 images of the EEG folder and of the
    control folders, each with its sd / standard error over images. The true class of an image is
    the classifier's class for its ground-truth stimulus, as in ``evaluate_generated``."""
    from ..evaluation.generation_metrics import n_way_top_k_hit_rates
    from ..evaluation.image_classifier import classify_images, load_image_classifier
    from ..evaluation.report import read_generated_folder

    model, processor = load_image_classifier(classifier, device)
    folders = {None: generated_dir, **controls}
    truth: dict[str, int] = {}
    rows: dict[str, Any] = {}
    for key, folder_name, field_name, label in GA_ROWS:
        folder = read_generated_folder(folders[folder_name])
        if not truth:
            gt = classify_images(folder.ground_truth_files, model, image_processor=processor).argmax(axis=1)
            truth = {str(e["eeg_id"]): int(c) for e, c in zip(folder.eegs, gt)}
        entries = folder.manifest["images"]
        files = [folder.root / e[field_name] for e in entries]
        target = np.array([truth[str(e["eeg_id"])] for e in entries])
        probs = classify_images(files, model, image_processor=processor)
        rates = n_way_top_k_hit_rates(probs, target, n_way, 1, num_trials, seed)
        rows[key] = {"label": label, **_accuracy_row(rates, chance=1.0 / n_way),
                     "predicted_classes": probs.argmax(axis=1).tolist()}
    return {"n_way": n_way, "top_k": 1, "num_trials": num_trials, "chance": 1.0 / n_way, "classifier": classifier,
            "rows": rows}


def _pick_test_rows(test_set, count: int) -> list[int]:
    """Up to ``count`` test rows, one class after another (round robin), in a fixed order."""
    labels = np.asarray(test_set["label"])
    by_class: dict[int, list[int]] = {}
    for row, label in enumerate(labels.tolist()):
        by_class.setdefault(int(label), []).append(row)
    picked: list[int] = []
    depth = 0
    while len(picked) < min(count, len(labels)):
        for label in sorted(by_class):
            rows = by_class[label]
            if depth < len(rows) and len(picked) < count:
                picked.append(rows[depth])
        depth += 1
    return sorted(picked)


def _test_logits(model, test_set, batch_size: int = 64):
    """Class logits of the alignment model over the whole test split (on the CPU)."""
    import torch

    model = model.to("cpu").eval()
    eeg = np.asarray(test_set.with_format("numpy")["eeg"], dtype=np.float32)
    labels = np.asarray(test_set["label"], dtype=np.int64)
    outputs = []
    with torch.no_grad():
        for start in range(0, len(eeg), batch_size):
            outputs.append(model(eeg_values=torch.from_numpy(eeg[start : start + batch_size])).logits.float().numpy())
    class_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    return np.concatenate(outputs), labels, class_names


def _stage_result(metrics: dict[str, Any]) -> dict[str, Any]:
    evaluation = metrics.get("evaluation", {})
    out: dict[str, Any] = {"global_step": metrics.get("global_step"), "best_metric": metrics.get("best_metric")}
    for split, values in evaluation.items():
        for key, value in values.items():
            if isinstance(value, (int, float)) and not key.endswith(("runtime", "per_second", "epoch")):
                out[f"{split}_{key}"] = value
    if metrics.get("linear_probe"):
        out["linear_probe_accuracy"] = metrics["linear_probe"][-1].get("linear_probe_accuracy")
    baseline = metrics.get("linear_baseline")  # newer runs: a linear classifier on the raw EEG
    if isinstance(baseline, dict):
        for split in ("validation", "test"):
            value = (baseline.get(split) or {}).get("accuracy") if isinstance(baseline.get(split), dict) else None
            if isinstance(value, (int, float)):
                out[f"linear_baseline_{split}_accuracy"] = value
    return out


def _stage_summary(stage_metrics: dict[str, dict[str, Any]]) -> str:
    parts = []
    for stage, metrics in stage_metrics.items():
        result = _stage_result(metrics)
        key = next((k for k in ("test_accuracy", "linear_probe_accuracy", "test_loss") if result.get(k) is not None), None)
        if key:
            parts.append(f"{stage} {key} {result[key]:.3f}")
    return "; ".join(parts)


def _summary_metrics(eeg_metrics: dict[str, Any], image_metrics: dict[str, Any], settings: DemoSettings,
                     ga_rows: dict[str, Any] | None = None) -> dict[str, Any]:
    summary = image_metrics.get("summary", {})
    ga_key = next((k for k in summary if k.startswith("ga_")), None)
    out = {
        "eeg_top1_accuracy": eeg_metrics.get("top1_accuracy"),
        "eeg_top3_accuracy": eeg_metrics.get("top3_accuracy"),
        "eeg_top5_accuracy": eeg_metrics.get("top5_accuracy"),
        "eeg_macro_f1": eeg_metrics.get("macro_f1"),
        f"ga_{settings.n_way}way_top1": summary.get(ga_key) if ga_key else None,
    }
    rows = (ga_rows or {}).get("rows", {})
    for key, _, _, _ in GA_ROWS[1:]:  # the first row is evaluate_generated's GA above
        if key in rows:
            out[f"ga_{settings.n_way}way_top1_{key}"] = rows[key]["value"]
    out.update({
        "inception_score": image_metrics.get("inception_score", {}).get("mean"),
        "fid": image_metrics.get("fid", {}).get("value"),
        "ssim": image_metrics.get("ssim", {}).get("mean"),
    })
    return out


def demo_metrics(summary: dict[str, Any], ga_rows: dict[str, Any], eeg_metrics: dict[str, Any]) -> dict[str, Any]:
    """``OUT/metrics.json``: the GA rows (value, sd, standard error over samples, chance) and the
    two checks of the demo: GA from EEG >= 3x chance, shuffled-EEG GA within 2 SE of chance."""
    rows = ga_rows["rows"]
    return {
        "generation_accuracy": ga_rows,
        "eeg_classification": {k: v for k, v in eeg_metrics.items() if k != "confusion_matrix"},
        "summary": summary,
        "checks": {
            "ga_from_eeg_at_least_3x_chance": bool(rows["eeg_refined"]["value"] >= 3 * ga_rows["chance"]),
            "ga_from_shuffled_eeg_within_2se_of_chance": bool(rows["shuffled_eeg_refined"]["within_2se_of_chance"]),
            "standard_error_at_chance": "binomial: sqrt(p (1 - p) / N), p = 1 / n_way, N images",
        },
    }


# ---------------------------------------------------------------------------------------------
# the report page


_METRIC_ROWS = (
    ("eeg_top1_accuracy", "EEG top-1 accuracy, pipeline's classifier (alignment model)", "chance: 1/40 = 0.025"),
    ("eeg_top3_accuracy", "EEG top-3 accuracy, pipeline's classifier", "chance: 0.075"),
    ("eeg_top5_accuracy", "EEG top-5 accuracy, pipeline's classifier", "chance: 0.125"),
    ("eeg_macro_f1", "EEG macro-F1, pipeline's classifier", ""),
    ("unified", "EEG top-1 accuracy, unified classifier (timefreq stage)", "before the alignment stage"),
    ("ga", "Generation accuracy (N-way top-1), refined images from test EEG", "see the table below"),
    ("inception_score", "Inception Score", "over the demo's 40 classes, with the demo's image classifier"),
    ("fid", "FID (generated vs ground truth)", "with the tiny random feature extractor"),
    ("ssim", "SSIM (generated vs ground truth)", ""),
)


def write_demo_report(
    output_dir: Path,
    *,
    prepared,
    run_dirs: dict[str, Path],
    eeg_metrics: dict[str, Any],
    class_names: Sequence[str],
    image_metrics: dict[str, Any],
    summary: dict[str, Any],
    demo_info: dict[str, Any],
    sd_model: str | None,
) -> Path:
    """Draw the figures and write ``output_dir/report.html`` (self-contained)."""
    from ..plots import plot_confusion_matrix, plot_eeg_traces, plot_stage_curves
    from .demo_report import ReportFigure, ReportSection, ReportTable, write_report

    figures = output_dir / "figures"
    test = prepared["test"]
    rows = _pick_test_rows(test, 3)
    examples = test.select(rows).with_format("numpy")
    traces = plot_eeg_traces(
        np.asarray(examples["eeg"], dtype=np.float32),
        figures / "eeg_traces.png",
        titles=[f"test recording {int(i)}: {t}" for i, t in zip(examples["eeg_index"], examples["label_text"])],
    )
    histories = {}
    for stage, run_dir in run_dirs.items():
        state_path = run_dir / "trainer_state.json"
        if state_path.is_file():
            histories[stage] = json.loads(state_path.read_text(encoding="utf-8")).get("log_history", [])
    curves = plot_stage_curves(histories, figures / "training_curves.png")
    confusion = plot_confusion_matrix(
        eeg_metrics["confusion_matrix"], figures / "confusion_matrix.png", class_names=list(class_names),
        title="EEG classifier (alignment model) on the test split",
    )
    contact_sheet = figures / "contact_sheet.png"
    shutil.copyfile(output_dir / "generated" / "contact_sheet.png", contact_sheet)
    per_class_ga = output_dir / "evaluation" / "per_class_ga.png"

    n_way = demo_info["settings"]["n_way"]
    ga_key = f"ga_{n_way}way_top1"
    metric_rows = []
    for key, name, note in _METRIC_ROWS:
        if key == "unified":
            metric_rows.append([name, demo_info["stage_results"].get("timefreq", {}).get("test_accuracy"), note])
            continue
        key = ga_key if key == "ga" else key
        if key == ga_key:
            name = name.replace("N-way", f"{n_way}-way")
        metric_rows.append([name, summary.get(key), note])
    ga = demo_info["generation_accuracy"]
    ga_table_rows = []
    for key, row in ga["rows"].items():
        summary_key = ga_key if key == "eeg_refined" else f"{ga_key}_{key}"
        ga_table_rows.append([
            row["label"], summary.get(summary_key, row["value"]), row["se"], row["sd"], row["n"], row["chance"],
            row["times_chance"], "yes" if row["within_2se_of_chance"] else "no",
        ])
    stage_rows, below_baseline = [], []
    for stage, result in demo_info["stage_results"].items():
        main = next(
            (k for k in ("test_accuracy", "linear_probe_accuracy", "test_loss") if result.get(k) is not None), None
        )
        baseline = result.get("linear_baseline_test_accuracy")
        stage_rows.append([stage, result.get("global_step"), main or "", result.get(main) if main else None,
                           baseline, str(run_dirs[stage].relative_to(output_dir))])
        if main == "test_accuracy" and baseline is not None and result[main] < 0.8 * baseline:
            below_baseline.append(stage)  # the 0.8 x rule of the stage cards
    stage_caption = (
        "Each stage is a `brainvis train STAGE --preset tiny` run; its folder holds the model, model card, "
        "metrics.json, trainer_state.json and TensorBoard logs. The linear baseline (where the run measured one) "
        "is a linear classifier on the raw EEG of the same split: what the stage must beat."
    )
    if below_baseline:
        stage_caption += f" Below 0.8 x its baseline here: {', '.join(below_baseline)}."
    if "freq" in below_baseline:
        stage_caption += (
            " The frequency branch alone reads only the amplitude spectrum, and the demo's classes differ in "
            "phase-locked waveforms much more than in band power; the unified classifier (timefreq), which adds "
            "the time branch, is the one the pipeline uses."
        )
    timings = demo_info["timings_s"]
    sizes = demo_info["data_sizes"]
    notes = [SYNTHETIC_NOTE]
    weight = demo_info["settings"].get("alignment_classification_loss_weight")
    if weight:
        notes.append(
            f"Unlike the paper, the alignment stage keeps the class cross-entropy in its loss (weight {weight:g}, "
            "runs/align_config.json): trained on the CLIP loss alone, the classifier head inside the alignment "
            "model drifts towards chance on data this small, and the pipeline prompts its refinement stage with "
            "that head's prediction."
        )
    centred = demo_info["settings"].get("alignment_centred_loss_weight")
    if centred:
        notes.append(
            f"Unlike the paper, the alignment loss adds a batch-centred cosine term (weight {centred:g}, "
            "runs/align_config.json): the class prompt embeddings share most of their energy, and this term "
            "measures only the class-specific part that stage 1 draws."
        )
    notes.insert(0, DIFFUSION_NOTE.format(source=demo_info["diffusion"]) if sd_model is None else (
        f"Diffusion weights: {sd_model} (Stable Diffusion). The EEG encoders were trained on synthetic EEG, "
        "so the images show Stable Diffusion's idea of the predicted class, not what was seen."
    ))
    blocks = [
        ReportTable("Metrics", ["metric", "value", "note"], metric_rows,
                    caption=f"Test split of the synthetic data ({sizes.get('test')} recordings); images of "
                    f"{len(demo_info['test_indices'])} test recordings."),
        ReportTable(
            "Generation accuracy: what the EEG contributes",
            ["images from", "GA", "standard error", "sd", "samples", "chance", "x chance", "within 2 SE of chance"],
            ga_table_rows,
            caption=f"GA {n_way}-way top-1 ({ga['num_trials']} trials per image) with the demo's image classifier "
            f"({ga['classifier']}); standard error and sd over images (over test recordings for the EEG "
            "classifier). 'Within 2 SE of chance': |value - chance| <= 2 sqrt(p (1 - p) / N), p = chance. The "
            "oracle rows prompt stage 1 with the true class words (no EEG): the ceiling of what the class prompt "
            "gives. The shuffled rows use the EEG of a random other test trial: they must sit near chance. The "
            "images: generated/ (EEG), generated_controls/oracle_class_name/ and generated_controls/shuffled_eeg/.",
        ),
        ReportTable("Training stages", ["stage", "optimizer steps", "main result", "value",
                                        "linear baseline (test accuracy)", "run folder"], stage_rows,
                    caption=stage_caption),
        ReportSection(
            "Saved pipeline",
            ["The BrainVisPipeline this report was made with, saved with save_pretrained; load it with "
             "BrainVisPipeline.from_pretrained(folder). Its model card lists the training runs, the metrics and "
             "the limitations."],
            links=[("pipeline folder", "pipeline/"), ("model card (README.md)", "pipeline/README.md")],
        ),
        ReportFigure("EEG traces", traces, "Eight of the 128 channels of three test recordings (synthetic, "
                     "standardised), 20-460 ms after stimulus onset."),
        ReportFigure("Training curves", curves, "Training loss, validation loss and validation metrics of every stage."),
        ReportFigure("Confusion matrix", confusion, "Rows: true class; columns: class predicted by the alignment "
                     "model's classifier head, on the whole test split."),
        ReportFigure("Generated images (contact sheet)", contact_sheet,
                     "Per test EEG: ground-truth stimulus | stage-1 images | refined images, with the true and "
                     "predicted class."),
    ]
    if per_class_ga.is_file():
        blocks.append(ReportFigure("Generation accuracy per class", per_class_ga,
                                   "Refined images from test EEG, per true class: GA minus the rate at which other "
                                   "classes' images score as the class, so noise images stand at 0 (classes without "
                                   "a test EEG among the generated ones are not shown)."))
    for name, title, what in (("oracle_class_name", "Control: images from the oracle class name",
                               "stage 1 prompted with the true class words' text embedding (no EEG), refined with them"),
                              ("shuffled_eeg", "Control: images from shuffled EEG",
                               "the EEG of a random other test trial (generated_controls/shuffled_eeg_sources.json)")):
        sheet = output_dir / "generated_controls" / name / "contact_sheet.png"
        if sheet.is_file():
            copy = figures / f"contact_sheet_{name}.png"
            shutil.copyfile(sheet, copy)
            blocks.append(ReportFigure(title, copy, f"Per test EEG: ground truth | stage-1 images | refined images; {what}."))
    blocks += [
        ReportTable("Data", ["split", "recordings"], [[k, v] for k, v in sizes.items()],
                    caption="Synthetic EEG-ImageNet written by write_synthetic_eeg_imagenet and prepared with "
                    "prepare_dataset (data/prepared, with its dataset card)."),
        ReportTable("Time per phase", ["phase", "seconds"], [[k, v] for k, v in timings.items()]),
        ReportSection(
            "Reproduce and reuse",
            [
                "The saved pipeline (pipeline/, with its model card README.md) reloads with "
                "BrainVisPipeline.from_pretrained and regenerates the same images under the same seed.",
                "Photographs need the Stable Diffusion v1.5 weights: brainvis demo --sd-model REPO.",
                "The demo's diffusion components and image classifier are shipped in the package "
                "(brainvis_hf/demo_weights); --train-diffusion retrains them here, and "
                "scripts/build_demo_weights.py --check regenerates the shipped copies bit for bit.",
            ],
            code=(
                f"brainvis demo --output {output_dir} --seed {demo_info['seed']}"
                + (" --quick" if demo_info["quick"] else "") + (f" --sd-model {sd_model}" if sd_model else "")
                + (" --train-diffusion" if demo_info.get("train_diffusion") else "") + "\n"
                "brainvis " + " ".join(demo_info["regenerate_command"]) + "\n"
                f"brainvis evaluate --generated {output_dir / 'generated'} --classifier "
                f"{demo_info['classifier']}"
            ),
        ),
    ]
    return write_report(
        output_dir,
        title="BrainVis demo report",
        subtitle=f"EEG -> image reconstruction end to end, seed {demo_info['seed']}"
        + (" (quick run)" if demo_info["quick"] else "") + f"; total {sum(timings.values()):.0f} s.",
        notes=notes,
        blocks=blocks,
    )


__all__ = [
    "DEMO_STAGES",
    "FULL_SETTINGS",
    "QUICK_SETTINGS",
    "ColourCaptioner",
    "DemoInterrupted",
    "DemoResult",
    "DemoSettings",
    "build_tiny_feature_extractor",
    "build_tiny_image_classifier",
    "run_demo",
    "train_all_stages",
    "write_demo_report",
]

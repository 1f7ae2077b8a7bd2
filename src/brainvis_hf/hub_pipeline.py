"""Hub readiness of the pipeline and of whole runs: the pipeline's model card, push helpers.

Every upload goes through ``huggingface_hub``'s own code path: :class:`huggingface_hub.HfApi`'s
``create_repo`` and ``upload_folder`` (one commit with every file of the folder). The helpers
save what they push into a folder first, write the model card (``README.md``) into it, and
upload that folder, so what lands on the Hub is exactly what ``from_pretrained`` reads locally.
(The ``push_to_hub`` methods of ``transformers`` / ``diffusers`` objects also work, but they
replace ``README.md`` by a generic card; use these helpers to keep ours.)

The pipeline card (:func:`pipeline_model_card`) is a :class:`huggingface_hub.ModelCard` with YAML
metadata (library, task, tags, data sets, base model, licence, the run's metrics as
``model-index`` results) and sections for intended use, training data and procedure (the
hyper-parameters read from the training runs), evaluation, limitations and ethics, citation.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

BRAINVIS_CITATION = """@inproceedings{fu2025brainvis,
  title     = {BrainVis: Exploring the Bridge between Brain and Visual Signals via Image Reconstruction},
  author    = {Fu, Honghao and Shen, Zhiqi and Chin, Jing Jih and Wang, Hao},
  booktitle = {IEEE International Conference on Acoustics, Speech and Signal Processing (ICASSP)},
  year      = {2025},
  note      = {arXiv:2312.14871}
}"""

EEG_IMAGENET_CITATION = """@inproceedings{spampinato2017deep,
  title     = {Deep Learning Human Mind for Automated Visual Classification},
  author    = {Spampinato, Concetto and Palazzo, Simone and Kavasidis, Isaak and Giordano, Daniela
               and Souly, Nasim and Shah, Mubarak},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2017}
}"""

#: tags every BrainVis repository carries
HUB_TAGS = ("eeg", "bci", "brain-decoding", "brainvis")
#: the Hub has no EEG-to-image task; the pipeline is a Stable Diffusion derivative whose text
#: conditioning is replaced by an EEG embedding, so it is filed under text-to-image.
PIPELINE_TAG = "text-to-image"
SD_LICENSE = "creativeml-openrail-m"
CODE_LICENSE = "apache-2.0"

ETHICS_TEXT = (
    "EEG recordings are personal, health-related data: they can reveal medical conditions and must "
    "only be collected with informed consent and processed under the applicable data-protection "
    "law (e.g. the GDPR). Do not use this model on recordings of people who have not agreed to it.\n\n"
    "The output is not mind-reading. The EEG encoder predicts one of a fixed set of 40 ImageNet "
    "classes and a text-like embedding; the diffusion model then draws a plausible picture of that "
    "class. The images show what Stable Diffusion associates with the predicted class, not what the "
    "person saw or imagined; a wrong class prediction gives a confident-looking, wrong picture. "
    "The method was trained on one lab's recordings of 6 subjects viewing images in a block design, "
    "and does not generalise to other people, headsets or stimuli without retraining."
)

# metric key (as written by the demo / `brainvis evaluate`) -> (display name, Hub metric id)
METRIC_NAMES: dict[str, tuple[str, str]] = {
    "eeg_top1_accuracy": ("EEG classification top-1 accuracy", "accuracy"),
    "eeg_top3_accuracy": ("EEG classification top-3 accuracy", "accuracy"),
    "eeg_top5_accuracy": ("EEG classification top-5 accuracy", "accuracy"),
    "eeg_macro_f1": ("EEG classification macro-F1", "f1"),
    "ga_50way_top1": ("Generation accuracy (50-way top-1)", "generation-accuracy"),
    "inception_score": ("Inception Score", "inception-score"),
    "inception_score_std": ("Inception Score (std)", "inception-score"),
    "fid": ("FID", "fid"),
    "ssim": ("SSIM", "ssim"),
}


def _api():
    from huggingface_hub import HfApi

    from . import __version__

    return HfApi(library_name="brainvis-hf", library_version=__version__)


# --------------------------------------------------------------------------------------------
# reading a training run


def read_training_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Hyper-parameters and results of a ``brainvis train`` run folder, for model cards.

    Reads ``trainer_state.json`` (steps, epochs, batch size, best metric), ``metrics.json`` (its
    numbers, and its ``hyperparameters`` mapping when present) and ``config.json`` (the model's
    architecture and sizes). Missing files are skipped; the result says which were read.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"Training run folder {run_dir} does not exist.")
    info: dict[str, Any] = {"run_dir": str(run_dir), "hyperparameters": {}, "results": {}, "files": []}
    state_path = run_dir / "trainer_state.json"
    if state_path.is_file():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        info["files"].append(state_path.name)
        for key in ("global_step", "num_train_epochs", "max_steps", "train_batch_size", "logging_steps", "eval_steps"):
            if state.get(key) is not None:
                info["hyperparameters"][key] = state[key]
        for key in ("best_metric", "best_global_step"):
            if state.get(key) is not None:
                info["results"][key] = state[key]
        history = state.get("log_history") or []
        learning_rates = [h["learning_rate"] for h in history if "learning_rate" in h]
        if learning_rates:
            info["hyperparameters"]["peak_learning_rate"] = max(learning_rates)
        info["log_history"] = history
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        info["files"].append(metrics_path.name)
        for key, value in _flatten(metrics).items():
            if key.startswith("hyperparameters."):
                info["hyperparameters"][key.split(".", 1)[1]] = value
            elif isinstance(value, (int, float, str, bool)) and not isinstance(value, bool):
                info["results"][key] = value
    config_path = run_dir / "config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        info["files"].append(config_path.name)
        info["architectures"] = config.get("architectures") or []
        info["model_type"] = config.get("model_type")
    return info


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, prefix=f"{name}."))
        elif not isinstance(value, (list, tuple)):
            flat[name] = value
    return flat


# --------------------------------------------------------------------------------------------
# the pipeline's model card


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return "\n".join(lines)


def pipeline_model_card(
    *,
    metrics: Mapping[str, float],
    training_runs: Mapping[str, str | os.PathLike | Mapping[str, Any]] = (),
    model_name: str = "BrainVis EEG-to-image pipeline",
    repo_id: str | None = None,
    base_model: str | None = None,
    datasets: Sequence[str] = (),
    dataset_name: str = "EEG-ImageNet (40 classes)",
    generation_settings: Mapping[str, Any] | None = None,
    random_weights: bool = False,
    extra_tags: Sequence[str] = (),
    notes: Sequence[str] = (),
):
    """The model card of a ``BrainVisPipeline`` (a :class:`huggingface_hub.ModelCard`).

    Args:
        metrics: the run's evaluation results, keyed like :data:`METRIC_NAMES` (other keys are
            listed in the table under their own name); they go into the YAML ``model-index``.
        training_runs: stage name -> run folder (read with :func:`read_training_run`) or an
            already read mapping with ``hyperparameters`` and ``results``.
        model_name: the card's title and ``model-index`` name.
        repo_id: where the pipeline lives on the Hub (used in the usage snippet).
        base_model: the Stable Diffusion repository the UNet/VAE/text encoder come from (None for
            components built in code).
        datasets: Hub data set ids the EEG encoder was trained on.
        dataset_name: readable name of the training data.
        generation_settings: the generation parameters of the evaluation (steps, strength...).
        random_weights: the diffusion components are tiny random ones (the card says so).
        extra_tags: more tags.
        notes: extra paragraphs for the "Limitations" section.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    runs = {
        stage: (dict(run) if isinstance(run, Mapping) else read_training_run(run))
        for stage, run in dict(training_runs).items()
    }
    tags = list(dict.fromkeys([*HUB_TAGS, "diffusers", "stable-diffusion", "eeg-to-image", *extra_tags]))
    if random_weights:
        tags.append("random-weights")
    eval_results = []
    metric_ids = []
    for key, value in metrics.items():
        if value is None or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            continue
        display, metric_id = METRIC_NAMES.get(key, (key, key))
        metric_ids.append(metric_id)
        eval_results.append(
            EvalResult(
                task_type=PIPELINE_TAG,
                task_name="EEG-to-image reconstruction",
                dataset_type=datasets[0] if datasets else "eeg-imagenet",
                dataset_name=dataset_name,
                dataset_split="test",
                metric_type=metric_id,
                metric_name=display,
                metric_value=float(value),
            )
        )
    card_data = ModelCardData(
        model_name=model_name,
        library_name="diffusers",
        pipeline_tag=PIPELINE_TAG,
        tags=tags,
        datasets=list(datasets) or None,
        metrics=list(dict.fromkeys(metric_ids)) or None,
        base_model=base_model,
        license=SD_LICENSE if base_model else CODE_LICENSE,
        eval_results=eval_results or None,
    )
    usage_repo = repo_id or "path/to/pipeline"
    sections = [f"# {model_name}", ""]
    sections.append(
        "A cascaded EEG -> image `DiffusionPipeline` (BrainVis, Fu et al., ICASSP 2025): the EEG encoder "
        "(`BrainVisForCLIPAlignment`) turns a 128-channel EEG recording into a class prediction and a "
        "77-token prompt embedding; Stable Diffusion's UNet draws a first image from that embedding (stage 1), "
        "then refines it with img2img, prompted with the predicted class name (stage 2)."
    )
    if random_weights:
        sections += [
            "",
            "> **These diffusion weights are tiny and random** (built in code for tests and the CPU demo): "
            "the images this pipeline makes are noise. Real images need the Stable Diffusion v1.5 weights: "
            "`brainvis demo --sd-model REPO` or `brainvis_hf.pipelines` assembly with a Stable Diffusion "
            "folder or repository.",
        ]
    sections += [
        "",
        "## How to use",
        "",
        "```python",
        "import torch",
        "from brainvis_hf import BrainVisPipeline",
        "",
        f'pipe = BrainVisPipeline.from_pretrained("{usage_repo}")',
        "eeg = torch.randn(1, 128, 440)  # one recording: channels x samples (1 kHz, 20-460 ms)",
        "out = pipe(eeg, num_images_per_eeg=4, generator=torch.Generator().manual_seed(0))",
        "out.images[0].save('reconstruction.png'); print(out.predicted_labels)",
        "```",
        "",
        "Command line: `brainvis generate --model " + usage_repo + " --eeg INPUT --output DIR`.",
        "",
        "## Intended use",
        "",
        "Research on decoding visual information from EEG: reproducing and extending BrainVis, comparing "
        "EEG encoders and generation settings with the metrics of this line of work. Not for clinical, "
        "forensic, surveillance or any decision-making use about a person.",
        "",
        "## Training data and procedure",
        "",
        f"Training data: {dataset_name}" + (f" (`{'`, `'.join(datasets)}`)" if datasets else "") + ".",
        "The EEG encoder is trained in stages: latent masked modelling of the time encoder, the frequency "
        "encoder, the joint time-frequency classifier, then the CLIP alignment with semantic interpolation "
        "(coarse target: CLIP text embedding of the class name; fine target: of an image caption).",
        "",
    ]
    if runs:
        keys = sorted({k for run in runs.values() for k in run.get("hyperparameters", {})})
        rows = [[stage, *[run.get("hyperparameters", {}).get(k, "") for k in keys]] for stage, run in runs.items()]
        sections += ["Hyper-parameters (read from the training runs):", "", _markdown_table(["stage", *keys], rows), ""]
        result_keys = sorted({k for run in runs.values() for k in run.get("results", {})})
        if result_keys:
            rows = [[stage, *[run.get("results", {}).get(k, "") for k in result_keys]] for stage, run in runs.items()]
            sections += ["Results of each stage:", "", _markdown_table(["stage", *result_keys], rows), ""]
    if generation_settings:
        rows = [[k, v] for k, v in generation_settings.items()]
        sections += ["Generation settings of the evaluation:", "", _markdown_table(["setting", "value"], rows), ""]
    sections += ["## Evaluation", ""]
    metric_rows = [
        [METRIC_NAMES.get(k, (k, k))[0], v]
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and v is not None
    ]
    if metric_rows:
        sections += [f"On the test split of {dataset_name}:", "", _markdown_table(["metric", "value"], metric_rows), ""]
    else:
        sections += ["Not evaluated yet.", ""]
    sections += ["## Limitations and ethics", "", ETHICS_TEXT, ""]
    sections += [*notes, ""] if notes else []
    sections += [
        "## Citation",
        "",
        "```bibtex",
        BRAINVIS_CITATION,
        "",
        EEG_IMAGENET_CITATION,
        "```",
        "",
    ]
    content = f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(sections)
    return ModelCard(content)


def render_card_html(card) -> str:
    """The card's Markdown body rendered to HTML (the ``markdown`` package, tables + code)."""
    try:
        import markdown
    except ImportError as err:  # pragma: no cover - markdown is a test dependency
        raise ImportError("render_card_html needs the `markdown` package: pip install markdown") from err
    return markdown.markdown(card.text, extensions=["tables", "fenced_code"])


# --------------------------------------------------------------------------------------------
# pushing


def push_folder_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool | None = None,
    token: str | bool | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    ignore_patterns: Sequence[str] = ("checkpoint-*", "checkpoint-*/**", "__pycache__/**"),
):
    """Create ``repo_id`` (if needed) and upload every file of ``folder`` in one commit.

    Uses :meth:`huggingface_hub.HfApi.create_repo` and :meth:`~huggingface_hub.HfApi.upload_folder`;
    intermediate ``checkpoint-*`` folders of training runs are left out.

    Returns:
        The :class:`huggingface_hub.CommitInfo` of the upload.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Cannot push {folder}: it is not a folder.")
    if not (folder / "README.md").is_file():
        raise FileNotFoundError(f"Cannot push {folder}: it has no README.md (model or dataset card).")
    api = _api()
    repo_id = api.create_repo(repo_id, repo_type=repo_type, private=private, token=token, exist_ok=True).repo_id
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type=repo_type,
        token=token,
        commit_message=commit_message or f"Upload {folder.name} with brainvis-hf",
        revision=revision,
        create_pr=create_pr,
        ignore_patterns=list(ignore_patterns),
    )


def push_model_to_hub(model, repo_id: str, *, card=None, **kwargs: Any):
    """Save a ``transformers`` model (with its code, when registered for the Auto classes) and its
    card, and push them (see :func:`push_folder_to_hub` for ``kwargs``)."""
    with tempfile.TemporaryDirectory(prefix="brainvis-push-") as tmp:
        model.save_pretrained(tmp)
        _write_card(card, tmp, default=f"# {type(model).__name__}\n\nA BrainVis EEG model.")
        return push_folder_to_hub(tmp, repo_id, **kwargs)


def push_pipeline_to_hub(pipeline, repo_id: str, *, card=None, **kwargs: Any):
    """Save a ``BrainVisPipeline`` (safetensors) and its card, and push them in one commit."""
    with tempfile.TemporaryDirectory(prefix="brainvis-push-") as tmp:
        pipeline.save_pretrained(tmp, safe_serialization=True)
        _write_card(card, tmp, default=None)
        return push_folder_to_hub(tmp, repo_id, **kwargs)


def push_dataset_to_hub(data_dir: str | os.PathLike, repo_id: str, **kwargs: Any):
    """Push a prepared data set folder (``brainvis data prepare``) as a Hub data set repository.

    The folder is uploaded as is: its ``README.md`` (dataset card with the YAML ``configs``), the
    Parquet shards under ``data/`` and, when present, ``clip_targets/``.
    """
    data_dir = Path(data_dir)
    shards = sorted((data_dir / "data").glob("*.parquet")) if (data_dir / "data").is_dir() else []
    if not shards:
        raise FileNotFoundError(
            f"{data_dir} is not a prepared data set: expected Parquet shards under {data_dir / 'data'} "
            "(write one with `brainvis data prepare`)."
        )
    return push_folder_to_hub(data_dir, repo_id, repo_type="dataset", **kwargs)


def _write_card(card, folder: str | os.PathLike, default: str | None) -> None:
    path = Path(folder) / "README.md"
    if card is not None:
        text = card if isinstance(card, str) else str(card)
        path.write_text(text, encoding="utf-8")
    elif not path.is_file():
        if default is None:
            raise ValueError(f"No model card given and none was saved in {folder}; pass card=...")
        path.write_text(default + "\n", encoding="utf-8")


__all__ = [
    "BRAINVIS_CITATION",
    "EEG_IMAGENET_CITATION",
    "ETHICS_TEXT",
    "HUB_TAGS",
    "METRIC_NAMES",
    "pipeline_model_card",
    "push_dataset_to_hub",
    "push_folder_to_hub",
    "push_model_to_hub",
    "push_pipeline_to_hub",
    "read_training_run",
    "render_card_html",
]

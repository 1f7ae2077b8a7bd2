"""Hub readiness of the pipeline: its model card, and push helpers for objects in memory.

The pipeline card (:func:`pipeline_model_card`) is built with :func:`brainvis_hf.hub.build_model_card`
(the layout of the encoder cards): YAML metadata (library, task, tags, data sets, base model,
licence, the run's metrics as ``model-index`` results) and sections for intended use, training
data and procedure (the hyper-parameters read from the training runs), evaluation, limitations
and ethics, how to use, citation.

Every upload goes through ``huggingface_hub``'s own code path (``HfApi.create_repo`` +
``HfApi.upload_folder``, via :func:`brainvis_hf.hub.push_folder_to_hub`): the helpers save the
object into a folder, write the model card (``README.md``) into it and upload that folder in one
commit, so what lands on the Hub is exactly what ``from_pretrained`` reads locally. (The
``push_to_hub`` methods of ``transformers`` / ``diffusers`` objects also work, but they replace
``README.md`` by a generic card.) Prepared data sets: :func:`brainvis_hf.data.prepare.push_prepared_dataset`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from .hub import DEFAULT_LIMITATIONS, build_model_card, push_folder_to_hub
from .hub.citations import BRAINVIS_CITATION, EEG_IMAGENET_CITATION, join_citations

#: the Hub has no EEG-to-image task; the pipeline is a Stable Diffusion derivative whose text
#: conditioning is replaced by an EEG embedding, so it is filed under text-to-image.
PIPELINE_TAG = "text-to-image"
SD_LICENSE = "creativeml-openrail-m"
CODE_LICENSE = "apache-2.0"

PIPELINE_INTENDED_USE = """Research on decoding visual information from EEG: reproducing and extending BrainVis, comparing
EEG encoders and generation settings with the metrics of this line of work (`brainvis evaluate`).
Not for clinical, forensic, surveillance or any other decision about a person."""

IMAGE_LIMITATIONS = """- The images are not what the person saw. The diffusion model draws what it associates with the
  predicted class and the EEG prompt embedding; a wrong class prediction gives a confident-looking,
  wrong picture, and the generated content reflects Stable Diffusion's training data and biases."""

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


# --------------------------------------------------------------------------------------------
# reading a training run


def read_training_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Hyper-parameters and results of a ``brainvis train`` run folder, for model cards.

    Reads its ``metrics.json`` (``stage``, ``hyperparameters``, the ``evaluation`` of each split,
    ``best_metric``, the linear-probe history) and, for the number of optimizer steps,
    ``trainer_state.json``.

    Returns:
        ``{"stage", "run_dir", "hyperparameters": {...}, "results": {"test_accuracy": ...}}``.
    """
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a brainvis train run folder: it has no metrics.json.")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    hyper = dict(metrics.get("hyperparameters") or {})
    results: dict[str, Any] = {}
    for split, values in (metrics.get("evaluation") or {}).items():
        for key, value in values.items():
            if isinstance(value, (int, float)) and not key.endswith(("runtime", "per_second", "epoch")):
                results[f"{split}_{key}"] = value
    if metrics.get("best_metric") is not None:
        results[f"best_validation_{metrics.get('metric_for_best_model') or 'metric'}"] = metrics["best_metric"]
    if metrics.get("linear_probe"):
        results["linear_probe_accuracy"] = metrics["linear_probe"][-1].get("linear_probe_accuracy")
    state_path = run_dir / "trainer_state.json"
    if state_path.is_file():
        hyper["optimizer_steps"] = json.loads(state_path.read_text(encoding="utf-8")).get("global_step")
    return {"stage": metrics.get("stage"), "run_dir": str(run_dir), "hyperparameters": hyper, "results": results}


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


def _stage_tables(runs: Mapping[str, Mapping[str, Any]]) -> str:
    """Hyper-parameters and results of every stage, one row per stage."""
    parts = []
    keys = [k for k in _HYPER_KEYS if any(k in run.get("hyperparameters", {}) for run in runs.values())]
    if keys:
        rows = [[stage, *[run.get("hyperparameters", {}).get(k, "") for k in keys]] for stage, run in runs.items()]
        parts += ["Hyper-parameters of each stage (read from its run folder):", "", _markdown_table(["stage", *keys], rows)]
    result_keys = [k for k in _RESULT_KEYS if any(k in run.get("results", {}) for run in runs.values())]
    if result_keys:
        rows = [[stage, *[run.get("results", {}).get(k, "") for k in result_keys]] for stage, run in runs.items()]
        parts += ["", "Results of each stage (test split unless named):", "", _markdown_table(["stage", *result_keys], rows)]
    return "\n".join(parts)


_RESULT_KEYS = (
    "test_accuracy", "test_top3_accuracy", "test_macro_f1", "test_cosine", "test_loss", "test_codebook_hit_rate",
    "linear_probe_accuracy",
)
_HYPER_KEYS = (
    "learning_rate", "optim", "weight_decay", "lr_scheduler_type", "per_device_train_batch_size",
    "effective_batch_size", "num_train_epochs", "max_steps", "optimizer_steps", "seed", "metric_for_best_model",
)


def pipeline_model_card(
    *,
    metrics: Mapping[str, float | None],
    training_runs: Mapping[str, str | os.PathLike | Mapping[str, Any]] | None = None,
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

    Built with :func:`brainvis_hf.hub.build_model_card` (the same layout as the encoder cards):
    YAML ``library_name: diffusers``, ``pipeline_tag`` (:data:`PIPELINE_TAG`), the BrainVis tags
    plus ``diffusers`` / ``stable-diffusion``, data sets, ``base_model`` (the Stable Diffusion
    repository), licence (``creativeml-openrail-m`` with SD weights, else ``apache-2.0``) and the
    metrics as ``model-index`` results on the test split.

    Args:
        metrics: the run's evaluation results, keyed like :data:`METRIC_NAMES`; ``None`` values
            (not computed) are left out.
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
        notes: extra paragraphs for the limitations section.
    """

    runs = {
        stage: (dict(run) if isinstance(run, Mapping) else read_training_run(run))
        for stage, run in dict(training_runs or {}).items()
    }
    values = {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
    }
    tags = ["diffusers", "stable-diffusion", "eeg-to-image", *extra_tags]
    if random_weights:
        tags.append("random-weights")
    summary = (
        "A cascaded EEG -> image `DiffusionPipeline` (BrainVis, Fu et al., ICASSP 2025): the EEG encoder "
        "(`BrainVisForCLIPAlignment`) turns an EEG recording into a class prediction and a prompt embedding; "
        "Stable Diffusion's UNet draws a first image from that embedding (stage 1), then refines it with "
        "img2img, prompted with the predicted class name (stage 2)."
    )
    if random_weights:
        summary += (
            "\n\n> **The diffusion weights here are tiny and random** (built in code for tests and the CPU "
            "demo): the images this pipeline makes are noise. Real images need the Stable Diffusion v1.5 "
            "weights: `brainvis demo --sd-model REPO`, or `brainvis_hf.pipelines.assemble_brainvis_pipeline` "
            "with a Stable Diffusion folder or repository."
        )
    usage_repo = repo_id or "path/to/pipeline"
    usage = "\n".join(
        [
            "```python",
            "import torch",
            "from brainvis_hf import BrainVisPipeline",
            "",
            f'pipe = BrainVisPipeline.from_pretrained("{usage_repo}")',
            "eeg = torch.randn(1, 128, 440)  # one recording: channels x samples (1 kHz, 20-460 ms)",
            "out = pipe(eeg, num_images_per_eeg=4, generator=torch.Generator().manual_seed(0))",
            'out.images[0].save("reconstruction.png"); print(out.predicted_labels)',
            "```",
            "",
            f"Command line: `brainvis generate --model {usage_repo} --eeg INPUT --output DIR`.",
        ]
    )
    procedure = [
        "The EEG encoder is trained in stages with `brainvis train`: latent masked modelling of the time "
        "encoder, its fine-tuning, the frequency encoder, the joint time-frequency classifier, then the CLIP "
        "alignment with semantic interpolation (coarse target: CLIP text embedding of the class name; fine "
        "target: of an image caption). The diffusion components are not trained."
    ]
    if runs:
        procedure += ["", _stage_tables(runs)]
    if generation_settings:
        procedure += [
            "",
            "Generation settings of the evaluation:",
            "",
            _markdown_table(["setting", "value"], [[k, v] for k, v in generation_settings.items()]),
        ]
    limitations = DEFAULT_LIMITATIONS + "\n" + IMAGE_LIMITATIONS
    if notes:
        limitations += "\n" + "\n".join(f"- {note}" for note in notes)
    return build_model_card(
        title=model_name,
        summary=summary,
        model_name=model_name,
        tags=tags,
        datasets=datasets,
        metrics={"test": values} if values else None,
        training_data=f"{dataset_name}" + (f" (`{'`, `'.join(datasets)}`)" if datasets else "") + ".",
        training_procedure="\n".join(procedure),
        intended_use=PIPELINE_INTENDED_USE,
        limitations=limitations,
        base_model=base_model,
        license=SD_LICENSE if base_model else CODE_LICENSE,
        library_name="diffusers",
        pipeline_tag=PIPELINE_TAG,
        task_type=PIPELINE_TAG,
        dataset_name=dataset_name,
        dataset_type=datasets[0] if datasets else "eeg-imagenet",
        extra_sections={"How to use": usage},
        citation=join_citations(BRAINVIS_CITATION, EEG_IMAGENET_CITATION),
    )


def render_card_html(card) -> str:
    """The card's Markdown body rendered to HTML (the ``markdown`` package, tables + code)."""
    try:
        import markdown
    except ImportError as err:  # pragma: no cover - markdown is a test dependency
        raise ImportError("render_card_html needs the `markdown` package: pip install markdown") from err
    return markdown.markdown(card.text, extensions=["tables", "fenced_code"])


# --------------------------------------------------------------------------------------------
# pushing (through brainvis_hf.hub.push_folder_to_hub: HfApi.create_repo + HfApi.upload_folder)


def push_model_to_hub(model, repo_id: str, *, card=None, **kwargs: Any) -> str:
    """Save a BrainVis ``transformers`` model (weights, config with ``auto_map``, modeling code)
    and its card in a temporary folder and upload it as one commit; returns the commit URL.

    ``card``: a ``ModelCard`` or Markdown text (default: a one-line card naming the class).
    ``kwargs`` go to :func:`brainvis_hf.hub.push_folder_to_hub` (``private``, ``token``,
    ``commit_message``).
    """
    with tempfile.TemporaryDirectory(prefix="brainvis-push-") as tmp:
        model.save_pretrained(tmp)
        _write_card(card, tmp, default=f"# {type(model).__name__}\n\nA BrainVis EEG model (brainvis-hf).")
        return push_folder_to_hub(tmp, repo_id, **kwargs)


def push_pipeline_to_hub(pipeline, repo_id: str, *, card=None, **kwargs: Any) -> str:
    """Save a ``BrainVisPipeline`` (safetensors, every component) with its card and upload it as
    one commit; returns the commit URL. A pipeline folder already saved with a card (e.g. the
    demo's ``pipeline/``) can be pushed as is with :func:`brainvis_hf.hub.push_folder_to_hub`."""

    with tempfile.TemporaryDirectory(prefix="brainvis-push-") as tmp:
        pipeline.save_pretrained(tmp, safe_serialization=True)
        _write_card(card, tmp, default=None)
        kwargs.setdefault("commit_message", "Upload BrainVis pipeline")
        return push_folder_to_hub(tmp, repo_id, **kwargs)


def _write_card(card, folder: str | os.PathLike, default: str | None) -> None:
    path = Path(folder) / "README.md"
    if card is not None:
        path.write_text(card if isinstance(card, str) else str(card), encoding="utf-8")
    elif not path.is_file():
        if default is None:
            raise ValueError(f"No model card given and none was saved in {folder}; pass card=pipeline_model_card(...).")
        path.write_text(default + "\n", encoding="utf-8")


__all__ = [
    "EEG_IMAGENET_CITATION",
    "IMAGE_LIMITATIONS",
    "METRIC_NAMES",
    "PIPELINE_TAG",
    "pipeline_model_card",
    "push_model_to_hub",
    "push_pipeline_to_hub",
    "read_training_run",
    "render_card_html",
]

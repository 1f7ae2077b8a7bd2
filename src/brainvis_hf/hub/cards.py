"""Model cards of BrainVis artefacts: one builder, the training-run card and the pipeline card.

:func:`build_model_card` is generic: YAML metadata (``library_name``, tags, data sets, metrics
with values, license), then the sections intended use, training data, training procedure
(hyper-parameters), evaluation table, limitations and ethics, citation. :func:`training_run_card`
fills it from a ``brainvis train`` run folder, :func:`pipeline_model_card` for a
``BrainVisPipeline`` (hyper-parameters and results of every stage, read with
:func:`read_training_run`). Tables and numbers go through :func:`markdown_table` /
:func:`format_value`; citations come from :mod:`brainvis_hf.hub.citations`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..training.stages import STAGE_REGISTRY
from .citations import BRAINVIS_CITATION, EEG_IMAGENET_CITATION, join_citations

BRAINVIS_TAGS: tuple[str, ...] = ("eeg", "bci", "brain-decoding", "brainvis")

DEFAULT_LIMITATIONS = """- EEG is personal, health-related data. Recordings can identify people and reveal medical
  information; collect and share them only with informed consent and under the applicable data
  protection rules (e.g. GDPR), and do not upload subjects' recordings with a model.
- This is **not mind reading**. The model maps a ~0.5 s EEG recording of a person *looking at*
  an image to one of a fixed set of classes (40 for EEG-ImageNet) and to a text-embedding-like
  vector; it cannot recover thoughts, imagined content or anything outside its training classes.
- Accuracy is modest (the reference reports about 45% top-1 over 40 classes on EEG-ImageNet) and
  depends on the subject, the recording setup and the preprocessing (5-95 Hz band-pass,
  440 samples at 1 kHz, 128 channels); results do not transfer to other headsets or protocols
  without re-training.
- EEG-ImageNet has known confounds (block-design recordings, temporal drift); high accuracies on
  it may partly reflect them rather than visual decoding.
- Do not use the model for decisions about people (diagnosis, hiring, surveillance, lie
  detection)."""

DEFAULT_INTENDED_USE = """Research on decoding visual stimuli from EEG (brain-computer interfaces, neuroscience), as part
of the BrainVis EEG -> image reconstruction pipeline (`brainvis_hf`), and as a baseline for new
EEG encoders. Load it with `transformers.AutoModel.from_pretrained` after `import brainvis_hf`
(which registers the BrainVis classes)."""

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


def format_value(value: Any) -> str:
    """A value as card text: floats to 4 significant digits (``nan``/``inf`` as such), lists joined."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table (``|`` in cells escaped)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(format_value(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def reportable_metrics(values: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers of a Trainer evaluation worth a card (not runtimes, throughputs or the epoch)."""
    return {
        k: v for k, v in values.items()
        if isinstance(v, (int, float)) and not k.endswith(("runtime", "per_second", "epoch"))
    }


# --------------------------------------------------------------------------------------------
# the generic card and the training-run card


def build_model_card(
    *,
    title: str,
    summary: str,
    model_name: str | None = None,
    tags: Sequence[str] = (),
    datasets: Sequence[str] = (),
    metrics: Mapping[str, Mapping[str, float]] | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    training_data: str = "",
    training_procedure: str = "",
    intended_use: str = DEFAULT_INTENDED_USE,
    limitations: str = DEFAULT_LIMITATIONS,
    base_model: str | Sequence[str] | None = None,
    license: str = "apache-2.0",
    library_name: str = "transformers",
    pipeline_tag: str | None = None,
    task_type: str = "eeg-classification",
    dataset_name: str = "EEG-ImageNet",
    dataset_type: str = "eeg-imagenet",
    extra_sections: Mapping[str, str] | None = None,
    citation: str = BRAINVIS_CITATION,
):
    """A ``huggingface_hub.ModelCard`` with BrainVis metadata and sections.

    Args:
        title: the card's heading.
        summary: a paragraph under the heading.
        model_name: name used in the ``model-index`` (defaults to ``title``).
        tags: extra tags (the BrainVis tags are always included).
        datasets: data set ids for the metadata.
        metrics: ``{split: {metric: value}}``; each value becomes a ``model-index`` result and a
            row of the evaluation table.
        hyperparameters: listed under "Training procedure" (name -> value).
        training_data, training_procedure: free text of those sections.
        intended_use, limitations: section texts (defaults suit every BrainVis model).
        base_model: the model(s) this one was trained from, if on the Hub.
        license, library_name, pipeline_tag: metadata fields.
        task_type, dataset_name, dataset_type: ``model-index`` descriptors.
        extra_sections: more ``{heading: text}`` sections, placed before the citation.
        citation: BibTeX of the method.
    """
    metrics = metrics or {}
    eval_results = [
        EvalResult(
            task_type=task_type,
            dataset_type=dataset_type,
            dataset_name=dataset_name,
            dataset_split=split,
            metric_type=name,
            metric_name=f"{name} ({split})",
            metric_value=round(float(value), 6),
        )
        for split, values in metrics.items()
        for name, value in values.items()
        if isinstance(value, (int, float))
    ]
    all_tags = list(dict.fromkeys([*BRAINVIS_TAGS, *tags]))
    metric_names = sorted({name for values in metrics.values() for name in values})
    card_data = ModelCardData(
        library_name=library_name,
        license=license,
        tags=all_tags,
        datasets=list(datasets) or None,
        metrics=metric_names or None,
        base_model=list(base_model) if isinstance(base_model, (list, tuple)) else base_model,
        pipeline_tag=pipeline_tag,
        model_name=model_name or title,
        eval_results=eval_results or None,
    )
    sections = [f"# {title}", summary.strip(), "## Intended use", intended_use.strip()]
    if training_data:
        sections += ["## Training data", training_data.strip()]
    procedure = training_procedure.strip()
    if hyperparameters:
        table = markdown_table(("hyper-parameter", "value"), sorted(hyperparameters.items()))
        procedure = f"{procedure}\n\n{table}" if procedure else table
    if procedure:
        sections += ["## Training procedure", procedure]
    if metrics:
        rows = [(split, name, value) for split, values in metrics.items() for name, value in values.items()]
        sections += ["## Evaluation", markdown_table(("split", "metric", "value"), rows)]
    sections += ["## Limitations and ethics", limitations.strip()]
    for heading, text in (extra_sections or {}).items():
        sections += [f"## {heading}", text.strip()]
    sections += ["## Citation", f"```bibtex\n{citation.strip()}\n```"]
    content = f"---\n{card_data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n"
    return ModelCard(content)


def training_run_card(run_dir: str | os.PathLike, metrics: Mapping[str, Any] | None = None):
    """The model card of a ``brainvis train`` run folder (reads its ``metrics.json``)."""
    run_dir = Path(run_dir)
    if metrics is None:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    stage = metrics["stage"]
    spec = STAGE_REGISTRY.get(stage)  # title, summary and task of the stage's card
    evaluation = {split: reportable_metrics(values) for split, values in metrics.get("evaluation", {}).items()}
    protocol = metrics.get("protocol", "validation")
    if protocol == "paper":
        protocol_text = (
            "**Paper protocol**: trained on train + validation, best epoch selected on the **test** split "
            "(as in the original code). Test figures are therefore optimistic and not comparable with a "
            "held-out evaluation."
        )
    else:
        protocol_text = "Trained on the train split; the best epoch was selected on the validation split; " \
            "the test split was used only for the final evaluation."
    data = metrics.get("data", {})
    training_data = (
        f"Prepared EEG data set `{data.get('name', data.get('path', 'unknown'))}`: "
        f"{data.get('num_train', '?')} training, {data.get('num_validation', '?')} validation and "
        f"{data.get('num_test', '?')} test recordings of {data.get('num_channels', '?')} channels x "
        f"{data.get('num_samples', '?')} samples, {data.get('num_labels', '?')} classes."
    )
    if (data.get("splits") or {}).get("sha256"):
        training_data += f" Split content hash (SHA-256 of the row identities, docs/protocols.md): `{data['splits']['sha256']}`."
    procedure = (
        f"Stage `{stage}` of `brainvis train` (preset `{metrics.get('preset')}`, seed {metrics.get('seed')}), "
        f"with `transformers.Trainer`. {protocol_text}"
    )
    if metrics.get("lora"):
        procedure += f" Parameter-efficient fine-tuning with LoRA ({metrics['lora']})."
    if metrics.get("init"):
        procedure += " Initialised from: " + ", ".join(f"`{p}`" for p in metrics["init"]) + "."
    if metrics.get("linear_probe"):
        last = metrics["linear_probe"][-1]
        procedure += f" Linear-probe accuracy at epoch {last['epoch']:g}: {last['linear_probe_accuracy']:.3f}."
    if metrics.get("recipe"):
        options = ", ".join(f"`{k}={v}`" for k, v in metrics["recipe"].items())
        procedure += f" Learning-recipe options (docs/training.md): {options}."
    procedure += linear_baseline_text(metrics)
    return build_model_card(
        title=spec.card_title if spec else f"BrainVis {stage}",
        summary=spec.card_summary if spec else "",
        tags=[f"brainvis-{stage}"],
        datasets=[d for d in [data.get("hub_id")] if d],
        metrics=evaluation,
        hyperparameters=metrics.get("hyperparameters", {}),
        training_data=training_data,
        training_procedure=procedure,
        task_type=spec.card_task_type if spec else "eeg-classification",
    )


def linear_baseline_text(metrics: Mapping[str, Any]) -> str:
    """The card's paragraph comparing the model with the run's linear baseline ("" without one).

    Every classification run fits a standardised logistic regression on the same split; a model
    well below it means a recipe problem, not hard data, so the card says so in bold.
    """
    baseline = metrics.get("linear_baseline") or {}
    splits = [s for s in ("validation", "test") if isinstance(baseline.get(s), Mapping)]
    if not splits:
        return ""
    rows = []
    for split in splits:
        model = (metrics.get("evaluation", {}).get(split) or {}).get("accuracy")
        linear = baseline[split]["accuracy"]
        rows.append(f"{split} {format_value(linear)}" + (f" (this model: {format_value(model)})" if model is not None else ""))
    text = f"\n\n**Linear baseline** ({baseline.get('model', 'standardised logistic regression')}): " + "; ".join(rows) + "."
    final = splits[-1]
    model = (metrics.get("evaluation", {}).get(final) or {}).get("accuracy")
    if model is not None and model < 0.8 * baseline[final]["accuracy"]:
        text += (f" **This model's {final} accuracy is below 0.8 x the linear baseline's: the deep model underperforms "
                 "a linear decoder on this data** (see docs/training.md, the learning recipe).")
    return text


# --------------------------------------------------------------------------------------------
# the pipeline's card


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
        results.update({f"{split}_{key}": value for key, value in reportable_metrics(values).items()})
    if metrics.get("best_metric") is not None:
        results[f"best_validation_{metrics.get('metric_for_best_model') or 'metric'}"] = metrics["best_metric"]
    if metrics.get("linear_probe"):
        results["linear_probe_accuracy"] = metrics["linear_probe"][-1].get("linear_probe_accuracy")
    state_path = run_dir / "trainer_state.json"
    if state_path.is_file():
        hyper["optimizer_steps"] = json.loads(state_path.read_text(encoding="utf-8")).get("global_step")
    return {"stage": metrics.get("stage"), "run_dir": str(run_dir), "hyperparameters": hyper, "results": results}


def _stage_tables(runs: Mapping[str, Mapping[str, Any]]) -> str:
    """Hyper-parameters and results of every stage, one row per stage."""
    parts = []
    keys = [k for k in _HYPER_KEYS if any(k in run.get("hyperparameters", {}) for run in runs.values())]
    if keys:
        rows = [[stage, *[run.get("hyperparameters", {}).get(k, "") for k in keys]] for stage, run in runs.items()]
        parts += ["Hyper-parameters of each stage (read from its run folder):", "", markdown_table(["stage", *keys], rows)]
    result_keys = [k for k in _RESULT_KEYS if any(k in run.get("results", {}) for run in runs.values())]
    if result_keys:
        rows = [[stage, *[run.get("results", {}).get(k, "") for k in result_keys]] for stage, run in runs.items()]
        parts += ["", "Results of each stage (test split unless named):", "", markdown_table(["stage", *result_keys], rows)]
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
            "out = pipe(eeg, num_images_per_prompt=4, generator=torch.Generator().manual_seed(0))",
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
            markdown_table(["setting", "value"], [[k, v] for k, v in generation_settings.items()]),
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

"""Model cards and Hub uploads for BrainVis artefacts.

:func:`build_model_card` is generic (any BrainVis model, pipeline or data set card can reuse it):
YAML metadata (``library_name``, tags, data sets, metrics with values, license), then the
sections intended use, training data, training procedure (hyper-parameters), evaluation table,
limitations and ethics, citation. :func:`training_run_card` fills it from a ``brainvis train``
run folder; :func:`push_folder_to_hub` uploads a folder through ``huggingface_hub``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .citations import BRAINVIS_CITATION

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


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format_value(v) for v in value)
    return str(value)


def _table(rows: Iterable[Sequence[Any]], header: Sequence[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_format_value(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


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
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

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
        table = _table(sorted(hyperparameters.items()), ("hyper-parameter", "value"))
        procedure = f"{procedure}\n\n{table}" if procedure else table
    if procedure:
        sections += ["## Training procedure", procedure]
    if metrics:
        rows = [(split, name, value) for split, values in metrics.items() for name, value in values.items()]
        sections += ["## Evaluation", _table(rows, ("split", "metric", "value"))]
    sections += ["## Limitations and ethics", limitations.strip()]
    for heading, text in (extra_sections or {}).items():
        sections += [f"## {heading}", text.strip()]
    sections += ["## Citation", f"```bibtex\n{citation.strip()}\n```"]
    content = f"---\n{card_data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n"
    return ModelCard(content)


_STAGE_TITLES = {
    "time-pretrain": "BrainVis time encoder (latent masked modeling pretraining)",
    "time-finetune": "BrainVis time encoder EEG classifier",
    "freq": "BrainVis frequency encoder EEG classifier",
    "timefreq": "BrainVis unified time-frequency EEG classifier",
    "align": "BrainVis EEG -> CLIP text-embedding alignment model",
}
_STAGE_SUMMARIES = {
    "time-pretrain": "Transformer EEG time encoder pretrained without labels by latent masked modeling (LMM): "
    "75% of the 4-sample units are masked and their momentum-encoder representations and codebook tokens are "
    "predicted from the visible ones.",
    "time-finetune": "The LMM-pretrained time encoder fine-tuned with a linear head to classify which of the "
    "image classes a subject was looking at.",
    "freq": "Frequency branch of BrainVis: |FFT| spectrum of each channel -> LSTM -> 128-d feature, with a "
    "linear classifier.",
    "timefreq": "The unified BrainVis classifier: pooled time-encoder features concatenated with the frequency "
    "feature, both branches fine-tuned jointly with a linear head.",
    "align": "The BrainVis alignment model: the unified classifier's features and logits mapped by a residual "
    "MLP to a 77 x D CLIP text-embedding sequence that conditions Stable Diffusion, trained towards both the "
    "class-name embedding and a BLIP-2 caption embedding (semantic interpolation).",
}


def training_run_card(run_dir: str | os.PathLike, metrics: Mapping[str, Any] | None = None):
    """The model card of a ``brainvis train`` run folder (reads its ``metrics.json``)."""
    run_dir = Path(run_dir)
    if metrics is None:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    stage = metrics["stage"]
    evaluation = {
        split: {k: v for k, v in values.items() if isinstance(v, (int, float)) and not k.endswith(
            ("runtime", "per_second", "epoch"))}
        for split, values in metrics.get("evaluation", {}).items()
    }
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
    return build_model_card(
        title=_STAGE_TITLES.get(stage, f"BrainVis {stage}"),
        summary=_STAGE_SUMMARIES.get(stage, ""),
        tags=[f"brainvis-{stage}"],
        datasets=[d for d in [data.get("hub_id")] if d],
        metrics=evaluation,
        hyperparameters=metrics.get("hyperparameters", {}),
        training_data=training_data,
        training_procedure=procedure,
        task_type="feature-extraction" if stage in ("time-pretrain", "align") else "eeg-classification",
    )


def push_folder_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload BrainVis model",
    ignore_patterns: Sequence[str] = ("checkpoint-*", "checkpoint-*/**", "*.tmp", "runs/**/*.lock"),
) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` (checkpoints excluded); returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        commit_message=commit_message,
        ignore_patterns=list(ignore_patterns),
        repo_type="model",
    )
    return str(getattr(info, "commit_url", info))

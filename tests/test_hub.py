"""Pushing every BrainVis artefact to the Hub, and the pipeline's model card.

The Hub cannot be reached here, so the uploads run through ``huggingface_hub``'s own code
(``HfApi.upload_folder``: file listing, ignore patterns, README validation hook, commit
operations; or ``transformers``' ``push_to_hub``) and are intercepted at the ``HfApi`` boundary:
``create_repo`` and ``create_commit`` are recorded instead of sent, ``_validate_yaml`` (a server
call) parses the YAML locally, and the single-commit path is used (``hf_xet``'s streamed upload
talks to the server directly, below ``HfApi``).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from huggingface_hub import DatasetCard, HfApi, ModelCard

import brainvis_hf.models as models
from brainvis_hf.hub import push_folder_to_hub, training_run_card
from brainvis_hf.hub_pipeline import pipeline_model_card, push_model_to_hub, push_pipeline_to_hub, render_card_html
from brainvis_hf.presets import preset_dir

MODELS = [
    ("time_encoder", "BrainVisTimeEncoderConfig", "BrainVisTimeEncoderModel"),
    ("time_encoder", "BrainVisTimeEncoderConfig", "BrainVisTimeEncoderForMaskedModeling"),
    ("time_encoder", "BrainVisTimeEncoderConfig", "BrainVisTimeEncoderForEEGClassification"),
    ("freq_encoder", "BrainVisFreqEncoderConfig", "BrainVisFreqEncoderModel"),
    ("freq_encoder", "BrainVisFreqEncoderConfig", "BrainVisFreqEncoderForEEGClassification"),
    ("timefreq", "BrainVisConfig", "BrainVisModel"),
    ("timefreq", "BrainVisConfig", "BrainVisForEEGClassification"),
    ("align", "BrainVisConfig", "BrainVisForCLIPAlignment"),
]


class HubRecorder:
    """What would have been sent to the Hub."""

    def __init__(self):
        self.repos: list[dict] = []
        self.commits: list[dict] = []
        self.validated_yaml: list[dict] = []

    @property
    def last(self) -> dict:
        assert self.commits, "nothing was committed"
        return self.commits[-1]


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub.hf_api as hf_api

    recorder = HubRecorder()

    def create_repo(self, repo_id, *, token=None, private=None, repo_type=None, exist_ok=False, **kwargs):
        recorder.repos.append({"repo_id": repo_id, "repo_type": repo_type or "model", "private": private})
        return SimpleNamespace(repo_id=repo_id, url=f"https://huggingface.co/{repo_id}")

    def create_commit(self, repo_id, operations, *, commit_message, repo_type=None, **kwargs):
        files = {}
        for op in operations:
            assert op.__class__.__name__ == "CommitOperationAdd", op
            source = op.path_or_fileobj
            files[op.path_in_repo] = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
        recorder.commits.append(
            {"repo_id": repo_id, "repo_type": repo_type or "model", "message": commit_message, "files": files}
        )
        return SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/{len(recorder.commits):040d}",
                               oid=f"{len(recorder.commits):040d}")

    def validate_yaml(self, content, *, repo_type=None, token=None):
        # the server-side check, done locally: the README must start with parseable YAML metadata
        assert content.startswith("---\n"), "README.md has no YAML header"
        header = content.split("---\n", 2)[1]
        recorder.validated_yaml.append({"repo_type": repo_type, "data": yaml.safe_load(header)})

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    monkeypatch.setattr(HfApi, "_validate_yaml", validate_yaml)
    monkeypatch.setattr(hf_api, "is_xet_available", lambda: False)
    return recorder


def _model(preset: str, config_name: str, class_name: str):
    config = getattr(models, config_name).from_pretrained(preset_dir(preset, "tiny"))
    torch.manual_seed(0)
    return getattr(models, class_name)(config).eval()


@pytest.mark.parametrize("preset,config_name,class_name", MODELS, ids=[m[2] for m in MODELS])
def test_push_model_with_card_uploads_weights_code_and_card(hub, preset, config_name, class_name):
    model = _model(preset, config_name, class_name)
    card = pipeline_model_card(metrics={"eeg_top1_accuracy": 0.5}, model_name=class_name)  # any card will do
    url = push_model_to_hub(model, "someone/brainvis-" + class_name.lower(), card=card)
    assert url.startswith("https://huggingface.co/someone/brainvis-") and "/commit/" in url
    assert hub.repos[-1]["repo_type"] == "model"
    files = hub.last["files"]
    assert {"config.json", "model.safetensors", "README.md", "configuration_brainvis.py"} <= set(files)
    config = json.loads(files["config.json"])
    module = config["auto_map"]["AutoModel"].rpartition(".")[0]
    assert config["auto_map"]["AutoModel"].endswith("." + class_name) and f"{module}.py" in files
    assert files["README.md"].decode() == str(card)
    assert hub.validated_yaml[-1]["data"]["library_name"] == "diffusers"
    # the uploaded weights are the model's
    from safetensors.torch import load

    state = load(files["model.safetensors"])
    for name, tensor in model.state_dict().items():
        if name in state:
            torch.testing.assert_close(state[name], tensor)
    assert len(state) > 0


def test_transformers_push_to_hub_path(hub):
    """transformers' own PushToHubMixin.push_to_hub (create_repo + create_commit) works offline."""
    model = _model("align", "BrainVisConfig", "BrainVisForCLIPAlignment")
    model.push_to_hub("someone/brainvis-align", commit_message="native push")
    commit = hub.last
    assert commit["message"] == "native push" and commit["repo_id"] == "someone/brainvis-align"
    assert {"config.json", "model.safetensors", "README.md", "modeling_brainvis.py"} <= set(commit["files"])
    assert "BrainVisForCLIPAlignment" in json.loads(commit["files"]["config.json"])["auto_map"]["AutoModel"]


def test_push_training_run_folder_skips_checkpoints(hub, tmp_path):
    run = tmp_path / "run"
    model = _model("freq_encoder", "BrainVisFreqEncoderConfig", "BrainVisFreqEncoderForEEGClassification")
    model.save_pretrained(run)
    model.save_pretrained(run / "checkpoint-5")
    metrics = {
        "stage": "freq", "preset": "tiny", "seed": 0,
        "data": {"name": "synthetic", "num_train": 10, "num_validation": 2, "num_test": 2, "num_channels": 128,
                 "num_samples": 440, "num_labels": 40},
        "hyperparameters": {"learning_rate": 0.003, "per_device_train_batch_size": 16},
        "evaluation": {"test": {"accuracy": 0.25, "loss": 3.5}},
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    training_run_card(run, metrics).save(str(run / "README.md"))
    push_folder_to_hub(run, "someone/freq", commit_message="run")
    files = set(hub.last["files"])
    assert {"README.md", "config.json", "model.safetensors", "metrics.json"} <= files
    assert not any(f.startswith("checkpoint-") for f in files)
    card = ModelCard(hub.last["files"]["README.md"].decode())
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results["accuracy"] == 0.25


def test_push_pipeline_uploads_every_component(hub, tiny_brainvis_pipeline):
    card = pipeline_model_card(metrics={"eeg_top1_accuracy": 0.125, "fid": 42.0}, random_weights=True)
    push_pipeline_to_hub(tiny_brainvis_pipeline, "someone/brainvis-pipeline", card=card)
    files = hub.last["files"]
    assert hub.last["message"] == "Upload BrainVis pipeline"
    index = json.loads(files["model_index.json"])
    assert index["_class_name"] == "BrainVisPipeline"
    for component in ("eeg_encoder", "vae", "text_encoder", "tokenizer", "unet", "scheduler"):
        assert component in index, component
        assert any(f.startswith(component + "/") for f in files), component
    for weights in ("eeg_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors",
                    "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert weights in files
    assert "eeg_encoder/modeling_brainvis.py" in files  # the encoder's remote code travels too
    assert not any(f.endswith((".bin", ".pkl", ".pt")) for f in files)
    assert files["README.md"].decode() == str(card)


def test_pipeline_push_requires_a_card(hub, tiny_brainvis_pipeline):
    with pytest.raises(ValueError, match="No model card given"):
        push_pipeline_to_hub(tiny_brainvis_pipeline, "someone/p")
    assert hub.commits == []


def test_push_prepared_dataset(hub, prepared_data_dir):
    from brainvis_hf.data.prepare import push_prepared_dataset

    push_prepared_dataset(prepared_data_dir, "someone/eeg-imagenet-synthetic")
    assert hub.repos[-1] == {"repo_id": "someone/eeg-imagenet-synthetic", "repo_type": "dataset", "private": False}
    commit = hub.last
    assert commit["repo_type"] == "dataset"
    files = set(commit["files"])
    assert "README.md" in files
    assert {f.split("-")[0] for f in files if f.startswith("data/")} == {"data/train", "data/validation", "data/test"}
    card = DatasetCard(commit["files"]["README.md"].decode())
    configs = card.data.to_dict()["configs"]
    assert configs[0]["data_files"][0]["path"].startswith("data/")
    assert hub.validated_yaml[-1]["repo_type"] == "dataset"


def test_pipeline_card_content_and_rendering():
    metrics = {"eeg_top1_accuracy": 0.4125, "ga_50way_top1": 0.25, "inception_score": 3.5, "fid": 120.5,
               "ssim": 0.21, "eeg_macro_f1": None}
    runs = {
        "timefreq": {"hyperparameters": {"learning_rate": 0.0005, "per_device_train_batch_size": 128},
                     "results": {"test_accuracy": 0.4125}},
        "align": {"hyperparameters": {"learning_rate": 0.0005, "num_train_epochs": 500},
                  "results": {"test_cosine": 0.71}},
    }
    card = pipeline_model_card(
        metrics=metrics, training_runs=runs, base_model="stable-diffusion-v1-5/stable-diffusion-v1-5",
        datasets=["someone/eeg-imagenet"], repo_id="someone/brainvis", generation_settings={"num_inference_steps": 50},
    )
    parsed = ModelCard(str(card))
    data = parsed.data
    assert data.library_name == "diffusers" and data.pipeline_tag == "text-to-image"
    assert {"eeg", "bci", "brain-decoding", "diffusers"} <= set(data.tags)
    assert data.base_model == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert data.license == "creativeml-openrail-m" and data.datasets == ["someone/eeg-imagenet"]
    results = {r.metric_type: r.metric_value for r in data.eval_results}
    assert results == {k: v for k, v in metrics.items() if v is not None}  # None = not computed: left out
    assert all(r.dataset_split == "test" for r in data.eval_results)
    text = parsed.text
    for heading in ("## Intended use", "## Training data", "## Training procedure", "## Evaluation",
                    "## Limitations and ethics", "## How to use", "## Citation"):
        assert heading in text, heading
    assert "| timefreq | 0.0005 |" in text and "| align | 0.0005 |" in text  # hyper-parameters of the runs
    assert "personal, health-related data" in text and "not mind reading" in text
    assert "fu2025brainvis" in text and "spampinato2017deep" in text
    assert 'BrainVisPipeline.from_pretrained("someone/brainvis")' in text
    html = render_card_html(parsed)
    assert "<table>" in html and "<td>0.4125</td>" in html and "<h2>Limitations and ethics</h2>" in html
    # tiny random diffusion weights: no base model, code licence, and the card says images are noise
    tiny = pipeline_model_card(metrics={}, random_weights=True)
    assert tiny.data.base_model is None and tiny.data.license == "apache-2.0" and "random-weights" in tiny.data.tags
    assert "the images this pipeline makes are noise" in tiny.text and "--sd-model" in tiny.text


def test_one_table_formatter_for_every_card():
    from brainvis_hf.hub import format_value, markdown_table, reportable_metrics

    assert format_value(0.123456) == "0.1235" and format_value(float("nan")) == "nan" and format_value([1, 0.5]) == "1, 0.5"
    assert markdown_table(["a", "b"], [["x|y", 2.0]]) == "| a | b |\n|---|---|\n| x\\|y | 2 |"
    assert reportable_metrics({"accuracy": 0.5, "runtime": 3.0, "samples_per_second": 9.0, "epoch": 2.0, "name": "x"}) == {
        "accuracy": 0.5}

"""The generic model-card builder (brainvis_hf.hub.build_model_card)."""

from __future__ import annotations


def test_build_model_card_metadata_and_sections(tmp_path):
    from huggingface_hub import ModelCard

    from brainvis_hf.hub import build_model_card

    card = build_model_card(
        title="BrainVis test model",
        summary="A summary.",
        tags=["brainvis-freq", "eeg"],
        datasets=["me/eeg-imagenet"],
        metrics={"test": {"accuracy": 0.5, "macro_f1": 0.25}, "validation": {"accuracy": 0.625}},
        hyperparameters={"learning_rate": 0.001, "optim": "adamw_torch"},
        training_data="Some data.",
        extra_sections={"Usage": "```py\nimport brainvis_hf\n```"},
        license="mit",
    )
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    data = loaded.data
    assert data.library_name == "transformers" and data.license == "mit"
    assert data.tags == ["eeg", "bci", "brain-decoding", "brainvis", "brainvis-freq"]  # no duplicates
    assert data.datasets == ["me/eeg-imagenet"]
    assert sorted(data.metrics) == ["accuracy", "macro_f1"]
    values = {(r.dataset_split, r.metric_type): r.metric_value for r in data.eval_results}
    assert values == {("test", "accuracy"): 0.5, ("test", "macro_f1"): 0.25, ("validation", "accuracy"): 0.625}
    text = loaded.text
    order = [text.index(h) for h in ("## Intended use", "## Training data", "## Training procedure", "## Evaluation",
                                     "## Limitations and ethics", "## Usage", "## Citation")]
    assert order == sorted(order)
    assert "| learning_rate | 0.001 |" in text and "| test | macro_f1 | 0.25 |" in text
    assert "personal" in text and "not mind reading" in text and "eprint    = {2312.14871}" in text


def test_card_without_metrics_has_no_model_index():
    from brainvis_hf.hub import build_model_card

    card = build_model_card(title="T", summary="S")
    assert card.data.eval_results is None and "## Evaluation" not in card.text

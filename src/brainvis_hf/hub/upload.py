"""Uploads to the Hub, all through ``huggingface_hub``'s own path (``HfApi.create_repo`` +
``HfApi.upload_folder``): the helpers save an object into a folder, write its card
(``README.md``) and upload the folder in one commit, so what lands on the Hub is exactly what
``from_pretrained`` / ``load_dataset`` read locally. (The ``push_to_hub`` methods of
``transformers`` / ``diffusers`` objects also work, but they replace ``README.md`` by a generic card.)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

from huggingface_hub import HfApi


def push_folder_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload BrainVis model",
    repo_type: str = "model",
    ignore_patterns: Sequence[str] = ("checkpoint-*", "checkpoint-*/**", "*.tmp", "runs/**/*.lock"),
) -> str:
    """Create ``repo_id`` (a ``repo_type`` repository: ``"model"`` or ``"dataset"``) if needed and
    upload ``folder`` in one commit (checkpoints excluded); returns the commit URL."""
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type=repo_type)
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        commit_message=commit_message,
        ignore_patterns=list(ignore_patterns),
        repo_type=repo_type,
    )
    return str(getattr(info, "commit_url", info))


def push_model_to_hub(model, repo_id: str, *, card=None, **kwargs: Any) -> str:
    """Save a BrainVis ``transformers`` model (weights, config with ``auto_map``, modeling code)
    and its card in a temporary folder and upload it as one commit; returns the commit URL.

    ``card``: a ``ModelCard`` or Markdown text (default: a one-line card naming the class).
    ``kwargs`` go to :func:`push_folder_to_hub` (``private``, ``token``,
    ``commit_message``).
    """
    with tempfile.TemporaryDirectory(prefix="brainvis-push-") as tmp:
        model.save_pretrained(tmp)
        _write_card(card, tmp, default=f"# {type(model).__name__}\n\nA BrainVis EEG model (brainvis-hf).")
        return push_folder_to_hub(tmp, repo_id, **kwargs)


def push_pipeline_to_hub(pipeline, repo_id: str, *, card=None, **kwargs: Any) -> str:
    """Save a ``BrainVisPipeline`` (safetensors, every component) with its card and upload it as
    one commit; returns the commit URL. A pipeline folder already saved with a card (e.g. the
    demo's ``pipeline/``) can be pushed as is with :func:`push_folder_to_hub`."""

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

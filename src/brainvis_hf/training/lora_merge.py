"""Export a LoRA run folder as a plain model: rebuild the base model, merge the adapter into it.

It sits above both :mod:`.stage_models` (which rebuilds the base model of a stage) and
:mod:`.lora` (the PEFT mechanics that :mod:`.run` uses), so neither of those imports the other back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .lora import LORA_META_NAME
from .stage_models import rebuild_base_model


def merge_lora_adapter(adapter_dir: str | os.PathLike, output_dir: str | os.PathLike | None = None) -> Path:
    """Merge a LoRA run's adapter into its base model and ``save_pretrained`` the result.

    Args:
        adapter_dir: folder with ``adapter_config.json``, the adapter weights and
            ``brainvis_lora.json`` (written by ``brainvis train ... --lora``).
        output_dir: where the merged model goes (default: ``adapter_dir/merged``).

    Returns:
        The folder of the merged model (loadable with ``AutoModel.from_pretrained`` after
        ``import brainvis_hf``).
    """
    from peft import PeftModel  # peft takes seconds to import and only LoRA runs need it

    adapter_dir = Path(adapter_dir)
    meta_path = adapter_dir / LORA_META_NAME
    if not meta_path.is_file() or not (adapter_dir / "adapter_config.json").is_file():
        raise FileNotFoundError(
            f"{adapter_dir} is not a LoRA run folder (expected adapter_config.json and {LORA_META_NAME})"
        )
    meta = json.loads(meta_path.read_text())
    base = rebuild_base_model(meta)
    model = PeftModel.from_pretrained(base, str(adapter_dir))
    merged = model.merge_and_unload()
    output_dir = Path(output_dir) if output_dir is not None else adapter_dir / "merged"
    merged.save_pretrained(output_dir)
    return output_dir

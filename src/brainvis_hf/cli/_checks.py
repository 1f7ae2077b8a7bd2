"""Checks the commands run on their inputs before loading anything heavy, and the translation of
any error into the one line ``brainvis`` prints (``--debug`` shows the traceback instead)."""

from __future__ import annotations

import errno
import json
import re
from pathlib import Path

from .._io import check_safetensors_file, read_json_file

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def looks_like_repo_id(value: str) -> bool:
    """``owner/name`` whose first part is not a local folder (``runs/x`` with ``runs/`` present is a path)."""
    return bool(_REPO_ID.match(value)) and not Path(value.split("/")[0]).is_dir()


def check_model_folder(folder: Path) -> None:
    """Every JSON file and safetensors header of a model folder (and its component sub-folders)
    is readable; the error names the file."""
    for path in sorted([*folder.glob("*.json"), *folder.glob("*/*.json")]):
        read_json_file(path, "JSON file", "re-download or re-save the model")
    for path in sorted([*folder.glob("*.safetensors"), *folder.glob("*/*.safetensors")]):
        check_safetensors_file(path)


def check_model_source(value: str, flag: str) -> Path | None:
    """A local model folder (checked, returned) or a Hub repo id (``None``).

    A local-looking value that does not exist is reported at once ("folder not found") instead of
    being tried on the Hub with retries.
    """
    path = Path(value).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{flag} {value}: expected a model folder or a Hub repo id, got a file.")
        check_model_folder(path)
        return path
    if looks_like_repo_id(value):
        return None
    raise FileNotFoundError(f"{flag} {value}: folder not found (and not a Hub repo id of the form owner/name); check the path.")


def check_pipeline_source(value: str, sd: str | None) -> None:
    """``generate --model``: a BrainVisPipeline folder, or with ``--sd`` an alignment model."""
    folder = check_model_source(value, "--model")
    if sd is not None:
        check_model_source(sd, "--sd")
    if folder is None or sd is not None or (folder / "model_index.json").is_file():
        return
    config = folder / "config.json"
    architectures = []
    if config.is_file():
        architectures = (read_json_file(config) or {}).get("architectures") or []
    if any((folder / name).exists() for name in ("trainer_state.json", "training_args.bin", "metrics.json")) or list(
        folder.glob("checkpoint-*")
    ) or "BrainVisForCLIPAlignment" in architectures:
        raise ValueError(
            f"--model {value}: this is a training run / alignment model, not a BrainVisPipeline (no model_index.json); "
            "assemble a pipeline from it with --sd STABLE_DIFFUSION_MODEL (e.g. --sd runwayml/stable-diffusion-v1-5)."
        )
    raise ValueError(f"--model {value}: not a BrainVisPipeline folder (no model_index.json).")


def _one_line(text: str) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def error_line(err: BaseException) -> str:
    """The one-line message ``brainvis`` prints for ``err``."""
    if isinstance(err, KeyError) and err.args:
        return _one_line(str(err.args[0]))
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        where = ""
        if err.filename:  # name the file being written, not its temporary name (.name.tmpPID)
            path = Path(str(err.filename))
            match = re.fullmatch(r"\.(.+)\.tmp\d+", path.name)
            where = f" while writing {path.with_name(match.group(1)) if match else path}"
        return (f"no space left on the device{where}; free some space and rerun the same command "
                "(finished files are kept, and the run resumes where it stopped).")  # fmt: skip
    if isinstance(err, OSError) and err.filename is not None and not isinstance(err, FileNotFoundError):
        return f"{err.strerror or type(err).__name__}: {err.filename}"
    if isinstance(err, (FileNotFoundError, ValueError)) and not isinstance(err, json.JSONDecodeError):
        return _one_line(str(err))
    text = _one_line(str(err)) or "(no message)"
    return f"{type(err).__name__}: {text} (rerun with --debug for the traceback)"


def exit_code(err: BaseException) -> int:
    """2 for bad input (the user can fix it), 1 for everything else."""
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return 1
    return 2 if isinstance(err, (FileNotFoundError, ValueError, KeyError)) else 1


__all__ = ["check_model_folder", "check_model_source", "check_pipeline_source", "error_line", "exit_code"]

"""Small file helpers shared by the commands: strict JSON, paths confined to a folder, stale
temporary files. They exist so that a crash, a full disk or a hand-edited file never leaves
silent garbage (NaN tokens, files outside the output folder, orphaned ``.tmp`` files)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable

# `.<name>.tmp<pid>`: the temporary names of the atomic writers (generate_folder, clip targets)
_TMP_NAME = re.compile(r"^\..+\.tmp(\d+)$")


def _non_finite_key(data: Any, where: str = "") -> str | None:
    """Path (like ``eegs[3].probs[0]``) of the first non-finite float in ``data``, or ``None``."""
    if isinstance(data, float):
        return None if math.isfinite(data) else (where or "<top level>")
    if isinstance(data, dict):
        for key, value in data.items():
            found = _non_finite_key(value, f"{where}.{key}" if where else str(key))
            if found:
                return found
    elif isinstance(data, (list, tuple)):
        for i, value in enumerate(data):
            found = _non_finite_key(value, f"{where}[{i}]")
            if found:
                return found
    return None


def dumps_strict(data: Any, path: str | os.PathLike | None = None, **kwargs: Any) -> str:
    """``json.dumps(..., allow_nan=False)`` whose error names the file and the offending key.

    NaN / Infinity are not JSON: strict parsers (browsers, ``jq``, other languages) reject them,
    so a non-finite number is a bug upstream that must not be written silently.
    """
    try:
        return json.dumps(data, allow_nan=False, **kwargs)
    except ValueError as err:
        key = _non_finite_key(data)
        if key is None:
            raise
        target = f"{path}: " if path is not None else ""
        raise ValueError(f"{target}refusing to write the non-finite number at {key!r} into JSON (NaN/Infinity is not valid JSON).") from err


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on ``.<name>.tmp<pid>`` next to ``path``, then move it into place: a reader
    sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as err:  # a full disk or Ctrl-C: leave no partial file behind (a kill -9 is cleaned on the next run)
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno is not None and err.filename in (None, str(tmp)):
            raise OSError(err.errno, err.strerror or str(err), str(path)) from err  # name the file, not the temporary
        raise


def confined_path(root: str | os.PathLike, relative: Any, source: str | os.PathLike, where: str) -> Path:
    """``root / relative``, refusing absolute paths and paths that leave ``root`` (``../x.png``).

    ``source`` (the manifest) and ``where`` (the entry, e.g. ``images[3].file``) name the bad value
    in the error, so a hand-edited or malicious manifest cannot make a command read or skip files
    elsewhere on the disk.
    """
    if not isinstance(relative, str) or not relative:
        raise ValueError(f"{source}: {where} must be a non-empty relative path inside {root}, got {relative!r}.")
    if Path(relative).is_absolute() or os.path.isabs(relative) or "\\" in relative:
        raise ValueError(f"{source}: {where} is {relative!r}; only paths relative to {root} are allowed.")
    root_path = Path(root)
    candidate = root_path / relative
    try:
        candidate.resolve().relative_to(root_path.resolve())
    except ValueError:
        raise ValueError(f"{source}: {where} is {relative!r}, which points outside {root}; refusing to follow it.") from None
    if ".." in Path(relative).parts:
        raise ValueError(f"{source}: {where} is {relative!r}; '..' is not allowed in manifest paths.")
    return candidate


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_temporaries(*folders: str | os.PathLike) -> list[Path]:
    """Delete ``.<name>.tmp<pid>`` files left by a crashed or out-of-space writer.

    A file whose writer process is still alive is kept, so two commands on one machine never
    delete each other's work in progress. Returns the deleted paths.
    """
    removed = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = _TMP_NAME.match(path.name)
            if match and path.is_file() and not _pid_alive(int(match.group(1))):
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                removed.append(path)
    return removed


def finite_or_none(data: Any) -> Any:
    """``data`` with every non-finite float replaced by ``None`` (JSON ``null``).

    For metrics files: a metric that is undefined (NaN) must not make a finished run fail at its
    last step, nor be written as the invalid token ``NaN``; ``null`` means "no finite value".
    """
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_or_none(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_none(value) for value in data]
    return data


_MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors library's own limit


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (checksums of shards and weights)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_safetensors_file(path: str | os.PathLike) -> None:
    """Raise a ``ValueError`` naming ``path`` unless it is a complete safetensors file.

    Reads only the header: its length, the JSON, and that the tensors' data ends exactly at the
    end of the file (so a truncated download or a half-written save is caught before loading).
    """
    path = Path(path)
    size = path.stat().st_size
    hint = "re-download or re-save it"
    if size < 8:
        raise ValueError(f"{path} is not a safetensors file: {size} bytes (empty or truncated); {hint}.")
    with open(path, "rb") as handle:
        header_len = int.from_bytes(handle.read(8), "little")
        if header_len > _MAX_SAFETENSORS_HEADER or header_len > size - 8:
            raise ValueError(f"{path} is not a valid safetensors file: header of {header_len} bytes in a {size}-byte file "
                             f"(truncated or corrupted); {hint}.")  # fmt: skip
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path} is not a valid safetensors file: unreadable header ({err}); {hint}.") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a valid safetensors file: the header is not a JSON object; {hint}.")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise ValueError(f"{path} is not a valid safetensors file: tensor {name!r} has no valid data_offsets; {hint}.")
        end = max(end, offsets[1])
    if 8 + header_len + end != size:
        raise ValueError(f"{path} is truncated or corrupted: its header describes {8 + header_len + end} bytes, "
                         f"the file has {size}; {hint}.")  # fmt: skip


def read_json_file(path: str | os.PathLike, what: str = "JSON file", fix: str = "") -> Any:
    """``json.loads`` of ``path`` with a one-line error that names the file (and what to do)."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a valid {what} ({err}){'; ' + fix if fix else ''}.") from None

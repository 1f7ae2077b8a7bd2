"""Small helpers shared by the evaluation modules: array conversion and lazy optional imports."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np


def to_numpy(array: Any, name: str, *, dtype: Any = None) -> np.ndarray:
    """Convert a NumPy array, torch tensor or nested sequence to a NumPy array.

    Torch tensors are detached and moved to the CPU first; ``name`` is used in error messages.
    """
    if hasattr(array, "detach") and hasattr(array, "cpu"):  # torch.Tensor without importing torch
        array = array.detach().cpu()
        if dtype is None and str(array.dtype) == "torch.bfloat16":
            array = array.float()
        array = array.numpy()
    try:
        result = np.asarray(array, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`{name}` must be array-like (NumPy array, torch tensor or list); got {type(array).__name__}: {err}") from err
    return result


def to_class_ids(labels: np.ndarray, name: str, num_classes: int, scores_name: str) -> np.ndarray:
    """Validate 1-D class ids against a score matrix of ``num_classes`` columns; returns int64.

    Floats are accepted when they hold whole numbers; ``name`` / ``scores_name`` go in the messages.
    """
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise ValueError(f"`{name}` must hold integer class ids; got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"`{name}` class ids must be in [0, {num_classes - 1}] ({scores_name} has {num_classes} columns); "
            f"got range [{labels.min()}, {labels.max()}]"
        )
    return labels.astype(np.int64)


def require(module: str, package: str, extra: str = "eval") -> Any:
    """Import ``module`` or raise an ImportError that names the pip package and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{module!r} is required for this function but is not installed: "
            f"`pip install {package}` or `pip install 'brainvis-hf[{extra}]'`."
        ) from err

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


def require(module: str, package: str, extra: str = "eval") -> Any:
    """Import ``module`` or raise an ImportError that names the pip package and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{module!r} is required for this function but is not installed: "
            f"`pip install {package}` or `pip install 'brainvis-hf[{extra}]'`."
        ) from err

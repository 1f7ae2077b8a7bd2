"""Evaluation: EEG classification and image-generation metrics, the linear probe, and the
``brainvis evaluate`` library function.

Heavy optional libraries (scikit-learn, scipy, matplotlib, transformers models) are imported
inside the functions that need them, so importing this package is cheap.
"""

from __future__ import annotations

from .linear_probe import linear_probe_accuracy

__all__ = ["linear_probe_accuracy"]

"""EEG-ImageNet data: safe file reading, the ``datasets`` builder, synthetic files, collator, Parquet export.

```py
>>> from brainvis_hf.data import load_eeg_imagenet, write_synthetic_eeg_imagenet, BrainVisDataCollator
>>> files = write_synthetic_eeg_imagenet("synthetic_eeg", num_images_per_class=5, num_subjects=2)
>>> ds = load_eeg_imagenet(files.eeg_path, files.splits_path)
```
"""

from .collator import BrainVisDataCollator
from .eeg_imagenet import (
    EEGImageNet,
    EEGImageNetConfig,
    load_eeg_imagenet,
    load_signals,
    load_splits,
    safe_torch_load,
    select_recordings,
    validate_image_name,
)
from .labels import EEG_IMAGENET_WNIDS, WNID_TO_WORDS, class_names_for, wnid_to_words
from .prepare import load_prepared_dataset, prepare_dataset, push_prepared_dataset
from .synthetic import SyntheticEEGImageNetFiles, write_synthetic_eeg_imagenet

__all__ = [
    "BrainVisDataCollator",
    "EEGImageNet",
    "EEGImageNetConfig",
    "EEG_IMAGENET_WNIDS",
    "WNID_TO_WORDS",
    "SyntheticEEGImageNetFiles",
    "class_names_for",
    "load_eeg_imagenet",
    "load_prepared_dataset",
    "load_signals",
    "load_splits",
    "prepare_dataset",
    "push_prepared_dataset",
    "safe_torch_load",
    "select_recordings",
    "validate_image_name",
    "wnid_to_words",
    "write_synthetic_eeg_imagenet",
]

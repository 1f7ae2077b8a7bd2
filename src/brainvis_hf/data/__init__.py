"""EEG data (EEG-ImageNet of Spampinato et al. 2017, THINGS-EEG2 of Gifford et al. 2022): safe file reading, the ``datasets`` builder, synthetic files, collator, Parquet export.

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
from .things_eeg2 import (
    SyntheticThingsEEG2Files,
    ThingsEEG2,
    ThingsEEG2Config,
    load_things_eeg2,
    prepare_things_eeg2,
    safe_load_npy,
    write_synthetic_things_eeg2,
)

# Unambiguous aliases: BrainVis's data set is Spampinato et al. (CVPR 2017), also called
# "ImageNet-EEG" or "CVPR40"; it is unrelated to Zhu et al. (2024) "EEG-ImageNet".
SpampinatoEEGImageNet = EEGImageNet
load_spampinato_eeg_imagenet = load_eeg_imagenet

__all__ = [
    "BrainVisDataCollator",
    "EEGImageNet",
    "EEGImageNetConfig",
    "EEG_IMAGENET_WNIDS",
    "WNID_TO_WORDS",
    "SpampinatoEEGImageNet",
    "SyntheticEEGImageNetFiles",
    "SyntheticThingsEEG2Files",
    "ThingsEEG2",
    "ThingsEEG2Config",
    "class_names_for",
    "load_eeg_imagenet",
    "load_prepared_dataset",
    "load_signals",
    "load_spampinato_eeg_imagenet",
    "load_things_eeg2",
    "load_splits",
    "prepare_dataset",
    "prepare_things_eeg2",
    "push_prepared_dataset",
    "safe_load_npy",
    "safe_torch_load",
    "select_recordings",
    "validate_image_name",
    "wnid_to_words",
    "write_synthetic_eeg_imagenet",
    "write_synthetic_things_eeg2",
]

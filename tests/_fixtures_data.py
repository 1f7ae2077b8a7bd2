"""Session fixtures for the data tests (imported by conftest.py); other areas use them too.

* ``synthetic_eeg_files``: a small synthetic EEG-ImageNet of the real structure (40 classes x 5
  images x 2 subjects = 400 recordings, 128 channels, with 32 x 32 class images); has
  ``.eeg_path``, ``.splits_path``, ``.image_root`` (see ``SyntheticEEGImageNetFiles``).
* ``eeg_imagenet_dataset``: ``load_eeg_imagenet`` on it, with the ``image`` column
  (~240 / 80 / 80 rows in train / validation / test: 2 of the 400
  recordings fall outside 450..600 samples; ``eeg`` 128 x 440).
* ``prepared_data_dir``: that ``DatasetDict`` written by ``prepare_dataset`` (a ``Path``).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synthetic_eeg_files(tmp_path_factory):
    from brainvis_hf.data import write_synthetic_eeg_imagenet

    root = tmp_path_factory.mktemp("synthetic_eeg")
    return write_synthetic_eeg_imagenet(
        root, num_images_per_class=5, num_subjects=2, with_images=True, seed=0, show_progress=False
    )


@pytest.fixture(scope="session")
def eeg_imagenet_dataset(synthetic_eeg_files, tmp_path_factory):
    from brainvis_hf.data import load_eeg_imagenet

    return load_eeg_imagenet(
        synthetic_eeg_files.eeg_path,
        synthetic_eeg_files.splits_path,
        image_root=synthetic_eeg_files.image_root,
        cache_dir=tmp_path_factory.mktemp("eeg_imagenet_cache"),
    )


@pytest.fixture(scope="session")
def prepared_data_dir(eeg_imagenet_dataset, tmp_path_factory):
    from brainvis_hf.data import prepare_dataset

    return prepare_dataset(eeg_imagenet_dataset, tmp_path_factory.mktemp("prepared") / "eeg_imagenet")

"""Session fixtures for the diffusion tests (imported by conftest.py); other areas may use them.

* ``tiny_sd_components``: tiny random Stable Diffusion v1.x parts (``pipelines.tiny``, seed 0):
  32 x 32 images, 16 x 16 latents, 32-wide text encoder / cross-attention.
* ``tiny_alignment_model``: a ``BrainVisForCLIPAlignment`` from ``hub_configs/tiny/align``
  (random, seed 0; 128 channels x 440 samples, prompt_embed_dim 32), in eval mode.
* ``tiny_brainvis_pipeline``: a ``BrainVisPipeline`` of the two above with its own PLMS scheduler
  (a fresh object per test; the models are shared, so do not modify their weights).
* ``tiny_sd_dir``: the tiny components saved as a ``StableDiffusionPipeline`` folder.
* ``tiny_pipeline_dir``: the tiny ``BrainVisPipeline`` saved with ``save_pretrained``.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_sd_components():
    from brainvis_hf.pipelines.tiny import build_tiny_sd_components

    return build_tiny_sd_components(seed=0)


@pytest.fixture(scope="session")
def tiny_alignment_model():
    import torch

    from brainvis_hf.models import BrainVisConfig, BrainVisForCLIPAlignment
    from brainvis_hf.presets import preset_dir

    config = BrainVisConfig.from_pretrained(preset_dir("align", preset="tiny"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BrainVisForCLIPAlignment(config)
    return model.eval()


@pytest.fixture
def tiny_brainvis_pipeline(tiny_alignment_model, tiny_sd_components):
    from brainvis_hf.pipelines import BrainVisPipeline

    components = dict(tiny_sd_components)
    components["scheduler"] = type(components["scheduler"]).from_config(components["scheduler"].config)
    pipe = BrainVisPipeline(eeg_encoder=tiny_alignment_model, **components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory):
    from brainvis_hf.pipelines.tiny import save_tiny_stable_diffusion

    return save_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny_sd") / "sd", seed=0)


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory, tiny_alignment_model, tiny_sd_components):
    from brainvis_hf.pipelines import BrainVisPipeline

    pipe = BrainVisPipeline(eeg_encoder=tiny_alignment_model, **tiny_sd_components)
    path = tmp_path_factory.mktemp("tiny_brainvis_pipeline") / "pipeline"
    pipe.save_pretrained(path)
    return path

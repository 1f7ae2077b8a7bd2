"""Diffusion pipelines of brainvis-hf.

- :class:`BrainVisPipeline` / :class:`BrainVisPipelineOutput`: the cascaded EEG -> image
  ``DiffusionPipeline`` (``pipeline_brainvis.py``).
- :func:`assemble_brainvis_pipeline`: an alignment model + any Stable Diffusion v1.x folder or repo
  -> a pipeline (``assemble.py``).
- ``brainvis_hf.pipelines.tiny``: tiny random SD components built in code (tests, CPU demo).
"""

from .assemble import assemble_brainvis_pipeline
from .pipeline_brainvis import BrainVisPipeline, BrainVisPipelineOutput

__all__ = ["BrainVisPipeline", "BrainVisPipelineOutput", "assemble_brainvis_pipeline"]

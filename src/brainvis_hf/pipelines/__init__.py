"""Diffusion pipelines of brainvis-hf.

- :class:`BrainVisPipeline` / :class:`BrainVisPipelineOutput`: the cascaded EEG -> image
  ``DiffusionPipeline`` (``pipeline_brainvis.py``).
- :meth:`BrainVisPipeline.from_alignment_and_sd` (also :func:`assemble_brainvis_pipeline`): an
  alignment model + any Stable Diffusion v1.x folder or repo -> a pipeline; ``assemble.py`` loads
  the components.
- ``brainvis_hf.pipelines.tiny``: tiny random SD components built in code (tests, CPU demo).
"""

from .pipeline_brainvis import BrainVisPipeline, BrainVisPipelineOutput

assemble_brainvis_pipeline = BrainVisPipeline.from_alignment_and_sd

__all__ = ["BrainVisPipeline", "BrainVisPipelineOutput", "assemble_brainvis_pipeline"]

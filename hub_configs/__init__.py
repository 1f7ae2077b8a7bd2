"""Configuration folders of every BrainVis model, ready to upload to the Hub.

``hub_configs/<name>/`` holds the paper-size configuration, ``hub_configs/tiny/<name>/`` a tiny
variant for tests and the CPU demo. Shipped inside the package as ``brainvis_hf.hub_configs``;
use :func:`brainvis_hf.presets.preset_dir` to find a folder.
"""

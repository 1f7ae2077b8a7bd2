"""Shared, session-scoped fixtures. Each area keeps its fixtures in ``tests/_fixtures_<area>.py``
so that people working on different areas do not edit one file; they are gathered here."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# The suite runs as two pytest-xdist workers on two cores: one thread each avoids
# oversubscription, which makes tiny-model calls many times slower.
torch.set_num_threads(1)

from _fixtures_data import *  # noqa: E402,F401,F403
from _fixtures_models import *  # noqa: E402,F401,F403
from _fixtures_diffusion import *  # noqa: E402,F401,F403

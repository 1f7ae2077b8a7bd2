"""``python -m brainvis_hf`` is the same as the ``brainvis`` command."""

import sys

from .cli import main

sys.exit(main())

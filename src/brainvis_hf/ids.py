"""The one rule for ids that become file names: EEG ids (``brainvis generate`` writes
``images/<eeg_id>_<k>.png``) and image names (``n02951358_31190``, joined to an image folder).

A safe id is a bare file stem: letters, digits, ``_``, ``-`` and ``.``, starting with a letter or
digit, without ``..``; so never a path separator, never absolute, never a parent reference.
"""

from __future__ import annotations

import re
from typing import Any

SAFE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
#: the rule in words, for error messages
SAFE_ID_RULE = "letters, digits, '_', '-', '.'; starting with a letter or digit; no '..'"


def is_safe_id(name: Any) -> bool:
    """Whether ``name`` can be used as a file stem (see the module docstring)."""
    return isinstance(name, str) and ".." not in name and SAFE_ID_PATTERN.fullmatch(name) is not None

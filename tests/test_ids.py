"""One rule for ids that become file names (``brainvis_hf.ids``), used by the data reader and
``brainvis generate``."""

from __future__ import annotations

from pathlib import Path

import pytest

import brainvis_hf
from brainvis_hf.data.eeg_imagenet import validate_image_name
from brainvis_hf.ids import SAFE_ID_PATTERN, is_safe_id

PACKAGE_DIR = Path(brainvis_hf.__file__).resolve().parent


@pytest.mark.parametrize("name", ["n02951358_31190", "123", "a.b-c_d", "7_0", "X"])
def test_safe_ids(name):
    assert is_safe_id(name)
    assert validate_image_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "..", "a..b", "../x", "/abs", "a/b", "a\\b", "C:x", ".hidden", "-x", "_x", "abc\n", "a b", "é", None, 3]
)
def test_unsafe_ids(name):
    assert not is_safe_id(name)
    with pytest.raises(ValueError, match="image name"):
        validate_image_name(name, source="f.pth")


def test_no_other_module_spells_the_pattern():
    spelled = sorted(
        str(path.relative_to(PACKAGE_DIR))
        for path in PACKAGE_DIR.rglob("*.py")
        if path.name != "ids.py" and SAFE_ID_PATTERN.pattern[:20] in path.read_text()
    )
    assert spelled == []

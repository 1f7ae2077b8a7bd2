"""WordNet ids of the 40 EEG-ImageNet classes and the words used to prompt Stable Diffusion.

The *order* of classes is defined by the ``labels`` list of each signals file; this table is only
used to turn a WordNet id into words (see ``shared/reference/eeg-imagenet.md``).
"""

from __future__ import annotations

from typing import Iterable

# Listed in the order of the reference table (the order of the published files).
EEG_IMAGENET_CLASSES: tuple[tuple[str, str], ...] = (
    ("n02389026", "sorrel horse"),
    ("n03888257", "parachute"),
    ("n03584829", "iron"),
    ("n02607072", "anemone fish"),
    ("n03297495", "espresso maker"),
    ("n03063599", "coffee mug"),
    ("n03792782", "mountain bike"),
    ("n04086273", "revolver"),
    ("n02510455", "giant panda"),
    ("n11939491", "daisy"),
    ("n02951358", "canoe"),
    ("n02281787", "lycaenid butterfly"),
    ("n02106662", "German shepherd dog"),
    ("n04120489", "running shoe"),
    ("n03590841", "jack-o'-lantern"),
    ("n02992529", "cellular telephone"),
    ("n03445777", "golf ball"),
    ("n03180011", "desktop computer"),
    ("n02906734", "broom"),
    ("n07873807", "pizza"),
    ("n03773504", "missile"),
    ("n02492035", "capuchin monkey"),
    ("n03982430", "pool table"),
    ("n03709823", "mailbag"),
    ("n03100240", "convertible car"),
    ("n03376595", "folding chair"),
    ("n03877472", "pajama"),
    ("n03775071", "mitten"),
    ("n03272010", "electric guitar"),
    ("n04069434", "reflex camera"),
    ("n03452741", "grand piano"),
    ("n03792972", "mountain tent"),
    ("n07753592", "banana"),
    ("n13054560", "bolete"),
    ("n03197337", "digital watch"),
    ("n02504458", "African elephant"),
    ("n02690373", "airliner"),
    ("n03272562", "electric locomotive"),
    ("n04044716", "radio telescope"),
    ("n02124075", "cat"),
)

EEG_IMAGENET_WNIDS: tuple[str, ...] = tuple(wnid for wnid, _ in EEG_IMAGENET_CLASSES)
WNID_TO_WORDS: dict[str, str] = dict(EEG_IMAGENET_CLASSES)


def wnid_to_words(wnid: str) -> str:
    """Words for a WordNet id (e.g. ``"n02389026"`` -> ``"sorrel horse"``).

    Raises:
        KeyError: naming the unknown id, when it is not one of the 40 EEG-ImageNet classes.
    """
    try:
        return WNID_TO_WORDS[wnid]
    except KeyError:
        raise KeyError(
            f"Unknown class {wnid!r}: not one of the 40 EEG-ImageNet WordNet ids "
            f"(e.g. {EEG_IMAGENET_WNIDS[0]!r})."
        ) from None


def class_names_for(wnids: Iterable[str]) -> list[str]:
    """Words for each WordNet id, in the given order (the file's ``labels`` order)."""
    return [wnid_to_words(w) for w in wnids]

"""One home for citations: ``brainvis_hf.hub.citations`` holds every BibTeX entry; the cards, the
``datasets`` builder and the ``evaluate`` modules use it, and it matches the README."""

from __future__ import annotations

import re
from pathlib import Path

import brainvis_hf
from brainvis_hf.hub import citations

PACKAGE_DIR = Path(brainvis_hf.__file__).resolve().parent
README = PACKAGE_DIR.parents[1] / "README.md"
BIBTEX_ENTRY = re.compile(r"@(inproceedings|article|misc|book|incollection|techreport|phdthesis|software|online)\s*\{", re.I)
BRAINVIS_AUTHORS = "author    = {Fu, Honghao and Wang, Hao and Chin, Jing Jih and Shen, Zhiqi}"


def test_brainvis_and_eeg_imagenet_entries_are_the_readme_ones():
    readme = README.read_text()
    assert citations.BRAINVIS_CITATION in readme
    assert citations.EEG_IMAGENET_CITATION in readme
    assert BRAINVIS_AUTHORS in citations.BRAINVIS_CITATION


def test_no_other_module_holds_a_bibtex_entry():
    holders = sorted(
        str(path.relative_to(PACKAGE_DIR))
        for path in PACKAGE_DIR.rglob("*.py")
        if path.name != "citations.py" and BIBTEX_ENTRY.search(path.read_text())
    )
    assert holders == []


def test_the_pattern_sees_an_entry():
    assert BIBTEX_ENTRY.search('X = """@inproceedings{key,\n  title = {T}}"""')
    assert not BIBTEX_ENTRY.search("contact: someone@example.org {x}")


def test_cards_and_builder_cite_the_full_author_list():
    from brainvis_hf.data import eeg_imagenet
    from brainvis_hf.hub import build_model_card
    from brainvis_hf.hub_pipeline import pipeline_model_card

    # the `datasets` builder's DatasetInfo.citation and the prepared folder's data card
    assert eeg_imagenet._CITATION == citations.join_citations(citations.EEG_IMAGENET_CITATION, citations.BRAINVIS_CITATION)
    model_card = str(build_model_card(title="T", summary="S"))
    pipeline_card = str(pipeline_model_card(metrics={}, random_weights=True))
    for text in (model_card, pipeline_card):
        assert citations.BRAINVIS_CITATION in text
        assert "Fu, Honghao and others" not in text
    assert citations.EEG_IMAGENET_CITATION in pipeline_card


def test_join_citations():
    assert citations.join_citations("@a{x}\n", "\n@b{y}") == "@a{x}\n\n@b{y}"


def test_things_eeg2_builder_and_zero_shot_module_cite_from_here():
    import evaluate

    from brainvis_hf.data import things_eeg2
    from brainvis_hf.evaluation import metric_module_path

    assert things_eeg2._CITATION == citations.THINGS_EEG2_CITATION
    assert "Gifford, Alessandro T." in citations.THINGS_EEG2_CITATION
    metric = evaluate.load(metric_module_path("zero_shot_retrieval"))
    assert metric.citation == citations.join_citations(citations.THINGS_EEG2_CITATION, citations.NICE_CITATION)

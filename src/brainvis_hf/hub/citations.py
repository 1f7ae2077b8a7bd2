"""Every BibTeX entry the package writes (model, pipeline and dataset cards, the ``datasets``
builder, the ``evaluate`` modules), in one place so that they cannot drift apart.

The BrainVis and EEG-ImageNet entries are the ones in the repository's README (a test checks).
"""

from __future__ import annotations

BRAINVIS_CITATION = """@inproceedings{fu2025brainvis,
  title     = {BrainVis: Exploring the Bridge between Brain and Visual Signals via Image Reconstruction},
  author    = {Fu, Honghao and Wang, Hao and Chin, Jing Jih and Shen, Zhiqi},
  booktitle = {ICASSP 2025 - IEEE International Conference on Acoustics, Speech and Signal Processing},
  year      = {2025},
  eprint    = {2312.14871},
  archivePrefix = {arXiv}
}"""

EEG_IMAGENET_CITATION = """@inproceedings{spampinato2017deep,
  title     = {Deep Learning Human Mind for Automated Visual Classification},
  author    = {Spampinato, Concetto and Palazzo, Simone and Kavasidis, Isaak and Giordano, Daniela and Souly, Nasim and Shah, Mubarak},
  booktitle = {CVPR},
  year      = {2017}
}"""

THINGS_EEG2_CITATION = """@article{gifford2022large,
  title   = {A large and rich EEG dataset for modeling human visual object recognition},
  author  = {Gifford, Alessandro T. and Dwivedi, Kshitij and Roig, Gemma and Cichy, Radoslaw M.},
  journal = {NeuroImage},
  volume  = {264},
  pages   = {119754},
  year    = {2022}
}"""

# the works behind the bundled `evaluate` metrics
FID_CITATION = """@inproceedings{heusel2017gans,
  title     = {GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium},
  author    = {Heusel, Martin and others},
  booktitle = {NeurIPS},
  year      = {2017}
}"""

INCEPTION_SCORE_CITATION = """@inproceedings{salimans2016improved,
  title     = {Improved Techniques for Training GANs},
  author    = {Salimans, Tim and others},
  booktitle = {NeurIPS},
  year      = {2016}
}"""

SSIM_CITATION = """@article{wang2004image,
  title     = {Image quality assessment: from error visibility to structural similarity},
  author    = {Wang, Zhou and others},
  journal   = {IEEE TIP},
  year      = {2004}
}"""

DREAMDIFFUSION_CITATION = """@inproceedings{bai2023dreamdiffusion,
  title     = {DreamDiffusion: Generating High-Quality Images from Brain EEG Signals},
  author    = {Bai, Yunpeng and others},
  year      = {2023}
}"""


# the zero-shot retrieval protocol on THINGS-EEG2 (NICE)
NICE_CITATION = """@inproceedings{song2024decoding,
  title     = {Decoding Natural Images from EEG for Object Recognition},
  author    = {Song, Yonghao and Liu, Bingchuan and Li, Xiang and Shi, Nanlin and Wang, Yijun and Gao, Xiaorong},
  booktitle = {ICLR},
  year      = {2024}
}"""


def join_citations(*entries: str) -> str:
    """Several BibTeX entries as one block (a blank line between entries)."""
    return "\n\n".join(entry.strip() for entry in entries)


__all__ = [
    "BRAINVIS_CITATION",
    "DREAMDIFFUSION_CITATION",
    "EEG_IMAGENET_CITATION",
    "FID_CITATION",
    "INCEPTION_SCORE_CITATION",
    "NICE_CITATION",
    "SSIM_CITATION",
    "THINGS_EEG2_CITATION",
    "join_citations",
]

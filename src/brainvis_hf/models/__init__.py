"""BrainVis EEG encoders as `transformers` models.

Importing this package registers the configs and base models with the Auto classes:
`AutoConfig` knows the three model types, `AutoModel` maps each config to its base model
(`BrainVisTimeEncoderModel`, `BrainVisFreqEncoderModel`, `BrainVisModel`) and
`AutoModelForPreTraining` maps the time config to `BrainVisTimeEncoderForMaskedModeling`.
Saved folders also carry the modeling code (`auto_map`), so
`AutoModel.from_pretrained(folder, trust_remote_code=True)` returns the class that was saved
where this package is not installed.
"""

from transformers import AutoConfig, AutoModel, AutoModelForPreTraining

from .configuration_brainvis import (
    EEG_IMAGENET_CLASS_WORDS,
    BrainVisConfig,
    BrainVisFreqEncoderConfig,
    BrainVisTimeEncoderConfig,
)
from .modeling_brainvis import (
    BrainVisCLIPAlignmentOutput,
    BrainVisForCLIPAlignment,
    BrainVisForEEGClassification,
    BrainVisModel,
    BrainVisModelOutput,
    BrainVisPreTrainedModel,
)
from .modeling_freq_encoder import (
    BrainVisFreqEncoderForEEGClassification,
    BrainVisFreqEncoderModel,
    BrainVisFreqEncoderPreTrainedModel,
)
from .modeling_time_encoder import (
    BrainVisEEGClassifierOutput,
    BrainVisMaskedModelingOutput,
    BrainVisTimeEncoderForEEGClassification,
    BrainVisTimeEncoderForMaskedModeling,
    BrainVisTimeEncoderModel,
    BrainVisTimeEncoderPreTrainedModel,
)

_CONFIGS = (BrainVisTimeEncoderConfig, BrainVisFreqEncoderConfig, BrainVisConfig)
_MODELS = (
    BrainVisTimeEncoderModel,
    BrainVisTimeEncoderForMaskedModeling,
    BrainVisTimeEncoderForEEGClassification,
    BrainVisFreqEncoderModel,
    BrainVisFreqEncoderForEEGClassification,
    BrainVisModel,
    BrainVisForEEGClassification,
    BrainVisForCLIPAlignment,
)


def _register() -> None:
    # remote code: save_pretrained writes `auto_map` and copies the modeling files; every model
    # class maps to "AutoModel" so that trust_remote_code loading returns the saved class.
    for config_class in _CONFIGS:
        config_class.register_for_auto_class("AutoConfig")
    for model_class in _MODELS:
        model_class.register_for_auto_class("AutoModel")
    # local registration (after `import brainvis_hf`, no trust_remote_code needed)
    for config_class in _CONFIGS:
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(BrainVisTimeEncoderConfig, BrainVisTimeEncoderModel, exist_ok=True)
    AutoModel.register(BrainVisFreqEncoderConfig, BrainVisFreqEncoderModel, exist_ok=True)
    AutoModel.register(BrainVisConfig, BrainVisModel, exist_ok=True)
    AutoModelForPreTraining.register(BrainVisTimeEncoderConfig, BrainVisTimeEncoderForMaskedModeling, exist_ok=True)


_register()

__all__ = [
    "EEG_IMAGENET_CLASS_WORDS",
    "BrainVisConfig",
    "BrainVisFreqEncoderConfig",
    "BrainVisTimeEncoderConfig",
    "BrainVisPreTrainedModel",
    "BrainVisModel",
    "BrainVisModelOutput",
    "BrainVisForEEGClassification",
    "BrainVisForCLIPAlignment",
    "BrainVisCLIPAlignmentOutput",
    "BrainVisFreqEncoderPreTrainedModel",
    "BrainVisFreqEncoderModel",
    "BrainVisFreqEncoderForEEGClassification",
    "BrainVisTimeEncoderPreTrainedModel",
    "BrainVisTimeEncoderModel",
    "BrainVisTimeEncoderForMaskedModeling",
    "BrainVisTimeEncoderForEEGClassification",
    "BrainVisEEGClassifierOutput",
    "BrainVisMaskedModelingOutput",
]

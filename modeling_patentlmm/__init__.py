"""PatentLMM model: configuration and PyTorch modules (copied flat into checkpoints as remote code)."""

from .configuration_patentlmm import PatentLMMConfig
from .configuration_patentmme import PatentMMEConfig
from .modeling_patentlmm import (
    PatentLMMCausalLMOutputWithPast,
    PatentLMMForConditionalGeneration,
    PatentLMMModel,
    PatentLMMPreTrainedModel,
    build_vision_tower,
)
from .modeling_patentmme import PatentMMEForPreTraining, PatentMMEPreTrainingOutput
from .visual_tokenizer_patentmme import PatentMMEVisualTokenizer

__all__ = [
    "PatentLMMCausalLMOutputWithPast",
    "PatentLMMConfig",
    "PatentLMMForConditionalGeneration",
    "PatentLMMModel",
    "PatentLMMPreTrainedModel",
    "PatentMMEConfig",
    "PatentMMEForPreTraining",
    "PatentMMEPreTrainingOutput",
    "PatentMMEVisualTokenizer",
    "build_vision_tower",
]

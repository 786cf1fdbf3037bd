"""PatentLMM model: configuration and PyTorch modules (copied flat into checkpoints as remote code)."""

from .configuration_patentlmm import PatentLMMConfig
from .modeling_patentlmm import (
    PatentLMMCausalLMOutputWithPast,
    PatentLMMForConditionalGeneration,
    PatentLMMModel,
    PatentLMMPreTrainedModel,
    build_vision_tower,
)
from .visual_tokenizer_patentmme import PatentMMEVisualTokenizer

__all__ = [
    "PatentLMMCausalLMOutputWithPast",
    "PatentLMMConfig",
    "PatentLMMForConditionalGeneration",
    "PatentLMMModel",
    "PatentLMMPreTrainedModel",
    "PatentMMEVisualTokenizer",
    "build_vision_tower",
]

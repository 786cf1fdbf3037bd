"""PatentLMM model: configuration and PyTorch modules (copied flat into checkpoints as remote code)."""

from .configuration_patentlmm import PatentLMMConfig
from .modeling_patentlmm import (
    PatentLMMCausalLMOutputWithPast,
    PatentLMMForConditionalGeneration,
    PatentLMMModel,
    PatentLMMPreTrainedModel,
    build_vision_tower,
)

__all__ = [
    "PatentLMMCausalLMOutputWithPast",
    "PatentLMMConfig",
    "PatentLMMForConditionalGeneration",
    "PatentLMMModel",
    "PatentLMMPreTrainedModel",
    "build_vision_tower",
]

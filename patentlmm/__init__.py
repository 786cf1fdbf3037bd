"""PatentLMM (arXiv 2501.15074), Hugging Face-native; importing it registers PatentLMM with the Auto classes."""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoModelForPreTraining, AutoProcessor

from modeling_patentlmm import (
    PatentLMMConfig,
    PatentLMMForConditionalGeneration,
    PatentLMMModel,
    PatentMMEConfig,
    PatentMMEForPreTraining,
)
from processing import PatentLMMProcessor

__all__ = ["PatentLMMConfig", "PatentLMMForConditionalGeneration", "PatentLMMModel", "PatentLMMProcessor"]
__version__ = "0.1.0"

# Saved folders then load without `trust_remote_code` wherever this package is installed (and with it, from their
# copied source, where it is not).
AutoConfig.register(PatentLMMConfig.model_type, PatentLMMConfig, exist_ok=True)
AutoModel.register(PatentLMMConfig, PatentLMMModel, exist_ok=True)
AutoModelForImageTextToText.register(PatentLMMConfig, PatentLMMForConditionalGeneration, exist_ok=True)
AutoProcessor.register(PatentLMMConfig, PatentLMMProcessor, exist_ok=True)
AutoConfig.register(PatentMMEConfig.model_type, PatentMMEConfig, exist_ok=True)
AutoModelForPreTraining.register(PatentMMEConfig, PatentMMEForPreTraining, exist_ok=True)

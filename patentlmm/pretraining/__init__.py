"""PatentMME pretraining on the Hugging Face Trainer: options, the masking collator, the trainer and the run."""

from .arguments import PretrainArguments, parse_arguments
from .collator import PatentMMECollator, check_visual_tokenizer
from .run import build_model, load_visual_tokenizer, main, pretrain
from .trainer import NonFiniteLossError, PatentMMETrainer

__all__ = [
    "NonFiniteLossError",
    "PatentMMECollator",
    "PatentMMETrainer",
    "PretrainArguments",
    "build_model",
    "check_visual_tokenizer",
    "load_visual_tokenizer",
    "main",
    "parse_arguments",
    "pretrain",
]

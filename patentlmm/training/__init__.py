"""PatentLMM's two training stages on TRL's SFTTrainer: arguments, rows, model assembly, LoRA, trainer, outputs."""

from .arguments import PatentLMMArguments, RecipeError, check_arguments, parse_arguments
from .data import load_patentdesc, to_prompt_completion, training_rows
from .lora import DECODER_LINEAR_LAYERS, load_lora_init, lora_config, with_frozen_adapter
from .model import PROJECTOR_MODULE, VISION_TOWER_MODULE, build_from_base_llm, load_model
from .outputs import ADAPTER_SUBFOLDER, PROJECTOR_FILE, save_outputs
from .run import main, train
from .trainer import PatentLMMSFTTrainer, build_trainer

__all__ = [
    "ADAPTER_SUBFOLDER",
    "DECODER_LINEAR_LAYERS",
    "PROJECTOR_FILE",
    "PROJECTOR_MODULE",
    "VISION_TOWER_MODULE",
    "PatentLMMArguments",
    "PatentLMMSFTTrainer",
    "RecipeError",
    "build_from_base_llm",
    "build_trainer",
    "check_arguments",
    "load_lora_init",
    "load_model",
    "load_patentdesc",
    "lora_config",
    "main",
    "parse_arguments",
    "save_outputs",
    "to_prompt_completion",
    "train",
    "training_rows",
    "with_frozen_adapter",
]

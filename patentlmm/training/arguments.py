"""PatentLMM's training options and the parsing of a recipe + command line into TRL's four argument dataclasses."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser

from processing.constants import DESCRIPTION_TYPES

__all__ = [
    "CPU_DEFAULTS",
    "CPU_TRAINING",
    "PROMPT_FORMAT_OF_STAGE",
    "PatentLMMArguments",
    "check_arguments",
    "parse_arguments",
]

logger = logging.getLogger(__name__)

PROMPT_FORMAT_OF_STAGE = {1: "plain", 2: "vicuna_v1"}
# Without a CUDA GPU the recipes' bf16 is turned off: float32 on the CPU, unless the command line says otherwise.
CPU_TRAINING = {"bf16": False, "use_cpu": True}  # the `SFTConfig` fields
CPU_DEFAULTS = {**{f"--{name}": str(value).lower() for name, value in CPU_TRAINING.items()}, "--dtype": "float32"}


def _option(default: Any, help: str) -> Any:
    """A dataclass field with its `--help` text (TRL's parser reads `metadata["help"]`)."""
    return field(default=default, metadata={"help": help})


@dataclass
class PatentLMMArguments:
    """PatentLMM's own options (the rest come from TRL's `ScriptArguments`, `SFTConfig` and `ModelConfig`)."""

    stage: int = _option(2, "1: train the projector only; 2: LoRA on the decoder + projector.")
    desc_type: str | None = _option(
        None, f"{' or '.join(DESCRIPTION_TYPES)}: the instruction and target; defaults to --dataset_config."
    )
    prompt_format: str | None = _option(
        None,
        "The prompt format; by default the stage's ("
        + ", ".join(f"stage {stage}: {name}" for stage, name in PROMPT_FORMAT_OF_STAGE.items())
        + ").",
    )
    vision_tower: str | None = _option(
        None,
        "Stage 1 from a base LLM (--model_name_or_path): folder or Hub id of the PatentMME encoder, either a PatentLMM "
        "folder (its encoder, OCR tokenizer and projector type are used) or a LayoutLMv3 model.",
    )
    projector_type: str = _option("mlp2x_gelu", "mlp2x_gelu or linear (stage 1 with a LayoutLMv3 --vision_tower).")
    train_vision_tower: bool = _option(
        False,
        "Also train the encoder: with the projector in stage 1, fully beside the LoRA in stage 2 (the saved config "
        "records freeze_vision_tower=False). For an encoder that starts from random weights, as in `patentlmm demo`; "
        "the paper keeps PatentMME frozen.",
    )
    mm_projector_lr: float | None = _option(None, "Stage 2: learning rate of the projector (None: --learning_rate).")
    lora_init_adapter: str | None = _option(
        None,
        "Folder of a PEFT LoRA adapter on the LLaMA decoder (PatentLLaMA), as the original loads it in both stages. "
        "Stage 1: the decoder carries it, frozen, while the projector trains; the stage-1 folder keeps the base "
        "decoder, so give stage 2 the same adapter. Stage 2: it starts the LoRA (its rank must equal --lora_r).",
    )
    merge_lora: bool = _option(
        True, "Stage 2: save LoRA merged into a full model (default) or, with false, the adapter only."
    )
    max_train_samples: int | None = _option(None, "Keep the first N training rows.")
    max_eval_samples: int | None = _option(None, "Keep the first N evaluation rows.")

    def __post_init__(self):
        if self.stage not in PROMPT_FORMAT_OF_STAGE:
            raise ValueError(f"stage must be 1 or 2, got {self.stage}.")
        if self.prompt_format is None:
            self.prompt_format = PROMPT_FORMAT_OF_STAGE[self.stage]
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1 (or unset for all rows), got {getattr(self, name)}.")


def check_arguments(script_args: ScriptArguments, training_args: SFTConfig, patentlmm_args: PatentLMMArguments) -> str:
    """Raises on combinations that cannot train as asked; returns the description type (`desc_type`, else
    `--dataset_config`). Changes nothing."""
    desc_type = patentlmm_args.desc_type or script_args.dataset_config
    if desc_type not in DESCRIPTION_TYPES:
        raise ValueError(f"desc_type (or --dataset_config) must be one of {DESCRIPTION_TYPES}, got {desc_type!r}.")
    if training_args.fsdp and training_args.use_cpu:
        raise ValueError(
            "--fsdp on the CPU (--use_cpu true) would be ignored: transformers then trains with plain DDP "
            "(MULTI_CPU), and without --use_cpu it refuses FSDP without GPUs. Use DDP on the CPU, FSDP on GPUs."
        )
    return desc_type


def _recipe_argv(argv: list[str]) -> list[str]:
    """`RECIPE.yaml [options]` (the spelling of `patentlmm train`) as `--config RECIPE.yaml [options]`, which is what
    TRL's parser reads; refuses a recipe given both ways."""
    if not argv or argv[0].startswith("-"):
        return argv
    if not argv[0].endswith((".yaml", ".yml")):
        raise SystemExit(f"train_sft.py: {argv[0]!r} is not an option: the one positional argument is a YAML recipe.")
    if any(arg == "--config" or arg.startswith("--config=") for arg in argv[1:]):
        raise SystemExit(f"train_sft.py: give the recipe once, as {argv[0]} or as --config, not both.")
    return ["--config", *argv]


def _cpu_defaults(argv: list[str]) -> list[str]:
    """`argv` with `CPU_DEFAULTS` added, when there is no CUDA GPU, for each flag it does not give."""
    if torch.cuda.is_available():
        return argv
    given = {arg.split("=")[0] for arg in argv}
    added = [item for flag, value in CPU_DEFAULTS.items() if flag not in given for item in (flag, value)]
    if added:
        logger.warning("No CUDA GPU: training on the CPU with %s.", " ".join(added))
    return [*argv, *added]


def parse_arguments(
    argv: Sequence[str] | None = None,
) -> tuple[ScriptArguments, SFTConfig, ModelConfig, PatentLMMArguments]:
    """The recipe (`RECIPE.yaml` first, or `--config RECIPE.yaml`) and the command line (default: `sys.argv[1:]`) as
    the four argument dataclasses, checked; nothing is loaded or trained. `desc_type` is filled from
    `--dataset_config` when unset."""
    argv = _cpu_defaults(_recipe_argv(list(sys.argv[1:] if argv is None else argv)))
    parser = TrlParser((ScriptArguments, SFTConfig, ModelConfig, PatentLMMArguments))
    script_args, training_args, model_args, patentlmm_args = parser.parse_args_and_config(args=argv)
    patentlmm_args.desc_type = check_arguments(script_args, training_args, patentlmm_args)
    return script_args, training_args, model_args, patentlmm_args

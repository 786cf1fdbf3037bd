"""PatentLMM's training options and the parsing of a recipe + command line into TRL's four argument dataclasses."""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser

from patentlmm_common.fields import option
from processing.constants import DESCRIPTION_TYPES

__all__ = [
    "BAD_ROWS",
    "CPU_DEFAULTS",
    "OPTION_RANGES",
    "CPU_TRAINING",
    "PROMPT_FORMAT_OF_STAGE",
    "PatentLMMArguments",
    "RecipeError",
    "check_arguments",
    "parse_arguments",
]

logger = logging.getLogger(__name__)

PROMPT_FORMAT_OF_STAGE = {1: "plain", 2: "vicuna_v1"}
# Without a CUDA GPU the recipes' bf16 is turned off: float32 on the CPU, unless the command line says otherwise.
CPU_TRAINING = {"bf16": False, "use_cpu": True}  # the `SFTConfig` fields
CPU_DEFAULTS = {**{f"--{name}": str(value).lower() for name, value in CPU_TRAINING.items()}, "--dtype": "float32"}
BAD_ROWS = ("skip", "refuse")  # --bad_rows: skip a bad dataset row (reported), or refuse to train, listing them all


def _between(low: float, high: float) -> Callable[[float], bool]:
    return lambda value: low <= value < high


# The numeric options of the four argument objects that have a range, whichever object holds them: option ->
# (the rule in words, the test of a finite value). None passes (unset); NaN and inf never do.
OPTION_RANGES: dict[str, tuple[str, Callable[[float], bool]]] = {
    **dict.fromkeys(
        ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
         "eval_accumulation_steps", "save_total_limit", "max_length", "lora_r", "max_train_samples",
         "max_eval_samples"),
        ("at least 1", lambda value: value >= 1),
    ),
    **dict.fromkeys(
        ("learning_rate", "mm_projector_lr", "adam_epsilon", "lora_alpha", "logging_steps", "save_steps",
         "eval_steps"),
        ("above 0", lambda value: value > 0),
    ),
    **dict.fromkeys(
        ("weight_decay", "max_grad_norm", "warmup_steps", "dataloader_num_workers"),
        ("at least 0", lambda value: value >= 0),
    ),
    **dict.fromkeys(("adam_beta1", "adam_beta2", "lora_dropout"), ("in [0, 1)", _between(0, 1))),
    **dict.fromkeys(("seed", "data_seed"), ("in [0, 2**32)", _between(0, 2**32))),
    "max_steps": ("-1 (stop after num_train_epochs) or at least 1", lambda value: value == -1 or value >= 1),
}  # fmt: skip


class RecipeError(ValueError):
    """A recipe or command-line value with which training cannot run as asked; the message names the option."""


@dataclass
class PatentLMMArguments:
    """PatentLMM's own options (the rest come from TRL's `ScriptArguments`, `SFTConfig` and `ModelConfig`)."""

    stage: int = option(2, "1: train the projector only; 2: LoRA on the decoder + projector.")
    desc_type: str | None = option(
        None, f"{' or '.join(DESCRIPTION_TYPES)}: the instruction and target; defaults to --dataset_config."
    )
    prompt_format: str | None = option(
        None,
        "The prompt format; by default the stage's ("
        + ", ".join(f"stage {stage}: {name}" for stage, name in PROMPT_FORMAT_OF_STAGE.items())
        + ").",
    )
    vision_tower: str | None = option(
        None,
        "Stage 1 from a base LLM (--model_name_or_path): folder or Hub id of the PatentMME encoder, either a PatentLMM "
        "folder (its encoder, OCR tokenizer and projector type are used) or a LayoutLMv3 model.",
    )
    projector_type: str = option("mlp2x_gelu", "mlp2x_gelu or linear (stage 1 with a LayoutLMv3 --vision_tower).")
    train_vision_tower: bool = option(
        False,
        "Also train the encoder: with the projector in stage 1, fully beside the LoRA in stage 2 (the saved config "
        "records freeze_vision_tower=False). For an encoder that starts from random weights, as in `patentlmm demo`; "
        "the paper keeps PatentMME frozen.",
    )
    mm_projector_lr: float | None = option(None, "Stage 2: learning rate of the projector (None: --learning_rate).")
    lora_init_adapter: str | None = option(
        None,
        "Folder of a PEFT LoRA adapter on the LLaMA decoder (PatentLLaMA), as the original loads it in both stages. "
        "Stage 1: the decoder carries it, frozen, while the projector trains; the stage-1 folder keeps the base "
        "decoder, so give stage 2 the same adapter. Stage 2: it starts the LoRA (its rank must equal --lora_r).",
    )
    merge_lora: bool = option(
        True, "Stage 2: save LoRA merged into a full model (default) or, with false, the adapter only."
    )
    max_train_samples: int | None = option(None, "Keep the first N training rows.")
    max_eval_samples: int | None = option(None, "Keep the first N evaluation rows.")
    bad_rows: str = option(
        "skip",
        "A dataset row that cannot train (its image does not decode, its description is empty or null, an OCR box "
        "is outside 0-1000): skip (default: each is reported with its id and reason, the run goes on, a summary at "
        "the end) or refuse (list them all and stop before the first step).",
    )

    def __post_init__(self):
        if self.stage not in PROMPT_FORMAT_OF_STAGE:
            raise RecipeError(f"--stage must be 1 or 2, got {self.stage}.")
        if self.prompt_format is None:
            self.prompt_format = PROMPT_FORMAT_OF_STAGE[self.stage]


def _check_ranges(*arguments: object) -> None:
    """Raises `RecipeError` naming the first option of `OPTION_RANGES` (held by any of `arguments`) out of range."""
    for name, (rule, within) in OPTION_RANGES.items():
        for holder in arguments:
            value = getattr(holder, name, None)
            if value is None or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not (math.isfinite(value) and within(value)):
                raise RecipeError(f"--{name} must be {rule}, got {value!r}.")


def check_arguments(
    script_args: ScriptArguments,
    training_args: SFTConfig,
    model_args: ModelConfig,
    patentlmm_args: PatentLMMArguments,
) -> str:
    """Raises `RecipeError`, naming the option, on a value out of its range (`OPTION_RANGES`) or combinations that
    cannot train as asked, before anything is loaded; returns the description type (`desc_type`, else
    `--dataset_config`). Changes nothing."""
    desc_type = patentlmm_args.desc_type or script_args.dataset_config
    if desc_type not in DESCRIPTION_TYPES:
        raise RecipeError(f"--desc_type (or --dataset_config) must be one of {DESCRIPTION_TYPES}, got {desc_type!r}.")
    _check_ranges(training_args, model_args, patentlmm_args)
    if training_args.max_steps == -1 and not (
        math.isfinite(training_args.num_train_epochs) and training_args.num_train_epochs > 0
    ):
        raise RecipeError(
            f"--num_train_epochs must be above 0 (or --max_steps at least 1), got {training_args.num_train_epochs}."
        )
    if patentlmm_args.bad_rows not in BAD_ROWS:
        raise RecipeError(f"--bad_rows must be one of {BAD_ROWS}, got {patentlmm_args.bad_rows!r}.")
    if training_args.fsdp and training_args.use_cpu:
        raise RecipeError(
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
    try:
        script_args, training_args, model_args, patentlmm_args = parser.parse_args_and_config(args=argv)
    except ValueError as error:  # transformers' own checks of a value (they name it) and options nobody knows
        raise RecipeError(str(error)) from error
    patentlmm_args.desc_type = check_arguments(script_args, training_args, model_args, patentlmm_args)
    return script_args, training_args, model_args, patentlmm_args

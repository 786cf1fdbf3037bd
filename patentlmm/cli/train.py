"""`patentlmm train RECIPE.yaml [options]`: run `train_sft.py` (both PatentLMM training stages) from the command line.

    patentlmm train recipes/stage1_brief.yaml --model_name_or_path lmsys/vicuna-7b-v1.5 \
        --vision_tower ./patentmme-hf --dataset_name ./patentdesc-355k --output_dir runs/stage1-brief
    accelerate launch --config_file recipes/accelerate/deepspeed_zero2.yaml -m patentlmm.cli train \
        recipes/stage2_brief.yaml --model_name_or_path runs/stage1-brief --output_dir runs/patentlmm-brief

Every option after the recipe goes to `train_sft.py` unchanged (TRL's `SFTConfig`, `ModelConfig`, `ScriptArguments`
and PatentLMM's own; the command line overrides the recipe).
"""

from __future__ import annotations

import argparse
from types import ModuleType

__all__ = ["add_arguments", "import_train_sft", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="YAML recipe, e.g. recipes/stage2_brief.yaml")
    parser.add_argument(
        "options", nargs=argparse.REMAINDER, help="train_sft.py options, e.g. --output_dir runs/x --max_steps 10"
    )


def import_train_sft(command: str) -> ModuleType:
    """The `train_sft` module, or a `SystemExit` telling how to install it (`command` names who needs it)."""
    try:
        import train_sft
    except ImportError as error:
        raise SystemExit(
            f"{command} needs train_sft.py and the training extra: `pip install -e '.[train]'` from a checkout of the "
            f"repository ({error})."
        ) from error
    return train_sft


def run(args: argparse.Namespace) -> int:
    import_train_sft("patentlmm train").main(["--config", args.recipe, *args.options])
    return 0

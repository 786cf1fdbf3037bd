"""`patentlmm train RECIPE.yaml [options]`: one training stage (`patentlmm.training`, as `train_sft.py` runs it)."""

from __future__ import annotations

import argparse

from patentlmm.extras import import_training

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="YAML recipe, e.g. recipes/stage2_brief.yaml")
    parser.add_argument(
        "options",
        nargs=argparse.REMAINDER,
        help="training options (TRL's and PatentLMM's; they override the recipe), e.g. --output_dir runs/x",
    )


def run(args: argparse.Namespace) -> int:
    import_training("patentlmm train").main(["--config", args.recipe, *args.options])
    return 0

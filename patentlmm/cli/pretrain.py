"""`patentlmm pretrain RECIPE.yaml [options]`: PatentMME pretraining (`patentlmm.pretraining`, docs/pretraining.md)."""

from __future__ import annotations

import argparse

from patentlmm.extras import import_training

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="YAML recipe, e.g. recipes/pretrain_patentmme.yaml")
    parser.add_argument(
        "options",
        nargs=argparse.REMAINDER,
        help="pretraining and TrainingArguments options (they override the recipe), e.g. --output_dir runs/mme",
    )


def run(args: argparse.Namespace) -> int:
    import_training("patentlmm pretrain")
    from patentlmm.pretraining import main

    main(["--config", args.recipe, *args.options])
    return 0

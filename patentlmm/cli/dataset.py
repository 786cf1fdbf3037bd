"""`patentlmm dataset ...`: the PatentDesc-355k builder (`python -m dataset_builder ...`, the same commands)."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset_args",
        nargs=argparse.REMAINDER,
        metavar="STEP ...",
        help="download | ocr | build | export-llava | all, then that step's options (see `patentlmm dataset -h`)",
    )


def run(args: argparse.Namespace) -> int:
    from dataset_builder.cli import main

    return main(args.dataset_args or ["--help"])

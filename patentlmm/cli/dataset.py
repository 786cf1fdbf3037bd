"""`patentlmm dataset STEP ...` (also `python -m dataset_builder STEP ...`): the PatentDesc-355k steps' command line."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from patentlmm.cli.arguments import add_options, options_from_args

if TYPE_CHECKING:
    from dataset_builder.options import AllOptions

__all__ = ["add_arguments", "all_options", "main", "run"]

_WITH_OUTPUT = {"build": "ROOT/patentdesc-355k", "export-llava": "ROOT/llava_json"}  # step -> default --output


def _step_options() -> dict[str, type]:
    from dataset_builder.options import (
        BuildOptions,
        DownloadOptions,
        ExportOptions,
        LayoutOptions,
        OcrOptions,
        VisualTokenOptions,
    )

    return {
        "download": DownloadOptions,
        "ocr": OcrOptions,
        "layout": LayoutOptions,
        "visual-tokens": VisualTokenOptions,
        "build": BuildOptions,
        "export-llava": ExportOptions,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One sub-command per step: `--root`, (`--output`,) then the fields of the step's options dataclass."""
    from dataset_builder.options import STEPS, AllOptions, summary

    options = {**_step_options(), "all": AllOptions}
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    for step, cls in options.items():
        subparser = steps.add_parser(step, help=summary(cls), description=summary(cls))
        subparser.add_argument("--root", type=Path, required=True, help="dataset folder laid out like DATASET/")
        if step in _WITH_OUTPUT:
            subparser.add_argument("--output", type=Path, help=f"output folder (default: {_WITH_OUTPUT[step]})")
        add_options(subparser, cls)
        if step != "all":
            continue
        subparser.add_argument(
            "--skip", action="append", choices=STEPS[:3], default=[], help="a step to leave out (repeatable)"
        )
        for name in STEPS:  # a CLI convenience: each step's own flags as one string, parsed by `all_options`
            subparser.add_argument(f"--{name}-args", default="", metavar="ARGS", help=f"`{name}`'s options, one string")


def all_options(args: argparse.Namespace) -> AllOptions:
    """The `AllOptions` of parsed `all` arguments: each `--STEP-args` string parsed by that step's own flags, so
    each step sees exactly its standalone defaults."""
    from dataset_builder.options import STEPS, AllOptions

    parsed = {}
    for step in STEPS:
        cls = _step_options()[step]
        parser = argparse.ArgumentParser(prog=f"all --{step}-args")
        add_options(parser, cls)
        text = getattr(args, f"{step.replace('-', '_')}_args")
        parsed[step] = options_from_args(cls, parser.parse_args(shlex.split(text)))
    return AllOptions(
        skip=tuple(args.skip),
        export_llava=args.export_llava,
        download=parsed["download"],
        ocr=parsed["ocr"],
        build=parsed["build"],
        export=parsed["export-llava"],
    )


def run(args: argparse.Namespace) -> int:
    """Runs the step; options that do not go together, a file that is not one JSON object and a step already
    running on the same files end it with one line naming the problem (exit status 2), not a traceback."""
    from dataset_builder.jsonstream import BrokenFileError
    from dataset_builder.steps import run_all, run_step
    from patentlmm_common.files import AlreadyRunningError

    try:
        if args.step == "all":
            return run_all(args.root, all_options(args))
        try:
            options = options_from_args(_step_options()[args.step], args)
        except ValueError as error:  # options that do not go together, e.g. visual-tokens without a tokenizer
            print(f"{args.step}: {error}", file=sys.stderr)
            return 2
        keywords = {"output": args.output} if args.step in _WITH_OUTPUT else {}
        return run_step(args.step, args.root, options, **keywords)
    except (AlreadyRunningError, BrokenFileError) as error:
        print(f"{args.step}: {error}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None, prog: str = "patentlmm dataset") -> int:
    """Parses `argv` (default: `sys.argv[1:]`) as `STEP OPTIONS...` and runs it; returns the exit status."""
    parser = argparse.ArgumentParser(prog=prog, description="PatentDesc-355k: download, OCR, build, export.")
    add_arguments(parser)
    return run(parser.parse_args(sys.argv[1:] if argv is None else argv))

"""`patentlmm describe --model M [options] [IMAGES...]`: describe figures (`patentlmm.inference.describe`)."""

from __future__ import annotations

import argparse
import sys

from patentlmm.cli.arguments import add_options, options_from_args
from patentlmm.inference.describe import DescribeOptions, describe
from patentlmm.inference.inputs import InputError
from patentlmm_common.files import AlreadyRunningError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="PatentLMM folder or Hub repo id")
    add_options(parser, DescribeOptions)


def run(args: argparse.Namespace) -> int:
    options = options_from_args(DescribeOptions, args)
    if bool(options.images) == bool(options.dataset):
        raise SystemExit("patentlmm describe: give image files or --dataset, not both (nor neither).")
    try:
        rows = describe(args.model, options, stream=sys.stdout, progress=True)
    except (InputError, AlreadyRunningError) as error:
        raise SystemExit(f"patentlmm describe: {error}") from None
    if options.output is not None:
        print(f"Wrote {len(rows)} descriptions to {options.output}", file=sys.stderr)
    return 0

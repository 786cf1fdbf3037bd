"""`patentlmm eval PREDICTIONS.jsonl [--output metrics.json]`: score descriptions (`patentlmm.evaluation`)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from patentlmm.cli.arguments import add_options, options_from_args
from patentlmm.evaluation.evaluate import evaluate_predictions, format_table
from patentlmm.evaluation.rows import PredictionsError
from patentlmm_common.fields import option

__all__ = ["EvalOptions", "add_arguments", "run"]


@dataclass
class EvalOptions:
    """The predictions to score and where the scores go."""

    predictions: Path = option(positional=True, help="JSONL written by `patentlmm describe`")
    output: Path | None = option(None, help="write the scores here as JSON")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, EvalOptions)


def run(args: argparse.Namespace) -> int:
    options = options_from_args(EvalOptions, args)
    if not options.predictions.is_file():
        raise SystemExit(f"patentlmm eval: no such file: {options.predictions}")
    try:
        results = evaluate_predictions(options.predictions, options.output)
    except PredictionsError as error:
        raise SystemExit(f"patentlmm eval: {error}") from None
    print(format_table(results))
    if options.output is not None:
        print(f"Wrote {options.output}", file=sys.stderr)
    return 0

"""`patentlmm init-tiny OUT_DIR`: write a tiny random-weight PatentLMM + processor, offline, in seconds."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from patentlmm.assembly.tiny import TinyModelArguments, init_tiny
from patentlmm.cli.arguments import add_options, options_from_args
from patentlmm_common.fields import option

__all__ = ["InitTinyOptions", "add_arguments", "run"]


@dataclass
class InitTinyOptions:
    """Where to write the tiny model; its shape is a `TinyModelArguments`, one `--field-name` option per field."""

    output_dir: Path = option(positional=True, help="folder to write (created if missing)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, InitTinyOptions)
    add_options(parser, TinyModelArguments)


def run(args: argparse.Namespace) -> int:
    options = options_from_args(InitTinyOptions, args)
    folder = init_tiny(options.output_dir, options_from_args(TinyModelArguments, args))
    print(f"Wrote a tiny random-weight PatentLMM (not trained: its output is noise) to {folder}")
    return 0

"""`patentlmm init-tiny OUT_DIR`: write a tiny random-weight PatentLMM + processor, offline, in seconds."""

from __future__ import annotations

import argparse
import dataclasses

from patentlmm.assembly.tiny import TinyModelArguments, init_tiny

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output_dir", help="folder to write (created if missing)")
    for field in dataclasses.fields(TinyModelArguments):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            type=type(field.default),
            default=field.default,
            help=f"default: {field.default}",
        )


def run(args: argparse.Namespace) -> int:
    shape = TinyModelArguments(
        **{field.name: getattr(args, field.name) for field in dataclasses.fields(TinyModelArguments)}
    )
    folder = init_tiny(args.output_dir, shape)
    print(f"Wrote a tiny random-weight PatentLMM (not trained: its output is noise) to {folder}")
    return 0

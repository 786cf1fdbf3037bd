"""`patentlmm convert-patentmme`: the authors' PatentMME checkpoint -> PatentMME, encoder and VQGAN folders."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from patentlmm.assembly.patentmme import convert_patentmme
from patentlmm.cli.arguments import add_options, options_from_args
from patentlmm_common.fields import option

__all__ = ["ConvertPatentMMEOptions", "add_arguments", "run"]


@dataclass
class ConvertPatentMMEOptions:
    """The inputs of one conversion: the keyword arguments of `convert_patentmme`."""

    checkpoint: Path = option(metavar="PATH", help="the authors' PatentMME Lightning checkpoint (last.ckpt).")
    output: Path = option(metavar="DIR", help="folder to write (replaced atomically if it exists).")
    ocr_tokenizer: str | None = option(
        None,
        metavar="DIR_OR_ID",
        help="LayoutLMv3 tokenizer saved with the model and encoder/ (microsoft/layoutlmv3-large, or a folder).",
    )
    compare_to: Path | None = option(
        None,
        metavar="DIR",
        help="the LayoutLMv3 the encoder started from: the report says whether its transformer layers changed.",
    )
    input_size: int = option(384, help="figure side the encoder is converted for (default: %(default)s).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ConvertPatentMMEOptions)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    options = options_from_args(ConvertPatentMMEOptions, args)
    try:
        report = convert_patentmme(**dataclasses.asdict(options))
    except (FileNotFoundError, OSError, ValueError) as error:  # the documented input errors, one line each
        raise SystemExit(f"patentlmm convert-patentmme: {str(error).splitlines()[0]}") from error
    for line in report:
        print(line)
    print(f"PatentMME written to {options.output} (encoder for stage 1: {options.output / 'encoder'}).")
    return 0

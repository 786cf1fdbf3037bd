"""The `patentlmm` command line: one table of commands, each a module with `add_arguments(parser)` and `run(args)`."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NamedTuple

from processing.ocr_base import OcrEngineNotInstalledError, TesseractNotAvailableError

__all__ = ["COMMANDS", "Command", "build_parser", "main"]


class Command(NamedTuple):
    """A command: the module that declares and runs it (imported only when it runs) and its one-line help."""

    module: str
    help: str


COMMANDS = {
    "init-tiny": Command("patentlmm.cli.init_tiny", "write a tiny random-weight model + processor (tests, smoke runs)"),
    "describe": Command("patentlmm.cli.describe", "describe patent figures with a PatentLMM model"),
    "convert-original": Command(
        "patentlmm.cli.convert", "convert the original PatentMME/PatentLMM checkpoints to a HF folder"
    ),
    "ocr": Command("patentlmm.cli.ocr", "what an OCR engine reads on figures: words and 0-1000 boxes"),
    "eval": Command("patentlmm.cli.eval", "score descriptions: the paper's metrics and reference-numeral fidelity"),
    "train": Command("patentlmm.cli.train", "train PatentLMM (stage 1 or 2) from a YAML recipe"),
    "pretrain": Command("patentlmm.cli.pretrain", "pretrain the PatentMME encoder (MLM, MIM, PCH, TNA) from a recipe"),
    "convert-patentmme": Command(
        "patentlmm.cli.convert_patentmme", "convert the authors' PatentMME checkpoint (heads, VQGAN) to HF folders"
    ),
    "dataset": Command("patentlmm.cli.dataset", "PatentDesc-355k: download, ocr, build, export-llava, all"),
    "push": Command("patentlmm.cli.push", "publish a model folder (with its card) or the built dataset to a Hub"),
    "demo": Command(
        "patentlmm.cli.demo", "offline end to end on the bundled figures: data, training, descriptions, report"
    ),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser of the command line `argv`: only the command it names imports its module to declare its arguments
    (the others stay unloaded)."""
    parser = argparse.ArgumentParser(prog="patentlmm", description="PatentLMM: describe patent figures.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, command in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=command.help, description=command.help)
        subparser.set_defaults(module_name=command.module)
        if name == chosen:
            importlib.import_module(command.module).add_arguments(subparser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parses `argv` (default: `sys.argv[1:]`) and runs its command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        return int(importlib.import_module(args.module_name).run(args) or 0)
    except (OcrEngineNotInstalledError, TesseractNotAvailableError) as error:  # a part to install: one line, no trace
        raise SystemExit(f"patentlmm {args.command}: {error}") from None


if __name__ == "__main__":
    sys.exit(main())

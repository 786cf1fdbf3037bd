"""The `patentlmm` command line: one table of commands, each a module with `add_arguments(parser)` and `run(args)`."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NamedTuple

__all__ = ["COMMANDS", "Command", "build_parser", "main"]


class Command(NamedTuple):
    """A command: the module that declares and runs it (imported only when it runs), its one-line help, and, for a
    group such as `dataset`, its own sub-commands."""

    module: str | None
    help: str
    commands: dict[str, Command] | None = None


COMMANDS = {
    "init-tiny": Command("patentlmm.cli.init_tiny", "write a tiny random-weight model + processor (tests, smoke runs)"),
    "describe": Command("patentlmm.cli.describe", "describe patent figures with a PatentLMM model"),
    "convert-original": Command(
        "patentlmm.cli.convert", "convert the original PatentMME/PatentLMM checkpoints to a HF folder"
    ),
    "ocr": Command("patentlmm.cli.ocr", "what an OCR engine reads on figures: words and 0-1000 boxes"),
    "eval": Command("patentlmm.cli.eval", "score descriptions: the paper's metrics and reference-numeral fidelity"),
    "train": Command("patentlmm.cli.train", "train PatentLMM (stage 1 or 2) from a YAML recipe"),
    "dataset": Command("patentlmm.cli.dataset", "PatentDesc-355k: download, ocr, build, export-llava, all"),
    "push": Command("patentlmm.cli.push", "publish a model folder (with its card) or the built dataset to a Hub"),
    "demo": Command(
        "patentlmm.cli.demo", "offline end to end on the bundled figures: data, training, descriptions, report"
    ),
}


def _add_commands(
    parser: argparse.ArgumentParser, commands: dict[str, Command], argv: list[str], dest: str = "command"
) -> None:
    """Adds `commands` as sub-parsers; only the one `argv` names imports its module to declare its arguments."""
    subparsers = parser.add_subparsers(dest=dest, required=True, metavar="COMMAND")
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, command in commands.items():
        subparser = subparsers.add_parser(name, help=command.help, description=command.help)
        if name != chosen:
            continue
        if command.commands is not None:
            _add_commands(subparser, command.commands, argv[argv.index(name) + 1 :], dest=f"{dest}_{name}")
        else:
            subparser.set_defaults(module_name=command.module)
            importlib.import_module(command.module).add_arguments(subparser)


def build_parser(
    argv: list[str], commands: dict[str, Command] = COMMANDS, prog: str = "patentlmm"
) -> argparse.ArgumentParser:
    """The parser of the command line `argv` (the modules of the other commands stay unloaded)."""
    parser = argparse.ArgumentParser(prog=prog, description="PatentLMM: describe patent figures.")
    _add_commands(parser, commands, argv)
    return parser


def main(argv: list[str] | None = None, commands: dict[str, Command] = COMMANDS, prog: str = "patentlmm") -> int:
    """Parses `argv` (default: `sys.argv[1:]`) and runs its command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv, commands, prog).parse_args(argv)
    return int(importlib.import_module(args.module_name).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""The `patentlmm` command: one subcommand per module, each exposing `add_arguments(parser)` and `run(args)`."""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main"]

# subcommand -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS = {
    "init-tiny": ("patentlmm.tiny_command", "write a tiny random-weight model + processor (tests, smoke runs)"),
    "describe": ("patentlmm.describe", "describe patent figures with a PatentLMM model"),
    "convert-original": ("patentlmm.convert", "convert the original PatentMME/PatentLMM checkpoints to a HF folder"),
    "ocr": ("patentlmm.ocr_command", "what an OCR engine reads on figures: words and 0-1000 boxes (--list-engines)"),
    "eval": ("patentlmm.evaluate", "score descriptions: the paper's BLEU/ROUGE/METEOR and reference-numeral fidelity"),
    "train": ("patentlmm.train", "train PatentLMM (stage 1 or 2) from a YAML recipe: patentlmm train RECIPE.yaml"),
    "dataset": ("patentlmm.dataset_command", "PatentDesc-355k: download, ocr, build, export-llava, all"),
    "push": ("push_to_hub", "publish a model folder (with its card) or the built dataset to a Hub"),
    "demo": ("patentlmm.demo", "offline end to end on the bundled figures: data, training, descriptions, HTML report"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported to declare its arguments (the others stay unloaded)."""
    parser = argparse.ArgumentParser(prog="patentlmm", description="PatentLMM: describe patent figures.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        subparser.set_defaults(module_name=module_name)
        if name == command:
            importlib.import_module(module_name).add_arguments(subparser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    return int(importlib.import_module(args.module_name).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

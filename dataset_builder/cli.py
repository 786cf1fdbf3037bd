"""`python -m dataset_builder` (and `patentlmm dataset`): one subcommand per step, each a module exposing
`add_arguments(parser)` and `run(args)`, imported only when its command runs.

    python -m dataset_builder download --root DATASET          # images/<id>.png from each image_url
    python -m dataset_builder ocr --root DATASET               # ocr/<engine key>/ocr_cache.jsonl (words + boxes)
    python -m dataset_builder build --root DATASET             # patentdesc-355k/ (Parquet + dataset card)
    python -m dataset_builder export-llava --root DATASET      # llava_json/ for the original code
    python -m dataset_builder all --root DATASET --export-llava # download -> ocr -> build (-> export-llava)

`all` runs the steps in order on one root and stops at the first that fails. A step's own options are passed as
one string: `all --root DATASET --download-args "--workers 32" --build-args "--workers 8"`. This module holds
`all` itself (its `add_arguments` and `run`).
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys

__all__ = [
    "COMMANDS",
    "STEPS",
    "add_arguments",
    "at_least",
    "build_parser",
    "main",
    "run",
]

# subcommand -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS = {
    "download": ("dataset_builder.download", "download the figures from their image_url (resumable)"),
    "ocr": ("dataset_builder.ocr_stage", "OCR the figures (--engine drawing|tesseract|rapidocr), cached (resumable)"),
    "build": ("dataset_builder.build", "write the patentdesc-355k/ datasets folder (Parquet + dataset card)"),
    "export-llava": ("dataset_builder.export_llava", "write llava_json/ as the original prep_patent_data.py"),
    "all": ("dataset_builder.cli", "run download, ocr, build (and export-llava) on one root"),
}
STEPS = ("download", "ocr", "build", "export-llava")  # the order of `all`


def at_least(minimum: float, kind: type = int, exclusive: bool = False):
    """An argparse `type`: a `kind` number >= `minimum` (> with `exclusive`), else a one-line error naming the
    option's value, e.g. `argument --workers: 0 is not an integer >= 1`."""
    relation = ">" if exclusive else ">="
    noun = "an integer" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value != value or (value <= minimum if exclusive else value < minimum):  # NaN too
            raise argparse.ArgumentTypeError(f"{text} is not {noun} {relation} {minimum:g}")
        return value

    parse.__name__ = f"{kind.__name__} {relation} {minimum:g}"
    return parse


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported to declare its arguments (the others stay unloaded)."""
    parser = argparse.ArgumentParser(
        prog="python -m dataset_builder", description="PatentDesc-355k: download, OCR, build, export."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        subparser.set_defaults(module_name=module_name)
        if name == command:
            importlib.import_module(module_name).add_arguments(subparser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `all`."""
    parser.add_argument("--root", required=True, help="dataset folder laid out like the official DATASET/")
    parser.add_argument(
        "--skip", action="append", choices=STEPS[:3], default=[], help="a step to leave out (repeatable)"
    )
    parser.add_argument("--export-llava", action="store_true", help="also write llava_json/ at the end")
    for step in STEPS:
        parser.add_argument(f"--{step}-args", default="", metavar="ARGS", help=f"options of `{step}`, one string")


def step_arguments(step: str, root: str, extra: str) -> argparse.Namespace:
    """Parses `--root ROOT EXTRA` with `step`'s own parser, so each step sees exactly its standalone defaults."""
    parser = argparse.ArgumentParser(prog=f"python -m dataset_builder {step}")
    importlib.import_module(COMMANDS[step][0]).add_arguments(parser)
    return parser.parse_args(["--root", root, *shlex.split(extra)])


def run(args: argparse.Namespace) -> int:
    """`all`: each step that is not skipped, in order; returns the first non-zero exit status."""
    steps = [step for step in STEPS[:3] if step not in args.skip] + (["export-llava"] if args.export_llava else [])
    for step in steps:
        print(f"== {step}", flush=True)
        step_args = step_arguments(step, args.root, getattr(args, f"{step.replace('-', '_')}_args"))
        status = int(importlib.import_module(COMMANDS[step][0]).run(step_args) or 0)
        if status != 0:
            print(f"{step} failed with exit status {status}; stopping.", file=sys.stderr)
            return status
    return 0


def main(argv: list[str] | None = None) -> int:
    """Runs the command; a file that is not one JSON object and a step already running on the same files end it
    with one line naming the file and the problem (exit status 2), not a traceback."""
    from .files import AlreadyRunningError
    from .jsonstream import BrokenFileError

    argv = sys.argv[1:] if argv is None else argv
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(importlib.import_module(args.module_name).run(args) or 0)
    except (AlreadyRunningError, BrokenFileError) as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 2

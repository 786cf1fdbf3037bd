"""`patentlmm ocr [--engine NAME] [--json] FIGURES...`: what an OCR engine reads on figures (docs/ocr.md)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from patentlmm.cli.arguments import add_options, options_from_args
from patentlmm_common.fields import option
from processing.images import ImageTooLargeError, load_image
from processing.ocr_base import OcrSettingError
from processing.ocr_engines import DEFAULT_OCR_ENGINE, OCR_ENGINES, load_ocr_engine

__all__ = ["OcrFilesOptions", "add_arguments", "run"]


@dataclass
class OcrFilesOptions:
    """`patentlmm ocr`: the figure files to read, the engine and its settings, and how to print what it read (the
    dataset step's options are `dataset_builder.options.OcrOptions`)."""

    images: list[Path] = option(positional=True, default_factory=list, help="figure files (PNG, TIFF, JPEG, ...)")
    engine: str = option(DEFAULT_OCR_ENGINE, choices=sorted(OCR_ENGINES), help="OCR engine")
    settings: dict = option(
        default_factory=dict, type=json.loads, help='engine settings as JSON, e.g. \'{"config": "--psm 11"}\''
    )
    as_json: bool = option(False, flag="--json", help="one JSON object per figure and line")
    list_engines: bool = option(False, help="name the engines, one line each, and exit")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, OcrFilesOptions)


def run(args: argparse.Namespace) -> int:
    """Prints each figure's words (or a JSON line); a figure that cannot be read is reported on stderr (path +
    reason), the others go on, and the exit status is then 1."""
    options = options_from_args(OcrFilesOptions, args)
    if options.list_engines:
        for name, engine_class in OCR_ENGINES.items():
            print(f"{name}: {engine_class.summary}{' (default)' if name == DEFAULT_OCR_ENGINE else ''}")
        return 0
    if not options.images:
        raise SystemExit("patentlmm ocr: give one or more figure files (or --list-engines)")
    try:
        engine = load_ocr_engine(options.engine, **options.settings)
    except OcrSettingError as error:
        raise SystemExit(f"patentlmm ocr: bad --settings for {options.engine}: {error}") from None
    status = 0
    for path in options.images:
        try:
            words, boxes = engine(load_image(path))
        except (OSError, ValueError, SyntaxError, ImageTooLargeError) as error:
            print(f"patentlmm ocr: {path}: {error}", file=sys.stderr)
            status = 1
            continue
        if options.as_json:
            print(json.dumps({"image": str(path), "engine": engine.name, "words": words, "boxes": boxes}))
        else:
            print(f"{path} ({engine.name}, {len(words)} words): {' '.join(words)}")
    return status

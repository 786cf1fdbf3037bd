"""`patentlmm ocr`: what an OCR engine reads on figures (words and 0-1000 boxes on each image as given).

    patentlmm ocr figure.png other.tif                         # the `drawing` engine, one line of words per figure
    patentlmm ocr figure.png --engine tesseract --json         # one JSON object per line
    patentlmm ocr figure.png --engine tesseract --settings '{"config": "--psm 11"}'
    patentlmm ocr --list-engines

`--json` lines: `{"image": PATH, "engine": NAME, "words": [...], "boxes": [[x0, y0, x1, y1], ...]}`. A figure that
cannot be read is reported on stderr (path + reason) and the others go on; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from processing.images import ImageTooLargeError, load_image
from processing.ocr import DEFAULT_OCR_ENGINE, OCR_ENGINES, load_ocr_engine

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", type=Path, help="figure files (PNG, TIFF, JPEG, ...)")
    parser.add_argument("--engine", choices=sorted(OCR_ENGINES), default=DEFAULT_OCR_ENGINE, help="OCR engine")
    parser.add_argument(
        "--settings", type=json.loads, default={}, help='engine settings as JSON, e.g. \'{"config": "--psm 11"}\''
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per figure and line")
    parser.add_argument("--list-engines", action="store_true", help="name the engines, one line each, and exit")


def run(args: argparse.Namespace) -> int:
    if args.list_engines:
        for name, summary in OCR_ENGINES.items():
            print(f"{name}: {summary}{' (default)' if name == DEFAULT_OCR_ENGINE else ''}")
        return 0
    if not args.images:
        raise SystemExit("patentlmm ocr: give one or more figure files (or --list-engines)")
    try:
        engine = load_ocr_engine(args.engine, **args.settings)
    except TypeError as error:
        raise SystemExit(f"patentlmm ocr: bad --settings for {args.engine}: {error}") from error
    status = 0
    for path in args.images:
        try:
            words, boxes = engine(load_image(path))
        except (OSError, ValueError, SyntaxError, ImageTooLargeError) as error:
            print(f"patentlmm ocr: {path}: {error}", file=sys.stderr)
            status = 1
            continue
        if args.json:
            print(json.dumps({"image": str(path), "engine": engine.name, "words": words, "boxes": boxes}))
        else:
            print(f"{path} ({engine.name}, {len(words)} words): {' '.join(words)}")
    return status

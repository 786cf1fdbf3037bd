"""The checks of PatentDesc-355k rows before training: why a row cannot train (image, description, OCR), and the split
without such rows, each reported with its id and reason."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from datasets import Dataset

from patentlmm_common.files import atomic_write
from processing.images import ImageTooLargeError, decode_image

__all__ = [
    "SKIPPED_ROWS_FILE",
    "BadRowsError",
    "MAX_BOX_COORDINATE",
    "report_skipped",
    "row_problem",
    "without_bad_rows",
]

logger = logging.getLogger(__name__)

MAX_BOX_COORDINATE = 1000  # OCR boxes are normalised to 0-1000, as LayoutLMv3 reads them
PROBLEM_COLUMN = "problem"
SKIPPED_ROWS_FILE = "skipped_rows.jsonl"  # in the output folder: one {"split", "image_id", "reason"} per skipped row


class BadRowsError(ValueError):
    """Rows that cannot train (under `--bad_rows refuse`, or none left): `rows` lists (split, image id, reason)."""

    def __init__(self, rows: list[tuple[str, str, str]], why: str = "--bad_rows refuse; skip trains without them"):
        self.rows = rows
        listed = "".join(f"\n  {split} {image_id}: {reason}" for split, image_id, reason in rows)
        super().__init__(f"{len(rows)} dataset rows cannot train ({why}):{listed}")


def _box_problem(kind: str, boxes: Any) -> str | None:
    for index, box in enumerate(boxes or []):
        if box is None or len(box) != 4 or any(v is None or not 0 <= v <= MAX_BOX_COORDINATE for v in box):
            return f"{kind} {index} {box} is outside 0-{MAX_BOX_COORDINATE}"
    return None


def _ocr_problem(row: dict[str, Any]) -> str | None:
    words, boxes = row.get("ocr_words"), row.get("ocr_boxes")
    if (words is None) != (boxes is None):
        return "ocr_words is null but ocr_boxes is not" if words is None else "ocr_boxes is null but ocr_words is not"
    if words is not None:
        if len(words) != len(boxes):
            return f"{len(words)} OCR words but {len(boxes)} OCR boxes"
        if None in words:
            return f"OCR word {words.index(None)} is null"
    return _box_problem("OCR box", boxes) or _box_problem("official OCR box", row.get("ocr_bbox"))


def row_problem(row: dict[str, Any], max_image_pixels: int | None) -> str | None:
    """Why a PatentDesc-355k row (`image` still encoded: `{"bytes", "path"}`) cannot train, else None: a null or blank
    `description` (never an empty target), OCR words and boxes that do not pair or a box outside 0-1000, an image
    over `max_image_pixels` or that does not decode in full."""
    description = row.get("description")
    if description is None:
        return "the description is null"
    if not description.strip():
        return "the description is empty"
    problem = _ocr_problem(row)
    if problem is not None:
        return problem
    image = row.get("image")
    if isinstance(image, dict):
        image = image.get("bytes") or image.get("path")
    if image is None:
        return "the image is null"
    try:
        decode_image(image, max_image_pixels).close()
    except ImageTooLargeError as error:
        return f"the image is too large: {error}"
    except Exception as error:  # noqa: BLE001 (damaged images raise SyntaxError, IndexError, RuntimeError, ...)
        return f"the image does not decode: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
    return None


def without_bad_rows(
    dataset: Dataset, split: str, max_image_pixels: int | None, num_proc: int | None = None
) -> tuple[Dataset, list[tuple[str, str, str]]]:
    """(`dataset` without the rows `row_problem` refuses, [(split, image id, reason)] of those). Every image is decoded
    once (`num_proc` processes); the verdicts are cached by `datasets`, so a rerun on the same data reads them."""
    encoded = dataset
    if getattr(dataset.features.get("image"), "decode", False):
        encoded = dataset.cast_column("image", replace(dataset.features["image"], decode=False))
    problems = encoded.map(
        lambda row: {PROBLEM_COLUMN: row_problem(row, max_image_pixels) or ""},
        remove_columns=encoded.column_names,
        num_proc=num_proc,
        desc=f"checking the {split} rows",
    )[PROBLEM_COLUMN]
    bad = [index for index, problem in enumerate(problems) if problem]
    if not bad:
        return dataset, []
    ids = dataset.select(bad).select_columns(["image_id"])["image_id"]
    skipped = [(split, image_id, problems[index]) for image_id, index in zip(ids, bad)]
    keep = sorted(set(range(len(dataset))) - set(bad))
    return dataset.select(keep), skipped


def report_skipped(output_dir: str | os.PathLike, skipped: list[tuple[str, str, str]]) -> None:
    """The end-of-run summary of the skipped rows: `SKIPPED_ROWS_FILE` in `output_dir` and one warning line."""
    path = Path(output_dir) / SKIPPED_ROWS_FILE
    with atomic_write(path) as handle:
        for split, image_id, reason in skipped:
            handle.write(json.dumps({"split": split, "image_id": image_id, "reason": reason}) + "\n")
    splits = sorted({split for split, _, _ in skipped})
    counts = ", ".join(f"{split}: {sum(row[0] == split for row in skipped)}" for split in splits)
    logger.warning("Skipped %d dataset rows that cannot train (%s), listed in %s.", len(skipped), counts, path)

"""Prediction rows checked one by one before scoring: each problem named by file, line and id, only valid rows kept."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processing.constants import DESCRIPTION_TYPES

__all__ = ["PredictionRows", "PredictionsError", "check_rows", "is_blank", "read_predictions"]

_OPTIONAL_STRINGS = ("reference", "fidelity_ocr")  # None or absent, else a string
_STRING_LISTS = ("figure_numerals", "figure_labels")  # absent, else a list of strings


_ID = re.compile(rb'"image_id"\s*:\s*"((?:[^"\\]|\\.)*)"')  # an id still readable on a line that does not parse


class PredictionsError(ValueError):
    """Predictions that cannot be scored at all (no valid row)."""


class _LineError(ValueError):
    """A line that does not read, with the `image_id` still found on it (`-` when none)."""

    def __init__(self, reason: str, raw: bytes):
        super().__init__(reason)
        found = _ID.search(raw)
        self.image_id = found.group(1).decode("utf-8", "replace") if found else "-"


@dataclass
class PredictionRows:
    """The valid rows of a predictions file (or list), and the problems of the others, one line each
    (`"FILE line N [ID]: reason"`). `read` counts the non-blank lines (or rows) looked at."""

    source: str
    rows: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    read: int = 0


def is_blank(text: str | None) -> bool:
    """True for a missing, empty or whitespace-only text (a reference that cannot be scored)."""
    return text is None or not text.strip()


def _kind(value: Any) -> str:
    return f"{json.dumps(value, ensure_ascii=False)[:40]} ({type(value).__name__})"


def _row_problem(row: Any) -> str | None:
    """Why `row` cannot be scored (a wrong type, a missing field), or None."""
    if not isinstance(row, dict):
        return f"not a JSON object but {_kind(row)}"
    if not isinstance(row.get("image_id"), str) or not row["image_id"]:
        return "no image_id" if "image_id" not in row else f"image_id is {_kind(row['image_id'])}, not a string"
    if not isinstance(row.get("prediction"), str):
        return "no prediction" if "prediction" not in row else f"prediction is {_kind(row['prediction'])}, not a string"
    if row.get("type", DESCRIPTION_TYPES[0]) not in DESCRIPTION_TYPES:
        return f"type is {_kind(row['type'])}, not one of {', '.join(DESCRIPTION_TYPES)}"
    for key in _OPTIONAL_STRINGS:
        if row.get(key) is not None and not isinstance(row[key], str):
            return f"{key} is {_kind(row[key])}, not a string"
    for key in _STRING_LISTS:
        if key in row and not (isinstance(row[key], list) and all(isinstance(v, str) for v in row[key])):
            return f"{key} is {_kind(row[key])}, not a list of strings"
    return None


def _id_of(row: Any) -> str:
    """The row's image_id as a problem names it (`-` when it has none)."""
    if isinstance(row, _LineError):
        return row.image_id
    image_id = row.get("image_id") if isinstance(row, dict) else None
    return image_id if isinstance(image_id, str) and image_id else "-"


def check_rows(numbered: Iterable[tuple[int, Any]], source: str, unit: str = "line") -> PredictionRows:
    """Checks `(number, value)` pairs (a value that is an `Exception` is a line that did not read): keeps the valid
    rows, the first of each `(type, image_id)` (a later duplicate is reported and counted once), lists the rest."""
    result = PredictionRows(source)
    first: dict[tuple[str, str], int] = {}
    for number, row in numbered:
        result.read += 1
        where = f"{source} {unit} {number} [{_id_of(row)}]"
        problem = str(row) if isinstance(row, Exception) else _row_problem(row)
        if problem is None:
            key = (row.get("type", DESCRIPTION_TYPES[0]), row["image_id"])
            if key in first:
                problem = f"the {key[0]} id {key[1]} again (first on {unit} {first[key]}): counted once"
            else:
                first[key] = number
                result.rows.append(row)
                continue
        result.problems.append(f"{where}: {problem}")
    return result


def _numbered_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """`(line number, value or error)` of each non-blank line of a JSONL file read as bytes: undecodable bytes, a
    line that does not parse and a torn last line (no newline at its end) give an error naming the cause."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            yield number, _LineError(f"bytes that are not UTF-8 (at byte {error.start} of the line)", raw)
            continue
        try:
            yield number, json.loads(text)
        except ValueError as error:
            torn = number == len(lines) and not data.endswith(b"\n")
            reason = "a torn last line (no newline at its end: an interrupted write)" if torn else f"not JSON ({error})"
            yield number, _LineError(reason, raw)


def read_predictions(path: str | os.PathLike) -> PredictionRows:
    """The rows of a predictions JSONL checked line by line (`check_rows`); line numbers count blank lines too."""
    path = Path(path)
    return check_rows(_numbered_lines(path), str(path))

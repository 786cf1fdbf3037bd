"""Streaming readers of the official PatentDesc-355k files, with validation that reports and goes on.

The release is one JSON object of ~355K entries (several hundred MB once detailed descriptions are counted), so it
is never loaded whole: `iter_records` parses it incrementally with `ijson` and yields one validated `Record` at a
time. Every entry that cannot be used is written to a report (`ReportWriter`: image id + reason) and skipped; the
run goes on. What is checked:

- the image id: `<publication>__<figure>`, no path separator, no `..` (it becomes a file name);
- the entry: an object with the string fields `image_url`, `brief_description` and `detailed_description`;
- bytes that are not UTF-8 (the entry holding them is rejected, the rest of the file is read);
- duplicate ids: the first occurrence is kept and later ones are reported (`json.load` would keep the last one,
  silently);
- split lists (`data_splits/` or `splits/`, one id a line): malformed ids, and ids listed twice;
- the official `ocr.json` (`{"<id>.png": {"input_ids", "attention_mask", "bbox"}}`) and the OCR cache
  (`ocr/ocr_cache*.jsonl`, one `{"image_id", "words", "boxes", "width", "height"}` a line): malformed entries.

Sets and maps keyed by image id that must live for a whole run (ids seen, split of each id, OCR of each id) are
`DiskMap`s, small SQLite files, so memory stays flat from 35K to 355K entries.
"""

from __future__ import annotations

import codecs
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import ijson

from .ids import InvalidImageIdError, figure_of, patent_id_of, validate_image_id
from .reports import ReportWriter

__all__ = [
    "DESCRIPTION_FIELDS",
    "REQUIRED_FIELDS",
    "DiskMap",
    "InvalidRecordError",
    "Record",
    "find_split_dir",
    "iter_ocr_cache",
    "iter_official_ocr",
    "iter_records",
    "iter_split_file",
    "validate_entry",
]

# config name -> field of PatentDesc-355k.json
DESCRIPTION_FIELDS = {"brief": "brief_description", "detailed": "detailed_description"}
REQUIRED_FIELDS = ("image_url", "brief_description", "detailed_description")
SPLIT_DIR_NAMES = ("data_splits", "splits")  # the SPEC's name, then the original code's

# Bytes that are not UTF-8 decode to this Unicode noncharacter, which valid text never contains; an entry holding
# it is rejected with a clear reason instead of the whole parse stopping at the first bad byte.
_NOT_UTF8 = "\ufdd0"
codecs.register_error("patentdesc-mark-invalid", lambda error: (_NOT_UTF8, error.end))


class InvalidRecordError(ValueError):
    """An entry of PatentDesc-355k.json that cannot be used; the message is the reason written to the report."""


@dataclass(frozen=True)
class Record:
    """One validated entry of PatentDesc-355k.json."""

    image_id: str
    patent_id: str
    figure: str
    image_url: str
    brief_description: str
    detailed_description: str

    def description(self, config: str) -> str:
        """The description for `config` (`brief` or `detailed`), stripped as the original dataset class does."""
        return getattr(self, DESCRIPTION_FIELDS[config]).strip()


class DiskMap:
    """A `str -> str` map in a SQLite file: `in`, `[]`, `del`, `get`, `add` (a set member), `keys()` in insert order.

    Used for the per-id bookkeeping of a run, so that 355K ids cost disk, not memory.
    """

    def __init__(self, path: str | os.PathLike):
        self._connection = sqlite3.connect(os.fspath(path))
        self._connection.execute("PRAGMA journal_mode = OFF")
        self._connection.execute("PRAGMA synchronous = OFF")
        self._connection.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def __contains__(self, key: str) -> bool:
        return self._connection.execute("SELECT 1 FROM kv WHERE key = ?", (key,)).fetchone() is not None

    def __setitem__(self, key: str, value: str) -> None:
        self._connection.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __delitem__(self, key: str) -> None:
        self._connection.execute("DELETE FROM kv WHERE key = ?", (key,))

    def get(self, key: str, default: str | None = None) -> str | None:
        row = self._connection.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def add(self, key: str) -> None:
        self[key] = ""

    def keys(self) -> Iterator[str]:
        for (key,) in self._connection.execute("SELECT key FROM kv ORDER BY rowid"):
            yield key

    def close(self) -> None:
        self._connection.close()


class _MarkInvalidUtf8:
    """A binary reader that passes UTF-8 through and turns every invalid byte sequence into `_NOT_UTF8`."""

    def __init__(self, handle: BinaryIO, chunk_size: int = 1 << 20):
        self._handle = handle
        self._chunk_size = chunk_size
        self._decoder = codecs.getincrementaldecoder("utf-8")("patentdesc-mark-invalid")

    def read(self, size: int = -1) -> bytes:
        while True:  # an empty result means end of file to the parser, so never return b"" before it
            raw = self._handle.read(self._chunk_size if size is None or size < 0 else size)
            text = self._decoder.decode(raw, final=not raw)
            if text or not raw:
                return text.encode("utf-8")


def _report(report: ReportWriter | None, image_id: str | None, reason: str) -> None:
    if report is not None:
        report.add(image_id, reason)


def _has_invalid_utf8(value: Any) -> bool:
    if isinstance(value, str):
        return _NOT_UTF8 in value
    if isinstance(value, dict):
        return any(_has_invalid_utf8(k) or _has_invalid_utf8(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_invalid_utf8(v) for v in value)
    return False


def validate_entry(image_id: str, entry: Any) -> Record:
    """One `(key, value)` pair of PatentDesc-355k.json -> `Record`, or `InvalidRecordError` saying what is wrong."""
    if _NOT_UTF8 in image_id:
        raise InvalidRecordError(f"the image id {image_id!r} contains bytes that are not UTF-8")
    try:
        validate_image_id(image_id)
    except InvalidImageIdError as error:
        raise InvalidRecordError(str(error)) from None
    if not isinstance(entry, dict):
        raise InvalidRecordError(f"the entry is a {_json_type(entry)}, expected an object with {list(REQUIRED_FIELDS)}")
    missing = [field for field in REQUIRED_FIELDS if field not in entry]
    if missing:
        raise InvalidRecordError(f"missing field(s) {missing}")
    for field in REQUIRED_FIELDS:
        if not isinstance(entry[field], str):
            raise InvalidRecordError(f"field {field!r} is a {_json_type(entry[field])}, expected a string")
        if _NOT_UTF8 in entry[field]:
            raise InvalidRecordError(f"field {field!r} contains bytes that are not UTF-8")
    return Record(
        image_id=image_id,
        patent_id=patent_id_of(image_id),
        figure=figure_of(image_id),
        image_url=entry["image_url"],
        brief_description=entry["brief_description"],
        detailed_description=entry["detailed_description"],
    )


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def iter_records(
    json_path: str | os.PathLike, report: ReportWriter | None = None, seen: Any = None
) -> Iterator[Record]:
    """Streams the valid entries of PatentDesc-355k.json in file order; invalid ones go to `report`.

    `seen` (a `set` or a `DiskMap`, default a new `set`) collects the ids read, to reject duplicates; pass a
    `DiskMap` for the full file to keep memory flat. A file that stops being JSON midway (truncated, say) raises
    `ValueError` after the entries before the damage were yielded.
    """
    seen = set() if seen is None else seen
    count = 0
    with open(json_path, "rb") as handle:
        try:
            for image_id, entry in ijson.kvitems(_MarkInvalidUtf8(handle), "", use_float=True):
                count += 1
                try:
                    record = validate_entry(image_id, entry)
                except InvalidRecordError as error:
                    _report(report, image_id, str(error))
                    continue
                if image_id in seen:
                    _report(report, image_id, "duplicate image id: an earlier entry with this id is kept")
                    continue
                seen.add(image_id)
                yield record
        except ijson.JSONError as error:
            raise ValueError(f"{json_path} is not valid JSON after {count} entries: {error}") from error


def find_split_dir(root: str | os.PathLike) -> Path | None:
    """`root/data_splits` or `root/splits`, whichever holds split lists first; None when neither does."""
    for name in SPLIT_DIR_NAMES:
        folder = Path(root) / name
        if folder.is_dir() and any(folder.glob("*.txt")):
            return folder
    return None


def iter_split_file(path: str | os.PathLike, report: ReportWriter | None = None) -> Iterator[str]:
    """The valid image ids of one split list (one id a line, blank lines ignored), in order; bad lines reported."""
    path = Path(path)
    with open(path, encoding="utf-8", errors="patentdesc-mark-invalid") as handle:
        for number, line in enumerate(handle, start=1):
            image_id = line.strip()
            if not image_id:
                continue
            try:
                if _NOT_UTF8 in image_id:
                    raise InvalidImageIdError("the line contains bytes that are not UTF-8")
                yield validate_image_id(image_id)
            except InvalidImageIdError as error:
                _report(report, image_id, f"{path.name} line {number}: {error}")


def iter_official_ocr(
    ocr_json_path: str | os.PathLike, report: ReportWriter | None = None
) -> Iterator[tuple[str, list[int], list[list[int]]]]:
    """Streams the official `ocr.json` as `(image_id, token ids, boxes)`, unpadded and truncated to 512 tokens
    like the original (`processing.ocr.ocr_tokens_from_official`); malformed entries are reported."""
    from processing.ocr import ocr_tokens_from_official  # imports transformers: only when OCR is read

    with open(ocr_json_path, "rb") as handle:
        for key, entry in ijson.kvitems(_MarkInvalidUtf8(handle), "", use_float=True):
            image_id = key[: -len(".png")] if key.endswith(".png") else key
            try:
                validate_image_id(image_id)
                if _has_invalid_utf8(entry):
                    raise ValueError("the entry contains bytes that are not UTF-8")
                ids, boxes = ocr_tokens_from_official(entry)
                if not all(isinstance(token, int) for token in ids):
                    raise ValueError("'input_ids' must be integers")
            except (ValueError, TypeError, IndexError) as error:
                _report(report, image_id, f"ocr.json entry {key!r}: {error}")
                continue
            yield image_id, ids, boxes


def _validate_ocr_line(entry: Any) -> tuple[str, list[str], list[list[int]]]:
    from processing.ocr import validate_boxes  # imports transformers: only when OCR is read

    if not isinstance(entry, dict) or not isinstance(entry.get("image_id"), str):
        raise ValueError("not an object with a string 'image_id'")
    image_id = validate_image_id(entry["image_id"])
    words, boxes = entry.get("words"), entry.get("boxes")
    if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
        raise ValueError("'words' must be a list of strings")
    if not isinstance(boxes, list) or not all(
        isinstance(box, list) and all(isinstance(v, int) for v in box) for box in boxes
    ):
        raise ValueError("'boxes' must be a list of [x0, y0, x1, y1] integer boxes")
    if len(words) != len(boxes):
        raise ValueError(f"{len(words)} words but {len(boxes)} boxes")
    validate_boxes(boxes)
    return image_id, words, boxes


def iter_ocr_cache(
    paths: list[Path], report: ReportWriter | None = None
) -> Iterator[tuple[str, list[str], list[list[int]]]]:
    """Streams OCR cache files (JSON Lines of the `ocr` stage) as `(image_id, words, boxes)`; bad lines, such as
    the half-written last line of a killed run, are reported with their file and line number."""
    for path in paths:
        with open(path, encoding="utf-8", errors="patentdesc-mark-invalid") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                entry = None
                try:
                    if _NOT_UTF8 in line:
                        raise ValueError("the line contains bytes that are not UTF-8")
                    entry = json.loads(line)
                    yield _validate_ocr_line(entry)
                except ValueError as error:  # json.JSONDecodeError and InvalidImageIdError are ValueErrors
                    image_id = entry.get("image_id") if isinstance(entry, dict) else None
                    reason = f"{path.name} line {number}: invalid OCR cache entry: {error}"
                    _report(report, image_id if isinstance(image_id, str) else None, reason)

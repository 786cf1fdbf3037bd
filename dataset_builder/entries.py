"""Streaming, validating readers of the PatentDesc-355k files: the JSON, split lists, `ocr.json` and the OCR cache."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patentlmm_common.jsonl import iter_jsonl
from processing.constants import DESCRIPTION_TYPES

from .ids import InvalidImageIdError, figure_of, patent_id_of, validate_image_id
from .jsonstream import NOT_UTF8, BadEntry, iter_object_entries, open_text, sniff_encoding
from .reports import ReportWriter

__all__ = [
    "DESCRIPTION_FIELDS",
    "OCR_VOCAB_SIZE",
    "REQUIRED_FIELDS",
    "Entry",
    "InvalidEntryError",
    "find_split_dir",
    "iter_ocr_cache",
    "iter_official_ocr",
    "iter_entries",
    "iter_split_file",
    "validate_entry",
]

# config name -> field of PatentDesc-355k.json
DESCRIPTION_FIELDS = {desc_type: f"{desc_type}_description" for desc_type in DESCRIPTION_TYPES}
REQUIRED_FIELDS = ("image_url", *DESCRIPTION_FIELDS.values())
SPLIT_DIR_NAMES = ("data_splits", "splits")  # the release's name, then the original code's
OCR_VOCAB_SIZE = 50265  # tokens of LayoutLMv3-base's tokenizer, whose ids the official ocr.json holds


class InvalidEntryError(ValueError):
    """An entry of PatentDesc-355k.json that cannot be used; the message is the reason written to the report."""


@dataclass(frozen=True)
class Entry:
    """One validated entry of PatentDesc-355k.json (one figure)."""

    image_id: str
    patent_id: str
    figure: str
    image_url: str
    brief_description: str
    detailed_description: str

    def description(self, config: str) -> str:
        """The description for `config` (`brief` or `detailed`), stripped as the original dataset class does."""
        return getattr(self, DESCRIPTION_FIELDS[config]).strip()


def _report(report: ReportWriter | None, image_id: str | None, reason: str) -> None:
    if report is not None:
        report.add(image_id, reason)


def _has_invalid_utf8(value: Any) -> bool:
    if isinstance(value, str):
        return NOT_UTF8 in value
    if isinstance(value, dict):
        return any(_has_invalid_utf8(k) or _has_invalid_utf8(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_invalid_utf8(v) for v in value)
    return False


def validate_entry(image_id: str, entry: Any) -> Entry:
    """One `(key, value)` pair of PatentDesc-355k.json -> `Entry`, or `InvalidEntryError` saying what is wrong."""
    if NOT_UTF8 in image_id:
        raise InvalidEntryError(f"the image id {image_id!r} contains bytes that are not UTF-8")
    try:
        validate_image_id(image_id)
    except InvalidImageIdError as error:
        raise InvalidEntryError(str(error)) from None
    if not isinstance(entry, dict):
        raise InvalidEntryError(f"the entry is a {_json_type(entry)}, expected an object with {list(REQUIRED_FIELDS)}")
    missing = [field for field in REQUIRED_FIELDS if field not in entry]
    if missing:
        raise InvalidEntryError(f"missing field(s) {missing}")
    for field in REQUIRED_FIELDS:
        if not isinstance(entry[field], str):
            raise InvalidEntryError(f"field {field!r} is a {_json_type(entry[field])}, expected a string")
        if NOT_UTF8 in entry[field]:
            raise InvalidEntryError(f"field {field!r} contains bytes that are not UTF-8")
    return Entry(
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


def iter_entries(
    json_path: str | os.PathLike, report: ReportWriter | None = None, seen: Any = None
) -> Iterator[Entry]:
    """Streams the valid entries of PatentDesc-355k.json in file order; invalid ones go to `report`.

    `seen` (a `set` or a `DiskMap`, default a new `set`) collects the ids read, to reject duplicates; pass a
    `DiskMap` for the full file to keep memory flat. A file that stops being JSON midway (truncated, say) raises
    `ValueError` after the entries before the damage were yielded; one that is not a JSON object (a list, say)
    raises it before any.
    """
    seen = set() if seen is None else seen
    for item in iter_object_entries(open_text(json_path), str(json_path)):
        if isinstance(item, BadEntry):
            _report(report, item.key, str(item))
            continue
        image_id, entry = item
        try:
            valid = validate_entry(image_id, entry)
        except InvalidEntryError as error:
            _report(report, image_id, str(error))
            continue
        if image_id in seen:
            _report(report, image_id, "duplicate image id: an earlier entry with this id is kept")
            continue
        seen.add(image_id)
        yield valid


def find_split_dir(root: str | os.PathLike) -> Path | None:
    """`root/data_splits` or `root/splits`, whichever holds split lists first; None when neither does."""
    for name in SPLIT_DIR_NAMES:
        folder = Path(root) / name
        if folder.is_dir() and any(folder.glob("*.txt")):
            return folder
    return None


def iter_split_file(path: str | os.PathLike, report: ReportWriter | None = None) -> Iterator[str]:
    """The valid image ids of one split list (one id a line, blank lines ignored), in order; bad lines reported.
    UTF-8 with or without a BOM, or UTF-16 (`jsonstream.sniff_encoding`)."""
    path = Path(path)
    with open(path, "rb") as handle:
        encoding = sniff_encoding(handle.read(4))
    with open(path, encoding=encoding, errors="patentdesc-mark-invalid") as handle:
        for number, line in enumerate(handle, start=1):
            image_id = line.strip()
            if not image_id:
                continue
            try:
                if NOT_UTF8 in image_id:
                    raise InvalidImageIdError("the line contains bytes that are not UTF-8")
                yield validate_image_id(image_id)
            except InvalidImageIdError as error:
                _report(report, image_id, f"{path.name} line {number}: {error}")


def iter_official_ocr(
    ocr_json_path: str | os.PathLike, report: ReportWriter | None = None
) -> Iterator[tuple[str, list[int], list[list[int]]]]:
    """Streams the official `ocr.json` as `(image_id, token ids, boxes)`, unpadded and truncated to the OCR
    encoder's length like the original (`processing.ocr_tokens.ocr_tokens_from_official`); malformed entries
    (`_check_official_entry`) are reported by id."""
    from processing.ocr_tokens import ocr_tokens_from_official

    for item in iter_object_entries(open_text(ocr_json_path), str(ocr_json_path)):
        key, entry = (item.key, None) if isinstance(item, BadEntry) else item
        image_id = key[: -len(".png")] if isinstance(key, str) and key.endswith(".png") else key
        try:
            if isinstance(item, BadEntry):
                raise item
            validate_image_id(image_id)
            if _has_invalid_utf8(entry):
                raise ValueError("the entry contains bytes that are not UTF-8")
            _check_official_entry(entry)
            ids, boxes = ocr_tokens_from_official(entry)
        except (ValueError, TypeError, IndexError) as error:
            _report(report, image_id, f"ocr.json entry {key!r}: {error}")
            continue
        yield image_id, ids, boxes


def _check_official_entry(entry: Any, vocab_size: int = OCR_VOCAB_SIZE) -> None:
    """Raises `ValueError` naming the first value of an ocr.json entry that is not as the official file has them:
    `input_ids` integers in 0 .. vocab_size - 1, `attention_mask` (optional) as long and of 0/1, `bbox` one box of
    four integers in 0-1000 per token; each a list, or a batch of one list (`[[...]]`)."""
    if not isinstance(entry, dict) or "input_ids" not in entry or "bbox" not in entry:
        raise ValueError("the entry must be an object with 'input_ids' and 'bbox' (and optionally 'attention_mask')")
    ids, mask, boxes = (_unbatched(entry, field) for field in ("input_ids", "attention_mask", "bbox"))
    for index, token in enumerate(ids):
        if type(token) is not int or not 0 <= token < vocab_size:
            raise ValueError(f"input_ids[{index}] = {token!r} is not a token id (an integer 0 <= id < {vocab_size})")
    if mask is not None:
        if len(mask) != len(ids):
            raise ValueError(f"attention_mask has {len(mask)} values but input_ids {len(ids)}: they must pair up")
        if any(type(keep) is not int or keep not in (0, 1) for keep in mask):
            raise ValueError("attention_mask values must be the integers 0 or 1")
    if len(boxes) != len(ids):
        raise ValueError(f"bbox has {len(boxes)} boxes but input_ids {len(ids)} tokens: they must pair up")
    for index, box in enumerate(boxes):
        if not isinstance(box, list) or len(box) != 4 or any(type(v) is not int or not 0 <= v <= 1000 for v in box):
            raise ValueError(f"bbox[{index}] = {box!r} is not a box of four integers in 0-1000")


def _unbatched(entry: dict, field: str) -> list | None:
    """`entry[field]` as one flat list: a list, or the only list of a batch of one; None for a missing mask."""
    value = entry.get(field)
    if value is None and field == "attention_mask":
        return None
    if not isinstance(value, list):
        raise ValueError(f"{field!r} must be a list, got a {type(value).__name__}")
    if field == "bbox" and value and isinstance(value[0], list) and value[0] and isinstance(value[0][0], list):
        value = _only(value, field)
    elif field != "bbox" and value and isinstance(value[0], list):
        value = _only(value, field)
    return value


def _only(batch: list, field: str) -> list:
    if len(batch) != 1:
        raise ValueError(f"{field!r} holds a batch of {len(batch)}; the official file has batches of one")
    return batch[0]


def _validate_ocr_line(
    entry: Any, validate_id: Callable[[object], str] = validate_image_id
) -> tuple[str, list[str], list[list[int]]]:
    from processing.ocr_tokens import validate_boxes

    if not isinstance(entry, dict) or not isinstance(entry.get("image_id"), str):
        raise ValueError("not an object with a string 'image_id'")
    image_id = validate_id(entry["image_id"])
    words, boxes = entry.get("words"), entry.get("boxes")
    if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
        raise ValueError("'words' must be a list of strings")
    if not isinstance(boxes, list) or not all(
        isinstance(box, list) and all(type(v) is int for v in box) for box in boxes
    ):
        raise ValueError("'boxes' must be a list of [x0, y0, x1, y1] integer boxes")
    if len(words) != len(boxes):
        raise ValueError(f"{len(words)} words but {len(boxes)} boxes")
    validate_boxes(boxes)
    return image_id, words, boxes


def iter_ocr_cache(
    paths: list[Path], report: ReportWriter | None = None, validate_id: Callable[[object], str] = validate_image_id
) -> Iterator[tuple[str, list[str], list[list[int]]]]:
    """Streams OCR cache files (JSON Lines of the `ocr` step) as `(image_id, words, boxes)`; bad lines, such as
    the half-written last line of a killed run, are reported with their file and line number. `validate_id`: the
    root's id rule (`DatasetLayout.validate_id`; default PatentDesc ids alone)."""
    for path in paths:
        for number, entry in iter_jsonl(path, errors="patentdesc-mark-invalid"):
            try:
                if isinstance(entry, ValueError):
                    raise entry
                if _has_invalid_utf8(entry):
                    raise ValueError("the line contains bytes that are not UTF-8")
                yield _validate_ocr_line(entry, validate_id)
            except ValueError as error:  # json.JSONDecodeError and InvalidImageIdError are ValueErrors
                image_id = entry.get("image_id") if isinstance(entry, dict) else None
                reason = f"{path.name} line {number}: invalid OCR cache entry: {error}"
                _report(report, image_id if isinstance(image_id, str) else None, reason)


_DEPRECATED = {"Record": "Entry", "InvalidRecordError": "InvalidEntryError", "iter_records": "iter_entries"}


def __getattr__(name: str) -> Any:
    """The names of the previous release (`Record`, `InvalidRecordError`, `iter_records`), deprecated."""
    if name not in _DEPRECATED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"{name} is deprecated and will be removed; use {_DEPRECATED[name]}.", FutureWarning, stacklevel=2)
    return globals()[_DEPRECATED[name]]

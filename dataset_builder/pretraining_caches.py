"""The PatentMME caches of a root, `layout/` and `visual_tokens/`: their files, the source each records, readers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from patentlmm_common.files import atomic_write
from patentlmm_common.jsonl import complete_lines

__all__ = [
    "LAYOUT_CACHE",
    "LAYOUT_DIR",
    "LAYOUT_SOURCE_FILE",
    "TOKENIZER_FILE",
    "VISUAL_TOKENS_CACHE",
    "VISUAL_TOKENS_DIR",
    "CacheMismatchError",
    "claim_cache",
    "iter_layout_cache",
    "iter_visual_tokens",
    "read_layout_cache",
    "read_visual_tokens",
    "recorded_source",
]

LAYOUT_DIR = "layout"  # ROOT/layout/: layout_cache.jsonl and layout_source.json
LAYOUT_CACHE = "layout_cache.jsonl"
LAYOUT_SOURCE_FILE = "layout_source.json"  # the COCO file or the OCR engine and settings that made the elements
VISUAL_TOKENS_DIR = "visual_tokens"  # ROOT/visual_tokens/: visual_tokens.jsonl and visual_tokenizer.json
VISUAL_TOKENS_CACHE = "visual_tokens.jsonl"
TOKENIZER_FILE = "visual_tokenizer.json"  # {"fingerprint", "image_size"} of the tokenizer that made the cache


class CacheMismatchError(ValueError):
    """A cache folder holds what another source (detector file, OCR, tokenizer, image size) made."""


def recorded_source(folder: Path, name: str) -> dict[str, Any] | None:
    """The record `folder/name` (JSON), `None` when there is none."""
    path = folder / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def claim_cache(folder: Path, name: str, record: dict[str, Any], what: str) -> None:
    """Records `record` in `folder/name` (atomically) on the first run; raises `CacheMismatchError` naming both
    records' differing fields if the folder already holds `what` of another `record`."""
    recorded = recorded_source(folder, name)
    if recorded is None:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / name) as handle:
            handle.write(json.dumps(record, indent=2, sort_keys=True) + "\n")
        return
    if recorded != record:
        differ = sorted(key for key in {*recorded, *record} if recorded.get(key) != record.get(key))
        changes = "; ".join(f"{key}: {recorded.get(key)!r} there, {record.get(key)!r} now" for key in differ)
        raise CacheMismatchError(
            f"{folder} holds {what} made with other settings ({changes}): refused; move the folder away to start over"
        )


def iter_layout_cache(folder: str | os.PathLike) -> Iterator[tuple[str, list[list[int]], list[int]]]:
    """`(image_id, boxes [[x0, y0, x1, y1], ...] (0-1000), classes [index of PATCH_CLASSES, ...])` of each line of
    `folder/layout_cache.jsonl`, in file order; a line cut short by a crash is skipped."""
    for entry in complete_lines(Path(folder) / LAYOUT_CACHE):
        if isinstance(entry, dict) and isinstance(entry.get("image_id"), str):
            yield entry["image_id"], entry.get("boxes"), entry.get("classes")


def read_layout_cache(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """image id -> `{"boxes", "classes"}` (`iter_layout_cache`); an id found twice keeps its last entry."""
    return {image_id: {"boxes": boxes, "classes": classes} for image_id, boxes, classes in iter_layout_cache(folder)}


def read_visual_tokens(
    folder: str | os.PathLike, fingerprint: str | None = None, image_size: int | None = None
) -> tuple[dict[str, list[int]], dict[str, Any] | None]:
    """(image id -> its ids, the cache's tokenizer record) of `folder`; ids of a cache whose tokenizer
    `fingerprint` or `image_size` (when given) differ from the record are refused (`CacheMismatchError`)."""
    folder = Path(folder)
    record = recorded_source(folder, TOKENIZER_FILE)
    wanted = {"fingerprint": fingerprint, "image_size": image_size}
    for key, value in wanted.items():
        if value is not None and record is not None and record.get(key) != value:
            raise CacheMismatchError(
                f"{folder} holds the visual tokens of another tokenizer ({key} {record.get(key)!r}, not {value!r}): "
                "refused; run `visual-tokens` with this tokenizer into another root, or use the cache's tokenizer"
            )
    return dict(iter_visual_tokens(folder)), record


def iter_visual_tokens(folder: str | os.PathLike) -> Iterator[tuple[str, list[int]]]:
    """`(image_id, ids)` of each line of `folder/visual_tokens.jsonl` in file order (a torn line is skipped); check
    the cache's tokenizer with `read_visual_tokens` or `recorded_source(folder, TOKENIZER_FILE)`."""
    for entry in complete_lines(Path(folder) / VISUAL_TOKENS_CACHE):
        if isinstance(entry, dict) and isinstance(entry.get("image_id"), str):
            yield entry["image_id"], entry.get("tokens")

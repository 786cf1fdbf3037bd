"""The `pretraining` config's rows (PatentMME): each figure with layout elements, its image, OCR and visual tokens."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datasets import Features, Image, List, Value
from tqdm.auto import tqdm

from .diskmap import DiskMap
from .entries import iter_ocr_cache
from .ids import InvalidImageIdError
from .image_check import prepare_image
from .layout import DatasetLayout
from .layout_elements import PATCH_CLASSES
from .options import BuildOptions
from .pretraining_caches import (
    LAYOUT_CACHE,
    LAYOUT_DIR,
    LAYOUT_SOURCE_FILE,
    TOKENIZER_FILE,
    VISUAL_TOKENS_DIR,
    iter_layout_cache,
    iter_visual_tokens,
)
from .reports import ReportWriter

__all__ = ["PRETRAINING_CONFIG", "has_layout", "iter_pretraining_rows", "pretraining_features", "pretraining_metadata"]

PRETRAINING_CONFIG = "pretraining"  # one split, train: every figure with layout elements


def pretraining_features() -> Features:
    """The `pretraining` columns (docs/dataset.md): boxes in 0-1000, classes index `PATCH_CLASSES`, `visual_tokens`
    null for a figure without them."""
    return Features(
        {
            "image_id": Value("string"),
            "image": Image(),
            "ocr_words": List(Value("string")),
            "ocr_boxes": List(List(Value("int32"))),
            "layout_boxes": List(List(Value("int32"))),
            "layout_classes": List(Value("int32")),
            "visual_tokens": List(Value("int32")),
        }
    )


def has_layout(layout: DatasetLayout) -> bool:
    """Whether the root has a `layout/` cache (so `build` writes the `pretraining` config)."""
    return (layout.root / LAYOUT_DIR / LAYOUT_CACHE).is_file()


def pretraining_metadata(layout: DatasetLayout) -> dict[bytes, bytes]:
    """What made the layout and visual-token columns, for the Parquet schema metadata (keys `patentlmm_layout`,
    `patentlmm_visual_tokenizer`: the caches' records)."""
    metadata = {}
    for key, path in (
        (b"patentlmm_layout", layout.root / LAYOUT_DIR / LAYOUT_SOURCE_FILE),
        (b"patentlmm_visual_tokenizer", layout.root / VISUAL_TOKENS_DIR / TOKENIZER_FILE),
    ):
        if path.is_file():
            metadata[key] = json.dumps(json.loads(path.read_text(encoding="utf-8")), sort_keys=True).encode()
    return metadata


def _layout_problem(boxes: Any, classes: Any) -> str | None:
    """Why a layout cache entry cannot be a row, or None."""
    if not isinstance(boxes, list) or not isinstance(classes, list) or len(boxes) != len(classes):
        return "its layout cache entry is not boxes and classes of the same length"
    if not all(isinstance(box, list) and len(box) == 4 and all(type(v) is int for v in box) for box in boxes):
        return "its layout cache entry has a box that is not 4 integers"
    if not all(type(c) is int and 0 <= c < len(PATCH_CLASSES) for c in classes):
        return f"its layout cache entry has a class that is not an index of {PATCH_CLASSES}"
    return None


def _index(layout: DatasetLayout, work: Path, report: ReportWriter | None) -> tuple[DiskMap, DiskMap, DiskMap]:
    """Layout, OCR and visual-token caches -> `DiskMap`s image id -> JSON (a later line wins), so that 355K
    figures' tokens cost disk, not memory."""
    elements, ocr, tokens = (DiskMap(work / f"{name}.sqlite") for name in ("layout", "ocr", "tokens"))
    for image_id, boxes, classes in iter_layout_cache(layout.root / LAYOUT_DIR):
        elements[image_id] = json.dumps([boxes, classes])
    for image_id, words, boxes in iter_ocr_cache(layout.ocr_cache_paths, report, layout.validate_id):
        ocr[image_id] = json.dumps([words, boxes])
    for image_id, ids in iter_visual_tokens(layout.root / VISUAL_TOKENS_DIR):
        if isinstance(ids, list) and all(type(i) is int for i in ids):
            tokens[image_id] = json.dumps(ids)
    return elements, ocr, tokens


def iter_pretraining_rows(
    root: str | os.PathLike,
    options: BuildOptions = BuildOptions(),  # noqa: B008 (frozen)
    report: ReportWriter | None = None,
    work_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Iterator[dict[str, Any]]:
    """The rows of `pretraining_features` for every `root/images/*.png` (sorted by id) that has layout elements;
    a figure without them, without OCR (unless `options.allow_missing_ocr`) or with a bad image is reported."""
    layout = DatasetLayout(Path(root), options.ocr_engine)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix=".pretraining-work-") as tmp:
        elements, ocr, tokens = _index(layout, Path(tmp), report)
        try:
            ids = sorted(path.stem for path in layout.images_dir.glob("*.png"))
            for image_id in tqdm(ids, desc="pretraining", unit="img", disable=not progress or None):
                row = _row(layout, image_id, elements, ocr, tokens, options)
                if isinstance(row, str):
                    if report is not None:
                        report.add(image_id, row, action=f"left out of {PRETRAINING_CONFIG}")
                else:
                    yield row
        finally:
            for index in (elements, ocr, tokens):
                index.close()


def _row(
    layout: DatasetLayout, image_id: str, elements: DiskMap, ocr: DiskMap, tokens: DiskMap, options: BuildOptions
) -> dict[str, Any] | str:
    """One figure's row, or why it has none."""
    try:
        layout.validate_id(image_id)
    except InvalidImageIdError as error:
        return str(error)
    entry = elements.get(image_id)
    if entry is None:
        return "no layout elements (run `layout` first)"
    boxes, classes = json.loads(entry)
    problem = _layout_problem(boxes, classes)
    if problem is not None:
        return problem
    words_boxes = ocr.get(image_id)
    if words_boxes is None and not options.allow_missing_ocr:
        return "no OCR result (run `ocr` first, or build with --allow-missing-ocr)"
    image = prepare_image(layout.images_dir / f"{image_id}.png", options.max_image_pixels)
    if image.error is not None:
        return image.error
    words, ocr_boxes = json.loads(words_boxes) if words_boxes is not None else (None, None)
    ids = tokens.get(image_id)
    return {
        "image_id": image_id,
        "image": {"bytes": image.png, "path": f"{image_id}.png"},
        "ocr_words": words,
        "ocr_boxes": ocr_boxes,
        "layout_boxes": boxes,
        "layout_classes": classes,
        "visual_tokens": json.loads(ids) if ids is not None else None,
    }

"""Figures to describe: from image files or a dataset split, then prepared (loaded, OCR'd) by the processor."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from processing import PatentLMMProcessor
from processing.images import ImageInput
from processing.prepared_figures import FigureError, PreparedFigure

__all__ = [
    "Figure",
    "figures_from_dataset",
    "figures_from_files",
    "file_ids",
    "load_split",
    "ocr_text",
    "prepare",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Figure:
    """One figure to describe. `ocr` holds official LayoutLMv3 tokens (`{"input_ids", "bbox"}`, an `ocr.json` entry)
    and wins over `ocr_words`/`ocr_boxes` (0-1000), which the processor's OCR engine fills in when neither
    is given."""

    image_id: str
    image: ImageInput
    reference: str | None = None
    ocr_words: Sequence[str] | None = None
    ocr_boxes: Sequence[Sequence[int]] | None = None
    ocr: dict | None = None


def file_ids(paths: Sequence[str | os.PathLike]) -> list[str]:
    """The id of each image file: its name without extension, or, where two files share that name (`a/fig.png`,
    `b/fig.png`), as many parent folders as make it unique (`a/fig`, `b/fig`). The same file given twice keeps one
    id."""
    files = [Path(path) for path in paths]
    ids = [file.stem for file in files]
    for stem in {i for i in ids if ids.count(i) > 1}:
        group = sorted({file.resolve() for file in files if file.stem == stem})
        if len(group) == 1:
            continue
        depth = 1
        while len({"/".join(file.parts[-depth - 1 : -1] + (stem,)) for file in group}) < len(group):
            depth += 1
        for index, file in enumerate(files):
            if file.stem == stem:
                ids[index] = "/".join(file.resolve().parts[-depth - 1 : -1] + (stem,))
    return ids


def figures_from_files(paths: Iterable[str | os.PathLike]) -> list[Figure]:
    """One `Figure` per image file (the same file once), with the ids of `file_ids`."""
    paths = list(paths)
    unique = dict(zip(file_ids(paths), map(str, paths)))
    return [Figure(image_id=image_id, image=path) for image_id, path in unique.items()]


def figures_from_dataset(dataset: Any, skip_ids: Iterable[str] = ()) -> Iterator[Figure]:
    """Figures of a `datasets.Dataset` split (PatentDesc-355k columns), lazily, without the rows of `skip_ids`. The
    images stay encoded (bytes or path) until `prepare` loads them, so a row that does not decode is reported and
    skipped there instead of stopping the iteration."""
    skip = set(skip_ids)
    keep = [i for i, image_id in enumerate(dataset["image_id"]) if image_id not in skip]
    if getattr(dataset.features.get("image"), "decode", False):
        dataset = dataset.cast_column("image", replace(dataset.features["image"], decode=False))
    has_ocr = "ocr_words" in dataset.column_names and "ocr_boxes" in dataset.column_names
    has_official = "ocr_input_ids" in dataset.column_names and "ocr_bbox" in dataset.column_names
    for row in dataset.select(keep):
        official = has_official and row["ocr_input_ids"] is not None and row["ocr_bbox"] is not None
        yield Figure(
            image_id=row["image_id"],
            image=_encoded(row["image"]),
            reference=row.get("description"),
            ocr_words=row["ocr_words"] if has_ocr else None,
            ocr_boxes=row["ocr_boxes"] if has_ocr else None,
            ocr={"input_ids": row["ocr_input_ids"], "bbox": row["ocr_bbox"]} if official else None,
        )


def _encoded(image: Any) -> Any:
    """A dataset's undecoded image (`{"bytes", "path"}`) as `load_image` takes it: its bytes, else its path."""
    if isinstance(image, dict):
        return image.get("bytes") or image.get("path")
    return image


def load_split(dataset: str, split: str, config: str | None) -> Any:
    """`load_dataset(dataset, config, split=split)`: a `datasets` folder or Hub id."""
    from datasets import load_dataset  # the `data` extra; only dataset runs need it

    return load_dataset(dataset, config, split=split)


def prepare(processor: PatentLMMProcessor, figures: Sequence[Figure]) -> list[tuple[Figure, PreparedFigure]]:
    """Each figure with what `processor.prepare` makes of it (loaded, OCR'd by the processor's engine unless it came
    with OCR, tokenized), in order; a figure that cannot be prepared (not an image, over the pixel cap, damaged,
    OCR that does not fit) is logged with its id and reason and left out, so one bad figure never stops a run (a
    rerun tries it again)."""
    has_words = [f.ocr is None and f.ocr_words is not None and f.ocr_boxes is not None for f in figures]
    prepared = processor.prepare(
        [f.image for f in figures],
        ocr_words=[f.ocr_words if has else None for f, has in zip(figures, has_words)],
        ocr_boxes=[f.ocr_boxes if has else None for f, has in zip(figures, has_words)],
        ocr=[f.ocr for f in figures],
        errors="return",
    )
    kept = []
    for figure, result in zip(figures, prepared):
        if isinstance(result, FigureError):
            logger.warning("Skipped %s: %s", figure.image_id, result.reason)
        else:
            kept.append((figure, result))
    return kept


def ocr_text(processor: PatentLMMProcessor, figure: PreparedFigure) -> str:
    """The figure's OCR as text (for its reference numerals): the words, else the official tokens decoded."""
    if figure.ocr_words is not None:
        return " ".join(figure.ocr_words)
    return processor.ocr_tokenizer.decode(figure.ocr_input_ids, skip_special_tokens=True)

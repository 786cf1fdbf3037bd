"""Figures to describe: from image files or a dataset split, then loaded and read by the processor's OCR engine."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from processing import PatentLMMProcessor, load_image, tokenize_ocr
from processing.images import ImageInput
from processing.ocr import ocr_tokens_from_official

__all__ = [
    "Figure",
    "figures_from_dataset",
    "figures_from_files",
    "file_ids",
    "load_split",
    "num_ocr_tokens",
    "ocr_text",
    "with_ocr",
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
    images stay encoded (bytes or path) until `with_ocr` loads them, so a row that does not decode is reported and
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


def _load_images(processor: PatentLMMProcessor, figures: list[Figure]) -> list[Figure]:
    """The figures whose image loads (pixel cap, padding included, then a full decode); each one that does not is
    logged with its id and reason and left out, so one bad file never stops a run (a rerun tries it again). Pillow's
    decoders raise more than `OSError` on damaged data (`SyntaxError`, `IndexError`, `RuntimeError`, ...)."""
    loaded = []
    for figure in figures:
        try:
            loaded.append(replace(figure, image=load_image(figure.image, processor.max_image_pixels)))
        except Exception as error:  # noqa: BLE001 (over the cap, not an image, damaged: whatever a decoder raises)
            reason = str(error).splitlines()[0] if str(error) else ""
            logger.warning("Skipped %s: %s", figure.image_id, reason or type(error).__name__)
    return loaded


def with_ocr(processor: PatentLMMProcessor, figures: list[Figure]) -> list[Figure]:
    """The figures whose image loads (the others are logged and left out), each with OCR: the processor's engine
    (one thread per core, `processor.num_ocr_workers` at most) reads those that came without."""
    loaded = _load_images(processor, figures)
    if not loaded:
        return loaded
    todo = [i for i, f in enumerate(loaded) if f.ocr is None and (f.ocr_words is None or f.ocr_boxes is None)]
    workers = max(1, min(len(todo), processor.num_ocr_workers or os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        found = list(pool.map(processor.ocr, [loaded[i].image for i in todo]))
    for i, (words, boxes) in zip(todo, found):
        loaded[i] = replace(loaded[i], ocr_words=words, ocr_boxes=boxes)
    return loaded


def num_ocr_tokens(processor: PatentLMMProcessor, figure: Figure) -> int:
    """How many OCR tokens the processor gives `figure` (the length its batch is sorted by)."""
    if figure.ocr is not None:
        ids, _ = ocr_tokens_from_official(figure.ocr, processor.max_ocr_tokens)
    else:
        ids, _ = tokenize_ocr(processor.ocr_tokenizer, figure.ocr_words, figure.ocr_boxes, processor.max_ocr_tokens)
    return len(ids)


def ocr_text(processor: PatentLMMProcessor, figure: Figure) -> str:
    """The figure's OCR as text (for its reference numerals): the words, else the official tokens decoded."""
    if figure.ocr_words is not None:
        return " ".join(figure.ocr_words)
    ids, _ = ocr_tokens_from_official(figure.ocr, processor.max_ocr_tokens)
    return processor.ocr_tokenizer.decode(ids, skip_special_tokens=True)

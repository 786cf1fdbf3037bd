"""`iter_rows`: the rows of every usable figure of a dataset root, each config and split, in JSON order."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .diskmap import DiskMap
from .entries import Entry, iter_entries, iter_ocr_cache, iter_official_ocr
from .features import CONFIGS
from .image_check import PreparedImage, prepare_image
from .layout import DatasetLayout
from .options import BuildOptions
from .pool import ResilientPool, WorkerDiedError
from .reports import ReportWriter
from .splits import SPLITS, SplitAssigner

__all__ = ["iter_rows"]


def iter_rows(
    root: str | os.PathLike,
    configs: Sequence[str] = CONFIGS,
    splits: Sequence[str] = SPLITS,
    options: BuildOptions = BuildOptions(),  # noqa: B008 (frozen)
    report: ReportWriter | None = None,
    work_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Yields `(config, split, row)` for every usable figure of `root` in JSON order, rows as in
    `patentdesc_features` (the image as `{"bytes", "path"}`); whatever is left out goes to `report`.

    Only figures of `splits` have their image checked, so asking for one split costs one JSON pass, not more.
    `work_dir` holds the run's temporary SQLite indexes (default: the system's temporary folder).
    """
    layout = DatasetLayout(Path(root), options.ocr_engine)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix=".patentdesc-work-") as tmp:
        ocr_index, official = _index_ocr(layout, Path(tmp), report)
        assigner = SplitAssigner(layout.split_dir, tmp, options.ratios, options.seed, report)
        seen = DiskMap(Path(tmp) / "seen.sqlite")
        entries = tqdm(iter_entries(layout.json_path, report, seen), desc="build", unit=" entries",
                       disable=not progress or None)  # fmt: skip
        # A worker killed by a signal (the out-of-memory killer, say) fails only the figure it was checking.
        pool = ResilientPool(options.workers) if options.workers > 1 else None
        try:
            for batch in _batched(_candidates(entries, assigner, configs, splits, report), 32 * options.workers):
                arguments = [(layout.images_dir / f"{r.image_id}.png", options.max_image_pixels) for r, _, _ in batch]
                if pool is None:
                    prepared = (prepare_image(*args) for args in arguments)
                else:  # rows go out while the workers check the rest of the batch
                    prepared = map(_prepared, pool.map_in_order(prepare_image, arguments))
                for (entry, split, kept), image in zip(batch, prepared):
                    row = _row(entry, image, ocr_index, official, options, report)
                    for config in kept if row is not None else ():
                        yield config, split, {**row, "description": entry.description(config)}
        finally:
            if pool is not None:
                pool.close()
        assigner.report_unused(seen)
        for index in (ocr_index, official, seen, assigner):
            if index is not None:
                index.close()


def _candidates(
    entries: Iterable[Entry],
    assigner: SplitAssigner,
    configs: Sequence[str],
    splits: Sequence[str],
    report: ReportWriter | None,
) -> Iterator[tuple[Entry, str, list[str]]]:
    """`(entry, split, configs with a description)` of the entries in `splits`; empty descriptions reported."""
    for entry in entries:
        split = assigner.split_of(entry.image_id)
        if split not in splits:
            continue
        kept = [config for config in configs if entry.description(config)]
        for config in configs:
            if config not in kept and report is not None:
                report.add(entry.image_id, f"empty {config} description", action=f"dropped from {config}")
        if kept:
            yield entry, split, kept


def _batched(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _index_ocr(layout: DatasetLayout, work_dir: Path, report: ReportWriter | None) -> tuple[DiskMap, DiskMap | None]:
    """OCR cache and official ocr.json -> `DiskMap`s image id -> JSON `[words, boxes]` / `[ids, boxes]`."""
    ocr_index = DiskMap(work_dir / "ocr_cache.sqlite")
    for image_id, words, boxes in iter_ocr_cache(layout.ocr_cache_paths, report):
        ocr_index[image_id] = json.dumps([words, boxes])  # a later line (rerun, other shard) wins
    official = None
    if layout.official_ocr_path.is_file():
        official = DiskMap(work_dir / "official_ocr.sqlite")
        for image_id, ids, boxes in iter_official_ocr(layout.official_ocr_path, report):
            official[image_id] = json.dumps([ids, boxes])
    return ocr_index, official


def _prepared(outcome: PreparedImage | WorkerDiedError) -> PreparedImage:
    return PreparedImage(error=str(outcome)) if isinstance(outcome, WorkerDiedError) else outcome


def _row(
    entry: Entry,
    image: PreparedImage,
    ocr_index: DiskMap,
    official: DiskMap | None,
    options: BuildOptions,
    report: ReportWriter | None,
) -> dict[str, Any] | None:
    """The row of one figure without its description, or None (reported) when it cannot be used."""
    if image.error is not None:
        if report is not None:
            report.add(entry.image_id, image.error, action="rejected")
        return None
    words_boxes = ocr_index.get(entry.image_id)
    ids_boxes = official.get(entry.image_id) if official is not None else None
    if words_boxes is None and ids_boxes is None and not options.allow_missing_ocr:
        if report is not None:
            reason = "no OCR result (run `ocr` first, or build with --allow-missing-ocr)"
            report.add(entry.image_id, reason, action="rejected")
        return None
    if image.note is not None and report is not None:
        report.add(entry.image_id, image.note, action="converted")
    words, boxes = json.loads(words_boxes) if words_boxes is not None else (None, None)
    row = {
        "image_id": entry.image_id,
        "patent_id": entry.patent_id,
        "figure": entry.figure,
        "image": {"bytes": image.png, "path": f"{entry.image_id}.png"},
        "description": "",
        "ocr_words": words,
        "ocr_boxes": boxes,
    }
    if official is not None:
        row["ocr_input_ids"], row["ocr_bbox"] = json.loads(ids_boxes) if ids_boxes is not None else (None, None)
    return row

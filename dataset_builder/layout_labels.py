"""`layout`: each figure's layout elements (0-1000 boxes and `PATCH_CLASSES`), cached as JSON Lines (resumable)."""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from patentlmm_common.files import run_lock
from patentlmm_common.jsonl import JsonlAppender

from .coco_elements import read_coco
from .drawing_elements import drawing_elements
from .entries import iter_ocr_cache
from .layout import DatasetLayout
from .options import LayoutOptions
from .pool import ResilientPool, WorkerDiedError
from .pretraining_caches import (
    LAYOUT_CACHE,
    LAYOUT_DIR,
    LAYOUT_SOURCE_FILE,
    claim_cache,
    read_layout_cache,
)
from .reports import ReportWriter, permanent_failures
from .steps import StepSummary, open_figure, step_root, work_list

__all__ = ["LayoutSummary", "layout_root", "run_layout"]

@dataclass
class LayoutSummary(StepSummary):
    """What one `run_layout` call did (`total`: figures in images/; `processed`: elements found and cached)."""

    elements: int = 0  # elements found by this run

    def __str__(self) -> str:
        return (
            f"layout: {self.total} figures: {self.processed} done ({self.elements} elements), {self.cached} already "
            f"cached, {self.failed} failed, {self.previously_failed} skipped as failed before; {self.seconds:.1f} s"
        )


def _layout_figure(
    path: str, words: list[str], boxes: list[list[int]], min_node_side: int, join: int, max_pixels: int | None
) -> tuple[str, Any, bool]:
    """In a worker: `("ok", (boxes, classes), False)` or `("error", reason, permanent)` for one figure."""
    image, reason, permanent = open_figure(path, max_pixels)
    if image is None:
        return "error", reason, permanent
    ink = np.asarray(image.convert("L")) < 128  # (H, W), as the drawing engine's ink
    return "ok", drawing_elements(ink, words, boxes, min_node_side, join), False


def _source(layout: DatasetLayout, options: LayoutOptions) -> dict[str, Any]:
    """What makes the elements: the COCO file (name and SHA-256) or the OCR engine and the heuristics' settings."""
    if options.coco is not None:
        digest = hashlib.sha256(Path(options.coco).read_bytes()).hexdigest()
        return {"source": "coco", "file": Path(options.coco).name, "sha256": digest}
    if layout.ocr_folder is None:
        raise FileNotFoundError(f"no OCR cache in {layout.ocr_dir}: run `ocr --engine drawing` first (or --coco)")
    return {"source": "ocr", "ocr": layout.ocr_engine_record, "min_node_side": options.min_node_side,
            "join": options.join}  # fmt: skip


def run_layout(root: str | os.PathLike, options: LayoutOptions = LayoutOptions()) -> LayoutSummary:  # noqa: B008
    """The elements of every `root/images/*.png` not cached yet in `root/layout/` (nor failed permanently before,
    unless `options.retry_failed`); one bad figure is reported in `root/reports/layout_failures.jsonl` and the run
    goes on. The folder belongs to one source: another is refused (`CacheMismatchError`)."""
    started = time.monotonic()
    layout = DatasetLayout(Path(root), options.ocr_engine)
    folder, report_path = layout.root / LAYOUT_DIR, layout.reports_dir / "layout_failures.jsonl"
    folder.mkdir(parents=True, exist_ok=True)
    with run_lock(folder / ".layout.lock", f"a layout run writing {folder}"):
        claim_cache(folder, LAYOUT_SOURCE_FILE, _source(layout, options), "the layout elements")
        summary = LayoutSummary()
        cached = set(read_layout_cache(folder))
        failed_before = set() if options.retry_failed else permanent_failures(report_path)
        with ReportWriter(report_path, "layout") as report, JsonlAppender(folder / LAYOUT_CACHE) as cache:
            todo = work_list(layout, summary, cached, failed_before, report)
            found = _from_coco(todo, options) if options.coco is not None else _from_ocr(todo, layout, options)
            for image_id, (status, result, permanent) in found:
                if status == "ok":
                    cache.write({"image_id": image_id, "boxes": result[0], "classes": result[1]})
                    summary.processed += 1
                    summary.elements += len(result[0])
                else:
                    report.add(image_id, result, permanent=permanent)
                    summary.failed += 1
    summary.seconds = time.monotonic() - started
    return summary


def _from_coco(todo: list[str], options: LayoutOptions):
    """`(image_id, outcome)` of each figure from the COCO file; its unknown categories are named on stderr."""
    coco = read_coco(options.coco)
    for name, count in sorted(coco.unknown_categories.items()):
        print(f"layout: {options.coco}: category {name!r} is none of the patch classes: its {count} annotation(s) "
              "left out", file=sys.stderr)  # fmt: skip
    for image_id in todo:
        if image_id in coco.elements:
            yield image_id, ("ok", coco.elements[image_id], False)
        elif image_id in coco.bad_images:
            yield image_id, ("error", f"{options.coco}: {coco.bad_images[image_id]}", True)
        else:
            yield image_id, ("error", f"not an image of {options.coco}", True)


def _from_ocr(todo: list[str], layout: DatasetLayout, options: LayoutOptions):
    """`(image_id, outcome)` of each figure from its OCR and ink, in a pool (a killed worker fails one figure)."""
    lines = iter_ocr_cache(layout.ocr_cache_paths, validate_id=layout.validate_id)
    ocr = {image_id: (words, boxes) for image_id, words, boxes in lines}
    ready = [image_id for image_id in todo if image_id in ocr]
    for image_id in todo:
        if image_id not in ocr:
            reason = f"no OCR of it in {layout.ocr_folder} (run `ocr` first; its failures: reports/ocr_failures-*)"
            yield image_id, ("error", reason, False)
    if not ready:
        return
    tasks = (
        (image_id, (os.fspath(layout.images_dir / f"{image_id}.png"), *ocr[image_id], options.min_node_side,
                    options.join, options.max_image_pixels))
        for image_id in ready
    )  # fmt: skip
    workers = min(options.workers or os.cpu_count() or 1, len(ready))
    with ResilientPool(workers) as pool, tqdm(total=len(ready), unit="img", desc="layout") as progress:
        for image_id, outcome in pool.map_unordered(_layout_figure, tasks):
            yield image_id, ("error", str(outcome), False) if isinstance(outcome, WorkerDiedError) else outcome
            progress.update(1)


def layout_root(root: str | os.PathLike, options: LayoutOptions = LayoutOptions()) -> int:  # noqa: B008 (frozen)
    """`layout` on a dataset root; prints the summary and returns the exit status (2: no `images/`, no OCR, or a
    cache of another source)."""
    run = functools.partial(run_layout, root, options)
    return step_root("layout", DatasetLayout(Path(root), options.ocr_engine), run, "layout_failures.jsonl")

"""`ocr`: the words and 0-1000 boxes of every downloaded figure, cached as JSON Lines (resumable, sharded)."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from patentlmm_common.files import atomic_write, run_lock
from patentlmm_common.jsonl import JsonlAppender, complete_lines
from processing.images import ImageTooLargeError, load_image
from processing.ocr_base import OcrEngine, OcrTimeoutError, OcrWords, TesseractNotAvailableError
from processing.ocr_engines import ocr_engine_from_dict
from processing.ocr_tesseract import TesseractEngine, TesseractFailedError

from .deadline import CallDiedError, DeadlineExceededError, call_with_deadline
from .ids import InvalidImageIdError, validate_image_id
from .layout import DatasetLayout
from .ocr_folders import CACHE_STEM, ENGINE_FILE, engine_of_folder
from .options import OcrOptions
from .pool import ResilientPool, WorkerDiedError
from .reports import ReportWriter, permanent_failures
from .sharding import shard_label, shard_of, sharded_name
from .steps import StepSummary

__all__ = ["OcrSummary", "ocr_root", "run_ocr"]


@dataclass
class OcrSummary(StepSummary):
    """What one `run_ocr` call did, for the ids of its shard (`total`: its distinct ids; `processed`: OCRed and
    appended to the cache; `previously_failed`: in the report of an earlier run)."""

    words: int = 0  # words found by this run

    def __str__(self) -> str:
        return (
            f"ocr: {self.total} ids: {self.processed} OCRed ({self.rate:.2f} images/s, {self.words} words), "
            f"{self.cached} already cached, {self.failed} failed, {self.previously_failed} skipped as failed before; "
            f"{self.seconds:.1f} s"
        )


def _cache_files(cache_path_or_folder: str | os.PathLike) -> list[Path]:
    path = Path(cache_path_or_folder)
    return sorted(path.glob(f"{CACHE_STEM}*.jsonl")) if path.is_dir() else [path]


def _cache_entries(cache_path_or_folder: str | os.PathLike) -> Iterable[dict[str, Any]]:
    """The complete entries (objects with a string `image_id`) of the cache files (`_cache_files`)."""
    for path in _cache_files(cache_path_or_folder):
        for entry in complete_lines(path):
            if isinstance(entry, dict) and isinstance(entry.get("image_id"), str):
                yield entry


@functools.lru_cache(maxsize=2)
def _worker_engine(spec: str) -> OcrEngine:
    """The engine of a JSON `engine.to_dict()`, built once per worker process, its models loaded (the processes
    forked for each figure share them)."""
    engine = ocr_engine_from_dict(json.loads(spec))
    engine.warm_up()
    return engine


def _read(engine: OcrEngine, path: str, image: Image.Image, timeout: float) -> OcrWords:
    """The engine's words and boxes of the figure, bounded by `timeout`: Tesseract is a process of its own that
    pytesseract stops at the limit (it reads a 1-bit PNG from its `path`); any other engine runs in a process forked
    for the figure and killed at the limit (`call_with_deadline`)."""
    if isinstance(engine, TesseractEngine):
        return engine(path, timeout=timeout)
    try:
        return call_with_deadline(engine, image, seconds=timeout)
    except DeadlineExceededError:
        raise OcrTimeoutError(f"{engine.name} OCR timed out after {timeout:g} s (its process was stopped)") from None


def _ocr_figure(
    image_id: str, path: str, timeout: float, max_pixels: int | None, engine_spec: str = '{"engine": "tesseract"}'
) -> tuple[str, Any, bool]:
    """In a worker: `("ok", cache entry, False)` or `("error", reason, permanent)`; a permanent failure (the image
    itself) is not retried by a plain rerun, a transient one (the engine's, a timeout) is. Missing Tesseract (or a
    missing optional engine) is raised."""
    name = f"{Path(path).parent.name}/{Path(path).name}"
    try:
        image = load_image(path, max_pixels)
    except ImageTooLargeError as error:
        return "error", f"image too large: {error}", True
    except FileNotFoundError:
        return "error", f"image file not found: {path}", False
    except UnidentifiedImageError:
        return "error", f"unreadable image {name}: not an image (Pillow cannot identify its format)", True
    except Exception as error:  # noqa: BLE001 (a damaged file: whatever its decoder raises)
        return "error", f"unreadable image {name}: {type(error).__name__}: {error}", True
    engine = _worker_engine(engine_spec)
    try:
        words, boxes = _read(engine, path, image, timeout)
    except (ImportError, TesseractNotAvailableError):
        raise
    except (OcrTimeoutError, TesseractFailedError) as error:
        return "error", str(error), False
    except CallDiedError as error:
        return "error", f"{engine.name} OCR failed: {error}", False
    except Exception as error:  # noqa: BLE001 (one figure an engine cannot read is reported; the run goes on)
        return "error", f"{engine.name} OCR failed: {type(error).__name__}: {error}", False
    entry = {"image_id": image_id, "words": words, "boxes": boxes, "width": image.width, "height": image.height}
    return "ok", entry, False


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_ocr(
    image_ids: Iterable[str],
    images_dir: str | os.PathLike,
    cache_path: str | os.PathLike,
    report_path: str | os.PathLike,
    options: OcrOptions = OcrOptions(),  # noqa: B008 (frozen)
    validate_id: Callable[[object], str] = validate_image_id,
) -> OcrSummary:
    """OCRs `images_dir/<image_id>.png` for the ids of shard `options.shard_index` with `options.engine` (a name,
    `to_dict()` or an engine), appending to `cache_path`; an id `validate_id` refuses is reported, not read
    (`ocr_root` passes `DatasetLayout.validate_id`: drawing file stems too at a root without the JSON).

    Ids already in any cache file next to `cache_path`, or with a permanent failure in `report_path` (unless
    `options.retry_failed`), are skipped. The folder of `cache_path` belongs to one engine (its `ocr_engine.json`):
    another engine's folder is refused. `docs/dataset.md` describes the cache and the failure report.
    """
    started = time.monotonic()
    images_dir, cache_path, report_path = Path(images_dir), Path(cache_path), Path(report_path)
    engine = ocr_engine_from_dict(options.engine)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    with run_lock(cache_path.with_name(f".{cache_path.name}.lock"), f"an ocr run writing {cache_path}"):
        _claim_folder(cache_path.parent, engine)
        summary = OcrSummary()
        with ReportWriter(report_path, "ocr") as report:
            todo = _work_list(image_ids, cache_path, report_path, options, report, summary, validate_id)
            if todo:
                engine_spec = json.dumps(engine.to_dict(), sort_keys=True)
                _ocr_in_pool(todo, images_dir, cache_path, engine_spec, options, report, summary)
    summary.seconds = time.monotonic() - started
    return summary


def _work_list(
    image_ids: Iterable[str],
    cache_path: Path,
    report_path: Path,
    options: OcrOptions,
    report: ReportWriter,
    summary: OcrSummary,
    validate_id: Callable[[object], str],
) -> list[str]:
    """This shard's ids that are neither cached nor failed before (unless `retry_failed`); bad ids are reported."""
    cached = {entry["image_id"] for entry in _cache_entries(cache_path.parent)}
    failed_before = set() if options.retry_failed else permanent_failures(report_path)
    todo: dict[str, None] = {}  # ordered set
    seen: set[str] = set()
    for image_id in image_ids:
        if shard_of(str(image_id), options.num_shards) != options.shard_index or image_id in seen:
            continue
        seen.add(image_id)
        if summary.admit(image_id, cached, failed_before):
            try:
                todo[validate_id(image_id)] = None
            except InvalidImageIdError as error:
                report.add(str(image_id), str(error), permanent=True)
                summary.failed += 1
    return list(todo)


def _ocr_in_pool(
    todo: list[str],
    images_dir: Path,
    cache_path: Path,
    engine_spec: str,
    options: OcrOptions,
    report: ReportWriter,
    summary: OcrSummary,
) -> None:
    """A pool of single-threaded engines (one killed worker fails only its own figure, see `pool.py`); results
    are appended to the cache in the order they finish (`engine_spec`: the engine's `to_dict()` as JSON)."""
    workers = min(options.workers or _default_workers(), len(todo))
    tasks = (
        (i, (i, os.fspath(images_dir / f"{i}.png"), options.timeout, options.max_image_pixels, engine_spec))
        for i in todo
    )
    label = shard_label("ocr", options.num_shards, options.shard_index)
    with (
        ResilientPool(workers) as pool,
        JsonlAppender(cache_path) as cache,
        tqdm(total=len(todo), unit="img", desc=label) as progress,
    ):
        for image_id, outcome in pool.map_unordered(_ocr_figure, tasks):
            died = isinstance(outcome, WorkerDiedError)
            status, result, permanent = ("error", str(outcome), False) if died else outcome
            if status == "ok":
                cache.write(result)
                summary.processed += 1
                summary.words += len(result["words"])
            else:
                report.add(image_id, result, permanent=permanent)
                summary.failed += 1
            progress.update(1)


def _claim_folder(folder: Path, engine: OcrEngine) -> None:
    """Records `engine` as the maker of `folder`'s cache, or raises if another engine (or setting) made it."""
    recorded = engine_of_folder(folder)
    if recorded is None:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / ENGINE_FILE) as handle:
            handle.write(json.dumps(engine.to_dict(), indent=2, sort_keys=True) + "\n")
    elif ocr_engine_from_dict(recorded).key != engine.key:
        raise ValueError(
            f"{folder} holds the OCR of {recorded}, not of {engine.to_dict()}: give each engine its own folder "
            f"(`ocr` writes to ocr/<engine key>/, here ocr/{engine.key}/)."
        )


def ocr_root(root: str | os.PathLike, options: OcrOptions = OcrOptions()) -> int:  # noqa: B008 (frozen)
    """`ocr` on a dataset root: the engine over `images/*.png` into `ocr/<engine key>/`; prints the summary and
    returns the exit status (2: no `images/`)."""
    layout = DatasetLayout(Path(root))
    if not layout.images_dir.is_dir():
        print(f"ocr: {layout.images_dir} not found (run `download` first)", file=sys.stderr)
        return 2
    with os.scandir(layout.images_dir) as entries:
        image_ids = sorted(entry.name[: -len(".png")] for entry in entries if entry.name.endswith(".png"))
    engine = ocr_engine_from_dict(options.engine)
    shards, shard = options.num_shards, options.shard_index
    report_path = layout.reports_dir / sharded_name(f"ocr_failures-{engine.key}", shards, shard)
    cache_path = layout.ocr_dir / engine.key / sharded_name(CACHE_STEM, shards, shard)
    summary = run_ocr(image_ids, layout.images_dir, cache_path, report_path, options, layout.validate_id)
    print(f"{summary} (engine {engine.key}; shard {shard} of {shards}; failures: {report_path})")
    return 0

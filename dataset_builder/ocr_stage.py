"""`ocr`: OCR words and boxes of every downloaded figure, cached as JSON Lines.

Run from the repository root, on a folder laid out like the official `DATASET/` (after `download`):

    python -m dataset_builder ocr --root DATASET/                       # every images/*.png, one process per core
    python -m dataset_builder ocr --root DATASET/ --engine tesseract    # the paper's OCR (what its weights saw)
    python -m dataset_builder ocr --root DATASET/ --workers 8 --timeout 120
    # 8 independent jobs (a Slurm array, a Kubernetes indexed job) sharing DATASET/:
    python -m dataset_builder ocr --root DATASET/ --num-shards 8 --shard-index $SLURM_ARRAY_TASK_ID

(`patentlmm dataset ocr ...` is the same command.) In code: `run_ocr(image_ids, images_dir, cache_path, report_path)`,
`read_ocr_cache(folder)`.

Engines (`--engine`, default `drawing`; `processing.ocr.OCR_ENGINES`): each engine + settings has its own folder,
`ocr/<key>/` (`key` = `engine.key`, e.g. `drawing-1a2b3c4d`), holding `ocr_engine.json` (`engine.to_dict()`), so
switching engines never mixes results; a folder made by another engine is refused. `find_ocr_folder(root / "ocr")`
is the folder `build` reads (the only one, or the one of `--ocr-engine`); caches made before engines existed
(`ocr/ocr_cache*.jsonl`) are Tesseract's.

The cache: `ocr/<key>/ocr_cache.jsonl` (shard k of n: `ocr_cache-{k:05d}-of-{n:05d}.jsonl`), one JSON object a line,
`{"image_id", "words": [str], "boxes": [[x0, y0, x1, y1]], "width", "height"}`, boxes normalised to 0-1000 by the
figure's size: exactly the engine's words and boxes; with `tesseract`, those of `processing.ocr.run_tesseract`, i.e.
of `LayoutLMv3ImageProcessor(apply_ocr=True)` (same `pytesseract.image_to_data` call, same filtering and
`normalize_box`; only a per-image `timeout` is added, and 1-bit PNGs go to Tesseract as files, which gives the same
pixels without re-encoding them as RGB; the ONNX engines have no timeout). Each line is written and flushed as its
image finishes, so a crash loses only the images in flight; a rerun skips every id found in any `ocr_cache*.jsonl`
of its folder and first cuts a half-written last line off its own file (readers ignore such a line too).

Work is spread over a process pool (`--workers`, default: the usable cores), one single-threaded engine per worker
(ONNX sessions with one intra-op thread, loaded once per worker; Tesseract with `OMP_THREAD_LIMIT=1`: its OpenMP
threads slow a page down on small machines); a worker killed by a signal (the out-of-memory killer, say) fails
only the figure it was OCRing (`pool.ResilientPool`). Failures are lines of `reports/ocr_failures-<key>.jsonl`
(sharded: `reports/ocr_failures-<key>-{k:05d}-of-{n:05d}.jsonl`; named by engine key, so one engine's failures do
not stop another), each with its real reason and `"permanent"`: the image's own problems (unreadable or damaged,
over the pixel cap) are permanent and a rerun skips them unless given `--retry-failed`; the others (a missing
image, Tesseract killed by a signal, failing or over `--timeout` seconds, another engine failing on the figure, a
worker that died) are retried by a plain rerun. One `ocr` run per cache file at a time: a second stops at once with
a clear message. Ids are assigned to shards by `download.shard_of`.

The official `ocr.json` (LayoutLMv3 token ids, the paper's OCR) needs no step here: put it at `DATASET/ocr.json` and
`build` reads it itself (`records.iter_official_ocr`) into the `ocr_input_ids` / `ocr_bbox` columns, which training
and `patentlmm describe` then use in preference to the OCR words.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytesseract
from PIL import UnidentifiedImageError
from tqdm.auto import tqdm

from processing.constants import DEFAULT_MAX_IMAGE_PIXELS
from processing.images import ImageTooLargeError, load_image
from processing.ocr import (
    DEFAULT_OCR_ENGINE,
    OCR_ENGINES,
    TESSERACT_INSTALL_HINT,
    OcrEngine,
    TesseractEngine,
    TesseractNotAvailableError,
    ocr_engine_from_dict,
)

from .cli import at_least
from .download import shard_of, sharded_name
from .files import atomic_write, run_lock
from .ids import InvalidImageIdError, validate_image_id
from .ocr_folders import CACHE_STEM, ENGINE_FILE, engine_of_folder, find_ocr_folder
from .pool import ResilientPool, WorkerDiedError
from .reports import ReportWriter, permanent_failures

try:  # transformers >= 5 (the PIL backend); the same import as processing.ocr
    from transformers.models.layoutlmv3.image_processing_pil_layoutlmv3 import normalize_box
except ImportError:  # transformers 4.x
    from transformers.models.layoutlmv3.image_processing_layoutlmv3 import normalize_box

__all__ = [
    "CACHE_STEM",
    "ENGINE_FILE",
    "OcrSummary",
    "add_arguments",
    "engine_of_folder",
    "find_ocr_folder",
    "read_ocr_cache",
    "run",
    "run_ocr",
]

DEFAULT_TIMEOUT = 60.0  # seconds of Tesseract per figure; a USPTO sheet takes ~0.5-2 s
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class OcrSummary:
    """What one `run_ocr` call did, for the ids of its shard."""

    total: int = 0  # distinct ids of this shard
    processed: int = 0  # OCRed and appended to the cache by this run
    cached: int = 0  # already in a cache file: skipped
    failed: int = 0  # written to the report by this run
    previously_failed: int = 0  # in the report of an earlier run: skipped
    words: int = 0  # words found by this run
    seconds: float = 0.0

    def __str__(self) -> str:
        rate = self.processed / self.seconds if self.seconds else 0.0
        return (
            f"ocr: {self.total} ids: {self.processed} OCRed ({rate:.2f} images/s, {self.words} words), "
            f"{self.cached} already cached, {self.failed} failed, {self.previously_failed} skipped as failed before; "
            f"{self.seconds:.1f} s"
        )


def _iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSON Lines file (none if it does not exist); lines that do not parse (a half-written last
    line) are skipped."""
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("image_id"), str):
                yield entry


def _cache_files(cache_path_or_folder: str | os.PathLike) -> list[Path]:
    path = Path(cache_path_or_folder)
    return sorted(path.glob(f"{CACHE_STEM}*.jsonl")) if path.is_dir() else [path]


def read_ocr_cache(cache_path_or_folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """image id -> `{"words", "boxes", "width", "height"}`, from one cache file or every `ocr_cache*.jsonl` of a
    folder (all shards). Unparsable lines are ignored; an id found twice keeps its last entry."""
    cache: dict[str, dict[str, Any]] = {}
    for path in _cache_files(cache_path_or_folder):
        for entry in _iter_jsonl(path):
            cache[entry.pop("image_id")] = entry
    return cache


def _cut_partial_last_line(path: Path) -> None:
    """Truncates `path` after its last newline, so that the next append starts a line of its own."""
    if not path.exists():
        return
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        position = size
        while position > 0:
            step = min(position, 1 << 16)
            handle.seek(position - step)
            newline = handle.read(step).rfind(b"\n")
            if newline >= 0:
                position = position - step + newline + 1
                break
            position -= step
        if position < size:
            handle.truncate(position)


def _is_bilevel_png(path: str) -> bool:
    """A 1-bit greyscale PNG (how USPTO drawing sheets come), read from its IHDR chunk.

    `run_tesseract` gets such a figure as RGB, which pytesseract writes to a temporary PNG of 3 bytes a pixel for
    Tesseract to read back; Tesseract reads the 1-bit file to the same black and white pixels (its greyscale of
    (v, v, v) is v), so the words and boxes are the same (tested on the real figures), without that detour.
    """
    with open(path, "rb") as handle:
        head = handle.read(26)  # signature (8), IHDR length and type (8), width, height, bit depth, colour type
    return len(head) == 26 and head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR" and head[24:26] == b"\x01\x00"


def _init_worker() -> None:
    os.environ["OMP_THREAD_LIMIT"] = "1"  # read by each tesseract process this worker starts


@functools.lru_cache(maxsize=2)
def _worker_engine(spec: str) -> OcrEngine:
    """The engine of a JSON `engine.to_dict()`, built once per worker process (its models load once)."""
    return ocr_engine_from_dict(json.loads(spec))


def _ocr_figure(
    image_id: str, path: str, timeout: float, max_pixels: int | None, engine_spec: str = '{"engine": "tesseract"}'
) -> tuple[str, Any, bool]:
    """In a worker: `("ok", cache entry, False)` or `("error", reason, permanent)`; a permanent failure (the image
    itself) is not retried by a plain rerun, a transient one (the engine's) is. Missing Tesseract (or a missing
    optional engine) is raised."""
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
    width, height = image.size
    if not isinstance(engine, TesseractEngine):
        try:
            words, boxes = engine(image)
        except ImportError:
            raise
        except Exception as error:  # noqa: BLE001 (one figure an engine cannot read is reported; the run goes on)
            return "error", f"{engine.name} OCR failed: {type(error).__name__}: {error}", False
        return "ok", {"image_id": image_id, "words": words, "boxes": boxes, "width": width, "height": height}, False
    # The OCR of transformers' `apply_tesseract` (what `processing.ocr.run_tesseract` calls), plus `timeout`. A 1-bit
    # PNG is given to Tesseract as its file, not re-encoded from RGB: the same pixels, half the time.
    source = path if _is_bilevel_png(path) else image
    try:
        data = pytesseract.image_to_data(
            source, lang=engine.lang, output_type="dict", config=engine.config, timeout=timeout
        )
    except pytesseract.TesseractNotFoundError as error:
        raise TesseractNotAvailableError(TESSERACT_INSTALL_HINT) from error
    except pytesseract.TesseractError as error:  # a RuntimeError too: caught before the timeout below
        return "error", _tesseract_failure(error), False
    except RuntimeError as error:  # pytesseract's own RuntimeError: 'Tesseract process timeout'
        return "error", f"tesseract timed out after {timeout:g} s ({error})", False
    words, boxes = [], []
    for word, x, y, w, h in zip(data["text"], data["left"], data["top"], data["width"], data["height"]):
        if word.strip():
            words.append(word)
            boxes.append(normalize_box([x, y, x + w, y + h], width, height))
    return "ok", {"image_id": image_id, "words": words, "boxes": boxes, "width": width, "height": height}, False


def _tesseract_failure(error: pytesseract.TesseractError) -> str:
    """The reason of a failed Tesseract run: the signal that killed it, or its exit status and message."""
    if isinstance(error.status, int) and error.status < 0:
        try:
            name = signal.Signals(-error.status).name
        except ValueError:
            name = f"signal {-error.status}"
        return f"tesseract was killed by {name}" + (f": {error.message}" if error.message else "")
    return f"tesseract failed (exit status {error.status}): {error.message or 'no message'}"


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_ocr(
    image_ids: Iterable[str],
    images_dir: str | os.PathLike,
    cache_path: str | os.PathLike,
    report_path: str | os.PathLike,
    workers: int | None = None,
    num_shards: int = 1,
    shard_index: int = 0,
    timeout: float = DEFAULT_TIMEOUT,
    max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    retry_failed: bool = False,
    engine: str | dict | OcrEngine = DEFAULT_OCR_ENGINE,
) -> OcrSummary:
    """OCRs `images_dir/<image_id>.png` for the ids of shard `shard_index` with `engine` (a name, `to_dict()` or
    an engine), appending to `cache_path`.

    Ids already in any cache file next to `cache_path`, or with a permanent failure in `report_path` (unless
    `retry_failed`), are skipped. The folder of `cache_path` belongs to one engine (its `ocr_engine.json`): another
    engine's folder is refused. See the module docstring for the cache format and the failure report.
    """
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"need num_shards >= 1 and 0 <= shard_index < num_shards, got {shard_index} of {num_shards}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    started = time.monotonic()
    images_dir, cache_path, report_path = Path(images_dir), Path(cache_path), Path(report_path)
    engine = ocr_engine_from_dict(engine)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    with run_lock(cache_path.with_name(f".{cache_path.name}.lock"), f"an ocr run writing {cache_path}"):
        _claim_folder(cache_path.parent, engine)
        summary = _run_ocr_locked(
            image_ids, images_dir, cache_path, report_path, workers, num_shards, shard_index, timeout, max_pixels,
            retry_failed, json.dumps(engine.to_dict(), sort_keys=True),
        )  # fmt: skip
    summary.seconds = time.monotonic() - started
    return summary


def _run_ocr_locked(
    image_ids: Iterable[str],
    images_dir: Path,
    cache_path: Path,
    report_path: Path,
    workers: int | None,
    num_shards: int,
    shard_index: int,
    timeout: float,
    max_pixels: int | None,
    retry_failed: bool,
    engine_spec: str,
) -> OcrSummary:
    """`run_ocr` once it holds the lock of its cache file (`engine_spec`: the engine's `to_dict()` as JSON)."""
    cached = {entry["image_id"] for path in _cache_files(cache_path.parent) for entry in _iter_jsonl(path)}
    failed_before = set() if retry_failed else permanent_failures(report_path)
    summary = OcrSummary()

    with ReportWriter(report_path, "ocr") as report:
        # 1) this shard's work list
        todo: dict[str, None] = {}  # ordered set
        seen: set[str] = set()
        for image_id in image_ids:
            if shard_of(str(image_id), num_shards) != shard_index or image_id in seen:
                continue
            seen.add(image_id)
            summary.total += 1
            if image_id in cached:
                summary.cached += 1
            elif image_id in failed_before:
                summary.previously_failed += 1
            else:
                try:
                    todo[validate_image_id(image_id)] = None
                except InvalidImageIdError as error:
                    report.add(str(image_id), str(error), permanent=True)
                    summary.failed += 1
        if not todo:
            return summary

        # 2) a pool of single-threaded engines (one killed worker fails only its own figure, see `pool.py`);
        # results are appended in the order they finish
        _cut_partial_last_line(cache_path)
        workers = min(workers or _default_workers(), len(todo))
        tasks = ((i, (i, os.fspath(images_dir / f"{i}.png"), timeout, max_pixels, engine_spec)) for i in todo)
        label = "ocr" if num_shards == 1 else f"ocr shard {shard_index}/{num_shards}"
        with (
            ResilientPool(workers, initializer=_init_worker) as pool,
            open(cache_path, "a", encoding="utf-8") as cache,
            tqdm(total=len(todo), unit="img", desc=label) as progress,
        ):
            for image_id, outcome in pool.map_unordered(_ocr_figure, tasks):
                died = isinstance(outcome, WorkerDiedError)
                status, result, permanent = ("error", str(outcome), False) if died else outcome
                if status == "ok":
                    cache.write(json.dumps(result, ensure_ascii=False) + "\n")
                    cache.flush()
                    summary.processed += 1
                    summary.words += len(result["words"])
                else:
                    report.add(image_id, result, permanent=permanent)
                    summary.failed += 1
                progress.update(1)
    return summary


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `ocr` (see the module docstring)."""
    parser.add_argument("--root", required=True, type=Path, help="dataset folder holding images/")
    parser.add_argument(
        "--engine",
        choices=sorted(OCR_ENGINES),
        default=DEFAULT_OCR_ENGINE,
        help="OCR engine (tesseract: the paper's OCR; drawing: reads patent drawings' numerals; see `patentlmm ocr "
        "--list-engines`)",
    )
    parser.add_argument("--workers", type=at_least(1), default=None, help="OCR processes (default: the usable cores)")
    parser.add_argument(
        "--timeout", type=at_least(0, float, exclusive=True), default=DEFAULT_TIMEOUT, help="seconds per figure"
    )
    parser.add_argument("--num-shards", type=at_least(1), default=1, help="split the ids into this many jobs")
    parser.add_argument("--shard-index", type=at_least(0), default=0, help="the job's shard, 0 .. num-shards - 1")
    parser.add_argument(
        "--max-image-pixels",
        type=at_least(1),
        default=DEFAULT_MAX_IMAGE_PIXELS,
        help="report images with more pixels instead of OCRing them (decompression-bomb guard)",
    )
    parser.add_argument("--retry-failed", action="store_true", help="also retry ids in the failure report")


def run(args: argparse.Namespace) -> int:
    """`ocr`: the engine over `<root>/images/*.png` into `<root>/ocr/<engine key>/`."""
    root = Path(args.root)
    images_dir = root / "images"
    if not images_dir.is_dir():
        print(f"ocr: {images_dir} not found (run `download` first)", file=sys.stderr)
        return 2
    with os.scandir(images_dir) as entries:
        image_ids = sorted(entry.name[: -len(".png")] for entry in entries if entry.name.endswith(".png"))
    engine = ocr_engine_from_dict(args.engine)
    report_path = root / "reports" / sharded_name(f"ocr_failures-{engine.key}", args.num_shards, args.shard_index)
    summary = run_ocr(
        image_ids,
        images_dir,
        root / "ocr" / engine.key / sharded_name(CACHE_STEM, args.num_shards, args.shard_index),
        report_path,
        workers=args.workers,
        num_shards=args.num_shards,
        shard_index=args.shard_index,
        timeout=args.timeout,
        max_pixels=args.max_image_pixels,
        retry_failed=args.retry_failed,
        engine=engine,
    )
    print(f"{summary} (engine {engine.key}; shard {args.shard_index} of {args.num_shards}; failures: {report_path})")
    return 0

"""`download`: each entry's figure from its `image_url` into `images/<image_id>.png`, resumable and sharded."""

from __future__ import annotations

import io
import os
import random
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import UnidentifiedImageError
from tqdm.auto import tqdm

from patentlmm_common.files import TEMP_MARK, atomic_write, run_lock
from processing.images import ImageTooLargeError, open_image, to_rgb

from .entries import iter_entries
from .fetch import MAX_WAIT, DownloadError, HostRateLimiter, fetch, url_problem
from .ids import InvalidImageIdError, validate_image_id
from .jsonstream import BrokenFileError
from .layout import DATASET_JSON, DatasetLayout
from .options import DownloadOptions
from .reports import ReportWriter, frames_note, permanent_failures
from .sharding import shard_label, shard_of, sharded_name

__all__ = ["DownloadSummary", "checked_png", "download_images", "download_root"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the last 12 bytes of every complete PNG
_PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")  # modes PNG stores losslessly


@dataclass
class DownloadSummary:
    """What one `download_images` call did, for the ids of its shard."""

    total: int = 0  # distinct ids of this shard
    downloaded: int = 0
    skipped: int = 0  # already complete in images/
    failed: int = 0  # written to the report by this run
    previously_failed: int = 0  # permanent failures of an earlier run, not retried
    requests: int = 0  # HTTP requests sent, retries included
    bytes: int = 0  # bytes written to images/
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"download: {self.total} ids: {self.downloaded} downloaded, {self.skipped} already present, "
            f"{self.failed} failed, {self.previously_failed} skipped as failed before; {self.requests} requests, "
            f"{self.bytes / 1e6:.1f} MB in {self.seconds:.1f} s"
        )


def checked_png(body: bytes, max_pixels: int | None) -> tuple[bytes, str | None]:
    """Checks that `body` is an image within the pixel cap; returns it as PNG bytes, and a note for the report when
    only its first frame was kept (`frames_note`).

    A PNG body is checked without decoding its pixels (Pillow's `verify`: every chunk's CRC, through `IEND`), which
    catches truncated and corrupted transfers at a twentieth of a full decode's CPU, and is kept byte for byte. Any
    other format, and an animated PNG, is decoded (its first frame) and re-encoded as PNG. (`build` decodes every
    pixel later and reports what fails.) Whatever a decoder raises on a damaged body (`SyntaxError`, `IndexError`,
    `RuntimeError`, ... each plugin has its own) is a permanent failure of that body, never of the run.
    """
    try:
        with open_image(body, max_pixels) as image:
            note = frames_note(image)
            if body.startswith(_PNG_SIGNATURE) and note is None:
                image.verify()
                return body, None
            image.load()
            buffer = io.BytesIO()
            (image if image.mode in _PNG_MODES else to_rgb(image)).save(buffer, format="PNG")
            return buffer.getvalue(), note
    except ImageTooLargeError as error:
        raise DownloadError(f"image too large: {error}", permanent=True) from None
    except UnidentifiedImageError:
        raise DownloadError(f"not an image: body starts with {body[:32]!r}", permanent=True) from None
    except Exception as error:  # noqa: BLE001 (a damaged body: any decoder error)
        raise DownloadError(f"damaged image: {type(error).__name__}: {error}", permanent=True) from None


def _is_complete_png(path: Path) -> bool:
    """A PNG signature at the start and an `IEND` chunk at the end: true of every file this module wrote."""
    try:
        with open(path, "rb") as handle:
            if handle.read(len(_PNG_SIGNATURE)) != _PNG_SIGNATURE:
                return False
            handle.seek(-len(_PNG_IEND), os.SEEK_END)
            return handle.read() == _PNG_IEND
    except OSError:  # missing, or shorter than the trailer
        return False


class _Downloader:
    """The per-item work of `download_images`, shared by its threads."""

    def __init__(self, images_dir: Path, report: ReportWriter, summary: DownloadSummary, options: DownloadOptions):
        self.images_dir, self.report, self.summary, self.options = images_dir, report, summary, options
        self.limiter = HostRateLimiter(options.per_host_rate)
        self.lock = threading.Lock()

    def _count(self, field: str, amount: int = 1) -> None:
        with self.lock:
            setattr(self.summary, field, getattr(self.summary, field) + amount)

    def _fail(self, image_id: str, url: str, reason: str, permanent: bool, attempts: int) -> None:
        with self.lock:
            self.report.add(image_id, reason, url=url, permanent=permanent, attempts=attempts)
            self.summary.failed += 1

    def __call__(self, image_id: str, url: str, present: bool) -> None:
        path = self.images_dir / f"{image_id}.png"
        if present and _is_complete_png(path):
            self._count("skipped")
            return
        options = self.options
        host = urllib.parse.urlsplit(url).netloc.lower()
        for attempt in range(options.retries + 1):
            self.limiter.wait(host)
            self._count("requests")
            try:
                png, note = checked_png(fetch(url, options.timeout, options.max_bytes), options.max_image_pixels)
            except DownloadError as error:
                if error.permanent or attempt == options.retries:
                    self._fail(image_id, url, str(error), error.permanent, attempt + 1)
                    return
                if error.retry_after is not None:
                    wait = min(error.retry_after, MAX_WAIT)
                    self.limiter.pause(host, wait)  # the server asked every client of this host to wait
                else:  # exponential backoff, half of it random so that threads do not retry in step
                    step = min(options.backoff * 2**attempt, MAX_WAIT)
                    wait = step / 2 + random.uniform(0, step / 2)
                time.sleep(wait)
                continue
            with atomic_write(path, "wb") as handle:
                handle.write(png)
            if note is not None:
                with self.lock:
                    self.report.add(image_id, note, url=url, action="first frame kept")
            self._count("downloaded")
            self._count("bytes", len(png))
            return


def download_images(
    items: Iterable[tuple[str, str]],
    images_dir: str | os.PathLike,
    report_path: str | os.PathLike,
    options: DownloadOptions = DownloadOptions(),  # noqa: B008 (frozen)
) -> DownloadSummary:
    """Downloads the `(image_id, image_url)` pairs of shard `options.shard_index` into `images_dir/<image_id>.png`.

    Invalid ids and non-http(s) URLs go straight to the report; duplicate ids are fetched once (the first URL).
    `docs/dataset.md` says how failures are retried, rate-limited, resumed and reported.
    """
    started = time.monotonic()
    images_dir, report_path = Path(images_dir), Path(report_path)
    images_dir.mkdir(parents=True, exist_ok=True)
    shard, shards = options.shard_index, options.num_shards
    lock = images_dir.with_name(f".{images_dir.name}.download-{shard:05d}-of-{shards:05d}.lock")
    with run_lock(lock, f"a download of shard {shard} of {shards} into {images_dir}"):
        summary = DownloadSummary()
        previously_failed = set() if options.retry_failed else permanent_failures(report_path)
        present = _scan_images(images_dir, options)
        with ReportWriter(report_path, "download") as report:
            todo = _work_list(items, options, previously_failed, report, summary)
            _download_in_threads(_Downloader(images_dir, report, summary, options), todo, present, options)
    summary.seconds = time.monotonic() - started
    return summary


def _scan_images(images_dir: Path, options: DownloadOptions) -> set[str]:
    """One scan of `images_dir`: the ids of complete-looking files; this shard's stale temporaries (a killed run's)
    are deleted on the way."""
    present: set[str] = set()
    stale_mark = ".png" + TEMP_MARK
    with os.scandir(images_dir) as entries:
        for entry in entries:
            if entry.name.endswith(".png"):
                present.add(entry.name[: -len(".png")])
            elif entry.name.startswith(".") and stale_mark in entry.name:
                stale_id = entry.name[1 : entry.name.index(stale_mark)]
                if shard_of(stale_id, options.num_shards) == options.shard_index:
                    os.unlink(entry.path)
    return present


def _work_list(
    items: Iterable[tuple[str, str]],
    options: DownloadOptions,
    previously_failed: set[str],
    report: ReportWriter,
    summary: DownloadSummary,
) -> dict[str, str]:
    """This shard's work: valid ids with http(s) URLs, the first occurrence of each id (the rest reported)."""
    todo: dict[str, str] = {}
    seen: set[str] = set()
    for image_id, url in items:
        if shard_of(str(image_id), options.num_shards) != options.shard_index or image_id in seen:
            continue
        seen.add(image_id)
        if image_id in previously_failed:
            summary.previously_failed += 1
            continue
        try:
            validate_image_id(image_id)
        except InvalidImageIdError as error:
            report.add(str(image_id), str(error), url=url, permanent=True, attempts=0)
            summary.failed += 1
            continue
        problem = url_problem(url)
        if problem is not None:
            report.add(image_id, problem, url=url, permanent=True, attempts=0)
            summary.failed += 1
            continue
        todo[image_id] = url
    summary.total = len(todo) + summary.failed + summary.previously_failed
    return todo


def _download_in_threads(
    downloader: _Downloader, todo: dict[str, str], present: set[str], options: DownloadOptions
) -> None:
    """`options.workers` threads pull from one shared iterator (no queue of 355K futures); an unexpected error
    (disk full, say) stops every thread, then is raised."""
    pending = iter(todo.items())
    pending_lock = threading.Lock()
    stop = threading.Event()
    progress = tqdm(total=len(todo), unit="img", desc=shard_label("download", options.num_shards, options.shard_index))
    errors: list[BaseException] = []

    def work() -> None:
        while not stop.is_set():
            with pending_lock:
                item = next(pending, None)
            if item is None:
                return
            try:
                downloader(*item, present=item[0] in present)
            except BaseException as error:
                errors.append(error)
                stop.set()
                return
            progress.update(1)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(min(options.workers, max(len(todo), 1)))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:  # in-flight downloads finish their write; nothing partial is left
        stop.set()
        for thread in threads:
            thread.join()
        raise
    finally:
        progress.close()
    if errors:
        raise errors[0]


def download_root(root: str | os.PathLike, options: DownloadOptions = DownloadOptions()) -> int:  # noqa: B008
    """`download` on a dataset root: every entry of `PatentDesc-355k.json` -> `images/<image_id>.png`; prints the
    summary and returns the exit status (1: the JSON breaks off, its entries before the break were downloaded;
    2: no JSON)."""
    layout = DatasetLayout(Path(root))
    if not layout.json_path.is_file():
        print(f"download: {layout.json_path} not found (--root must be the folder holding {DATASET_JSON})",
              file=sys.stderr)  # fmt: skip
        return 2
    shards, shard = options.num_shards, options.shard_index
    report_path = layout.reports_dir / sharded_name("download_failures", shards, shard)
    # The JSON is streamed; only this shard's (id, url) pairs are kept. Invalid entries are reported by shard 0.
    # A file that breaks off (truncated, say) still gives the complete entries before the break: they are fetched,
    # and the break is reported with a non-zero exit status (`build` refuses such a file, with the same message).
    items, broken = [], None
    with ReportWriter(report_path, "download") as rejected:
        try:
            for entry in iter_entries(layout.json_path, rejected if shard == 0 else None):
                if shard_of(entry.image_id, shards) == shard:
                    items.append((entry.image_id, entry.image_url))
        except BrokenFileError as error:
            if not items:
                raise
            broken = error
    summary = download_images(items, layout.images_dir, report_path, options)
    print(f"{summary} (shard {shard} of {shards}; failures: {report_path})")
    if broken is not None:
        print(f"download: {broken} (the {len(items)} entries before it were downloaded)", file=sys.stderr)
        return 1
    return 0

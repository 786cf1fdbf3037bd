"""`download`: fetch the PatentDesc-355k figures from each entry's `image_url` into `images/<image_id>.png`.

Run from the repository root, on a folder laid out like the official `DATASET/` (it needs `PatentDesc-355k.json`):

    python -m dataset_builder download --root DATASET/                  # 16 threads, 50 requests/s per host
    python -m dataset_builder download --root DATASET/ --workers 32 --per-host-rate 50 --retries 8 --timeout 120
    # 8 independent jobs (a Slurm array, a Kubernetes indexed job) sharing DATASET/images/:
    python -m dataset_builder download --root DATASET/ --num-shards 8 --shard-index $SLURM_ARRAY_TASK_ID

(`patentlmm dataset download ...` is the same command.) In code: `download_images(items, images_dir, report_path)`.

What it guarantees:
- Threads (`--workers`) share a per-host rate limit (`--per-host-rate` requests/s; 0 = none). A 429 or 503 with
  `Retry-After` pauses every thread's requests to that host for that long (capped at `MAX_WAIT` seconds).
- Transient failures (timeouts, connection errors, HTTP 408/429/5xx, bodies shorter than their Content-Length) are
  retried `--retries` times with exponential backoff and jitter (`backoff * 2**attempt`, half of it random).
  `--timeout` bounds each attempt as a whole: connecting, waiting and reading the body.
- Permanent failures (other HTTP 4xx such as 404 and 410, a body that is not an image or is over the pixel cap,
  a URL that is not http(s)) are not retried. Every failure is one line of `reports/download_failures.jsonl`
  (`{"image_id", "stage": "download", "reason", "url", "permanent", "attempts"}`); a rerun skips ids with a
  permanent failure there (`--retry-failed` tries them again) and retries the others.
- Each body is checked as an image before it is kept: its size from the header against the pixel cap
  (`--max-image-pixels`, decompression bombs), then a PNG body's every chunk CRC through `IEND` (Pillow's `verify`,
  no pixel decoding: truncated and corrupted transfers fail it) — PNG bodies are saved byte for byte — while other
  formats are decoded and re-encoded as PNG (lossless, keeping 1-bit, greyscale, palette and RGB(A) modes, anything
  else as RGB). `build` decodes every pixel later and reports any figure that fails.
- Files are written to `images/<image_id>.png.part`, fsynced and renamed with `os.replace`, so `images/` never holds
  a partial `.png`. A rerun after a crash or SIGKILL skips complete files (PNG signature and `IEND` trailer, checked
  without decoding) and deletes the stale `.part` files of its own shard.
- Sharding: id `i` belongs to shard `shard_of(i, n)` (a SHA-1 of the id, stable across machines and Python
  versions). Jobs with different `--shard-index` never touch the same file; each writes its own report,
  `reports/download_failures-{k:05d}-of-{n:05d}.jsonl`. Entries of the JSON that fail validation (bad id, missing
  fields, duplicates) are reported by shard 0 only.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import http.client
import io
import json
import os
import random
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import UnidentifiedImageError
from tqdm.auto import tqdm

from processing.constants import DEFAULT_MAX_IMAGE_PIXELS
from processing.images import ImageTooLargeError, open_image, to_rgb

from .ids import InvalidImageIdError, validate_image_id
from .records import iter_records
from .reports import ReportWriter

__all__ = [
    "DATASET_JSON",
    "DownloadSummary",
    "add_arguments",
    "checked_png",
    "download_images",
    "run",
    "shard_of",
    "sharded_name",
]

DATASET_JSON = "PatentDesc-355k.json"  # the official release's file, in --root
DEFAULT_WORKERS = 16
DEFAULT_PER_HOST_RATE = 50.0  # requests/s to one host, all threads together
DEFAULT_RETRIES = 5
DEFAULT_TIMEOUT = 60.0  # seconds for one attempt: connect + response + whole body
DEFAULT_BACKOFF = 1.0  # seconds before the first retry; doubled at each further one
MAX_WAIT = 300.0  # cap on one backoff or Retry-After wait, in seconds
MAX_BODY_BYTES = 64 << 20  # a patent sheet is ~50 KB-2 MB; anything over this is not a figure
PART_SUFFIX = ".part"  # images/<id>.png.part while a body is being written
USER_AGENT = "patentlmm-dataset-builder (PatentDesc-355k figure download)"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the last 12 bytes of every complete PNG
_PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")  # modes PNG stores losslessly
_RETRY_STATUSES = (408, 429)  # plus every 5xx


def shard_of(image_id: str, num_shards: int) -> int:
    """The shard (0 .. num_shards-1) that owns `image_id`: the first 8 bytes of its SHA-1, modulo `num_shards`."""
    return int.from_bytes(hashlib.sha1(image_id.encode("utf-8")).digest()[:8], "big") % num_shards


def sharded_name(stem: str, num_shards: int, shard_index: int) -> str:
    """`stem.jsonl` for an unsharded run, `stem-00003-of-00008.jsonl` for shard 3 of 8."""
    _check_shard(num_shards, shard_index)
    return f"{stem}.jsonl" if num_shards == 1 else f"{stem}-{shard_index:05d}-of-{num_shards:05d}.jsonl"


def _check_shard(num_shards: int, shard_index: int) -> None:
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"need num_shards >= 1 and 0 <= shard_index < num_shards, got {shard_index} of {num_shards}")


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


class _HostRateLimiter:
    """At most `rate` request starts per second per host, over all threads; `pause` holds a host back."""

    def __init__(self, rate: float):
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next_start: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, host: str) -> None:
        with self._lock:  # reserve the next free slot of this host, then sleep outside the lock
            now = time.monotonic()
            start = max(now, self._next_start.get(host, now))
            self._next_start[host] = start + self._interval
        time.sleep(max(0.0, start - now))

    def pause(self, host: str, seconds: float) -> None:
        with self._lock:
            resume = time.monotonic() + seconds
            self._next_start[host] = max(self._next_start.get(host, resume), resume)


class _DownloadError(Exception):
    """A failed attempt; `permanent` ones are not retried, `retry_after` (seconds) overrides the backoff."""

    def __init__(self, reason: str, permanent: bool, retry_after: float | None = None):
        super().__init__(reason)
        self.permanent = permanent
        self.retry_after = retry_after


def _retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _opener() -> urllib.request.OpenerDirector:
    """urllib's HTTP(S) handlers, redirects and proxies only: no file://, ftp:// or data: (even via a redirect)."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def _fetch(opener: urllib.request.OpenerDirector, url: str, timeout: float, max_bytes: int) -> bytes:
    """One GET of `url`; the whole body, or `_DownloadError`."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with opener.open(request, timeout=timeout) as response:
            chunks, size = [], 0
            while chunk := response.read(1 << 16):
                size += len(chunk)
                if size > max_bytes:
                    raise _DownloadError(f"body over {max_bytes:,} bytes", permanent=True)
                if time.monotonic() > deadline:
                    raise _DownloadError(f"timed out after {timeout:g} s reading the body", permanent=False)
                chunks.append(chunk)
            # http.client ends a short fixed-length body silently; chunked bodies raise IncompleteRead instead
            expected = response.headers.get("Content-Length", "")
            if expected.isdigit() and size < int(expected):
                raise _DownloadError(f"truncated body: {size} of {expected} bytes", permanent=False)
            return b"".join(chunks)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code in _RETRY_STATUSES or error.code >= 500:
            retry_after = _retry_after_seconds(error.headers.get("Retry-After")) if error.code in (429, 503) else None
            raise _DownloadError(f"HTTP {error.code}", permanent=False, retry_after=retry_after) from None
        raise _DownloadError(f"HTTP {error.code}", permanent=True) from None
    except http.client.IncompleteRead as error:
        raise _DownloadError(f"truncated body: {len(error.partial)} bytes, then the connection closed", False) from None
    except TimeoutError:
        raise _DownloadError(f"timed out after {timeout:g} s", permanent=False) from None
    except urllib.error.URLError as error:  # connection refused, DNS, a redirect to an unsupported scheme
        raise _DownloadError(f"connection error: {error.reason}", permanent=False) from None
    except (http.client.HTTPException, OSError) as error:  # resets, TLS errors, malformed responses
        raise _DownloadError(f"connection error: {type(error).__name__}: {error}", permanent=False) from None


def checked_png(body: bytes, max_pixels: int | None) -> bytes:
    """Checks that `body` is an image within the pixel cap; returns it as PNG bytes.

    A PNG body is checked without decoding its pixels (Pillow's `verify`: every chunk's CRC, through `IEND`), which
    catches truncated and corrupted transfers at a twentieth of a full decode's CPU, and is kept byte for byte. Any
    other format is decoded and re-encoded as PNG. (`build` decodes every pixel later and reports what fails.)
    """
    try:
        with open_image(body, max_pixels) as image:
            if body.startswith(_PNG_SIGNATURE):
                image.verify()
                return body
            image.load()
            buffer = io.BytesIO()
            (image if image.mode in _PNG_MODES else to_rgb(image)).save(buffer, format="PNG")
            return buffer.getvalue()
    except ImageTooLargeError as error:
        raise _DownloadError(f"image too large: {error}", permanent=True) from None
    except UnidentifiedImageError:
        raise _DownloadError(f"not an image: body starts with {body[:32]!r}", permanent=True) from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as error:  # Pillow's errors for a damaged file
        raise _DownloadError(f"damaged image: {type(error).__name__}: {error}", permanent=True) from None


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


def _write_atomically(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + PART_SUFFIX)
    with open(part, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(part, path)


def _read_permanent_failures(report_path: Path) -> set[str]:
    """Ids with a permanent failure in an earlier run's report (a half-written last line is ignored)."""
    failed: set[str] = set()
    if report_path.exists():
        with open(report_path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(entry, dict) and entry.get("permanent") is True:
                    failed.add(entry.get("image_id"))
    return failed


class _Downloader:
    """The per-item work of `download_images`, shared by its threads."""

    def __init__(
        self,
        images_dir: Path,
        report: ReportWriter,
        summary: DownloadSummary,
        per_host_rate: float,
        retries: int,
        timeout: float,
        backoff: float,
        max_pixels: int | None,
        max_bytes: int,
    ):
        self.images_dir = images_dir
        self.report = report
        self.summary = summary
        self.limiter = _HostRateLimiter(per_host_rate)
        self.opener = _opener()
        self.retries = retries
        self.timeout = timeout
        self.backoff = backoff
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
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
        host = urllib.parse.urlsplit(url).netloc.lower()
        for attempt in range(self.retries + 1):
            self.limiter.wait(host)
            self._count("requests")
            try:
                png = checked_png(_fetch(self.opener, url, self.timeout, self.max_bytes), self.max_pixels)
            except _DownloadError as error:
                if error.permanent or attempt == self.retries:
                    self._fail(image_id, url, str(error), error.permanent, attempt + 1)
                    return
                if error.retry_after is not None:
                    wait = min(error.retry_after, MAX_WAIT)
                    self.limiter.pause(host, wait)  # the server asked every client of this host to wait
                else:  # exponential backoff, half of it random so that threads do not retry in step
                    step = min(self.backoff * 2**attempt, MAX_WAIT)
                    wait = step / 2 + random.uniform(0, step / 2)
                time.sleep(wait)
                continue
            _write_atomically(path, png)
            self._count("downloaded")
            self._count("bytes", len(png))
            return


def download_images(
    items: Iterable[tuple[str, str]],
    images_dir: str | os.PathLike,
    report_path: str | os.PathLike,
    workers: int = DEFAULT_WORKERS,
    num_shards: int = 1,
    shard_index: int = 0,
    per_host_rate: float = DEFAULT_PER_HOST_RATE,
    retries: int = DEFAULT_RETRIES,
    timeout: float = DEFAULT_TIMEOUT,
    backoff: float = DEFAULT_BACKOFF,
    max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    max_bytes: int = MAX_BODY_BYTES,
    retry_failed: bool = False,
) -> DownloadSummary:
    """Downloads the `(image_id, image_url)` pairs of shard `shard_index` into `images_dir/<image_id>.png`.

    Invalid ids and non-http(s) URLs go straight to the report; duplicate ids are fetched once (the first URL).
    See the module docstring for retries, rate limiting, resuming and the report.
    """
    _check_shard(num_shards, shard_index)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    started = time.monotonic()
    images_dir, report_path = Path(images_dir), Path(report_path)
    images_dir.mkdir(parents=True, exist_ok=True)
    summary = DownloadSummary()
    previously_failed = set() if retry_failed else _read_permanent_failures(report_path)

    # 1) one scan of images/: complete-looking files, and stale .part files of this shard (a killed run's) deleted
    present: set[str] = set()
    with os.scandir(images_dir) as entries:
        for entry in entries:
            if entry.name.endswith(".png"):
                present.add(entry.name[: -len(".png")])
            elif entry.name.endswith(".png" + PART_SUFFIX):
                stale_id = entry.name[: -len(".png" + PART_SUFFIX)]
                if shard_of(stale_id, num_shards) == shard_index:
                    os.unlink(entry.path)

    with ReportWriter(report_path, "download") as report:
        # 2) this shard's work list: valid ids with http(s) URLs, first occurrence of each id
        todo: dict[str, str] = {}
        seen: set[str] = set()
        for image_id, url in items:
            if shard_of(str(image_id), num_shards) != shard_index or image_id in seen:
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
            if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                report.add(image_id, f"not an http(s) URL: {url!r}", url=url, permanent=True, attempts=0)
                summary.failed += 1
                continue
            todo[image_id] = url
        summary.total = len(todo) + summary.failed + summary.previously_failed

        # 3) worker threads pull from one shared iterator (no queue of 355K futures)
        downloader = _Downloader(
            images_dir,
            report,
            summary,
            per_host_rate=per_host_rate,
            retries=retries,
            timeout=timeout,
            backoff=backoff,
            max_pixels=max_pixels,
            max_bytes=max_bytes,
        )
        pending = iter(todo.items())
        pending_lock = threading.Lock()
        stop = threading.Event()
        label = "download" if num_shards == 1 else f"download shard {shard_index}/{num_shards}"
        progress = tqdm(total=len(todo), unit="img", desc=label)

        errors: list[BaseException] = []  # an unexpected error (disk full, say) stops every thread, then is raised

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

        threads = [threading.Thread(target=work, daemon=True) for _ in range(min(workers, max(len(todo), 1)))]
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
    summary.seconds = time.monotonic() - started
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `download` (see the module docstring)."""
    parser.add_argument("--root", required=True, type=Path, help=f"dataset folder holding {DATASET_JSON}")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="concurrent downloads (threads)")
    parser.add_argument(
        "--per-host-rate",
        type=float,
        default=DEFAULT_PER_HOST_RATE,
        help="most requests per second to one host, all threads together (0: no limit)",
    )
    parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES, help="retries of a transient failure")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds for one attempt, body included")
    parser.add_argument("--num-shards", type=int, default=1, help="split the ids into this many independent jobs")
    parser.add_argument("--shard-index", type=int, default=0, help="the job's shard, 0 .. num-shards - 1")
    parser.add_argument(
        "--max-image-pixels",
        type=int,
        default=DEFAULT_MAX_IMAGE_PIXELS,
        help="reject images with more pixels (decompression-bomb guard)",
    )
    parser.add_argument(
        "--retry-failed", action="store_true", help="also retry ids that failed permanently in an earlier run"
    )


def run(args: argparse.Namespace) -> int:
    """`download`: every entry of `<root>/PatentDesc-355k.json` -> `<root>/images/<image_id>.png`."""
    root = Path(args.root)
    json_path = root / DATASET_JSON
    if not json_path.is_file():
        print(f"download: {json_path} not found (--root must be the folder holding {DATASET_JSON})", file=sys.stderr)
        return 2
    report_path = root / "reports" / sharded_name("download_failures", args.num_shards, args.shard_index)
    # The JSON is streamed; only this shard's (id, url) pairs are kept. Invalid entries are reported by shard 0.
    with ReportWriter(report_path, "download") as rejected:
        items = [
            (record.image_id, record.image_url)
            for record in iter_records(json_path, rejected if args.shard_index == 0 else None)
            if shard_of(record.image_id, args.num_shards) == args.shard_index
        ]
    summary = download_images(
        items,
        root / "images",
        report_path,
        workers=args.workers,
        num_shards=args.num_shards,
        shard_index=args.shard_index,
        per_host_rate=args.per_host_rate,
        retries=args.retries,
        timeout=args.timeout,
        max_pixels=args.max_image_pixels,
        retry_failed=args.retry_failed,
    )
    print(f"{summary} (shard {args.shard_index} of {args.num_shards}; failures: {report_path})")
    return 0

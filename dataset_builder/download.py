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
  `--timeout` bounds each attempt as a whole (connecting, redirects, headers and body): at the deadline its sockets
  are shut down, so a server trickling a byte at a time holds a thread for `--timeout` seconds, no longer.
- Permanent failures (other HTTP 4xx such as 404 and 410, a body that is not an image, is damaged or is over the
  pixel cap, a malformed or non-http(s) URL, a redirect loop or a redirect to a non-http(s) URL such as `file://`)
  are not retried. Every failure is one line of `reports/download_failures.jsonl`
  (`{"image_id", "stage": "download", "reason", "url", "permanent", "attempts"}`); a rerun skips ids with a
  permanent failure there (`--retry-failed` tries them again) and retries the others.
- An animated or multi-page image (GIF, APNG, TIFF) keeps its first frame, and the report says so (a line with
  `"action": "first frame kept"`).
- Each body is checked as an image before it is kept: its size from the header against the pixel cap
  (`--max-image-pixels`, decompression bombs), then a PNG body's every chunk CRC through `IEND` (Pillow's `verify`,
  no pixel decoding: truncated and corrupted transfers fail it) — PNG bodies are saved byte for byte — while other
  formats are decoded and re-encoded as PNG (lossless, keeping 1-bit, greyscale, palette and RGB(A) modes, anything
  else as RGB). `build` decodes every pixel later and reports any figure that fails.
- Files are written atomically (`files.atomic_write`: `images/.<image_id>.png.tmp-<random>`, fsynced, renamed, with
  the usual umask), so `images/` never holds a partial `.png`. A rerun after a crash or SIGKILL skips complete files
  (PNG signature and `IEND` trailer, checked without decoding) and deletes the stale temporaries of its own shard.
- One run per shard at a time: a second `download` of the same shard of the same `images/` stops at once with a
  clear message instead of fetching every id again (`files.run_lock` on `.images.download-<k>-of-<n>.lock`).
- Sharding: id `i` belongs to shard `shard_of(i, n)` (a SHA-1 of the id, stable across machines and Python
  versions). Jobs with different `--shard-index` never touch the same file; each writes its own report,
  `reports/download_failures-{k:05d}-of-{n:05d}.jsonl`. Entries of the JSON that fail validation (bad id, missing
  fields, duplicates) are reported by shard 0 only.
- A JSON that breaks off (truncated, say) still gives the complete entries before the break: they are downloaded,
  then `download` names the break and exits with status 1 (`build` refuses such a file with the same words).
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import http.client
import io
import os
import random
import socket
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

from .cli import at_least
from .files import TEMP_MARK, atomic_write, run_lock
from .ids import InvalidImageIdError, validate_image_id
from .jsonstream import BrokenFileError
from .records import iter_records
from .reports import ReportWriter, frames_note, permanent_failures

__all__ = [
    "DATASET_JSON",
    "DownloadSummary",
    "add_arguments",
    "checked_png",
    "download_images",
    "run",
    "shard_of",
    "sharded_name",
    "url_problem",
]

DATASET_JSON = "PatentDesc-355k.json"  # the official release's file, in --root
DEFAULT_WORKERS = 16
DEFAULT_PER_HOST_RATE = 50.0  # requests/s to one host, all threads together
DEFAULT_RETRIES = 5
DEFAULT_TIMEOUT = 60.0  # seconds for one attempt: connect + response + whole body
DEFAULT_BACKOFF = 1.0  # seconds before the first retry; doubled at each further one
MAX_WAIT = 300.0  # cap on one backoff or Retry-After wait, in seconds
MAX_BODY_BYTES = 64 << 20  # a patent sheet is ~50 KB-2 MB; anything over this is not a figure
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


def url_problem(url: object) -> str | None:
    """Why `url` cannot be fetched (not a string, malformed, not http(s), no host, spaces, control or non-ASCII
    characters), or None when it can. Checked before the first request, and on every redirect target."""
    if not isinstance(url, str):
        return f"the URL is a {_type_name(url)}, not a string"
    if not url.isascii() or any(ord(c) <= 32 or ord(c) == 127 for c in url):
        return f"the URL {url!r} holds spaces, control or non-ASCII characters (percent-encode them)"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number in 0-65535)
    except ValueError as error:
        return f"malformed URL {url!r}: {error}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"not an http(s) URL: {url!r}"
    if not parts.hostname:
        return f"no host in the URL {url!r}"
    return None


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


class _Deadline:
    """The end of one request (`seconds` from `__enter__`): when it passes, every socket the request opened is shut
    down, which wakes a `recv` blocked on a server that trickles its headers or body a byte at a time."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._end = 0.0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def __enter__(self) -> _Deadline:
        self._end = time.monotonic() + self.seconds
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    try:  # the plain socket's shutdown, also under TLS: it only stops the transfer, from any thread
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


def _connection_class(base: type[http.client.HTTPConnection], deadline: _Deadline) -> type:
    class Connection(base):
        def connect(self) -> None:
            if deadline.remaining() <= 0:
                raise TimeoutError("the request's deadline passed before this connection")
            self.timeout = min(self.timeout, deadline.remaining())  # a redirect's connection gets what is left
            super().connect()
            deadline.watch(self.sock)

    return Connection


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def http_open(self, request: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_connection_class(http.client.HTTPConnection, self.deadline), request)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def https_open(self, request: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_connection_class(http.client.HTTPSConnection, self.deadline), request)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """urllib's redirects (10 at most, a URL 4 times at most), with a loop or a target that is not an http(s) URL
    reported as such instead of as the bare redirect status."""

    def http_error_302(self, request, fp, code, msg, headers):  # noqa: ANN001 (urllib's signature)
        location = headers.get("Location") or headers.get("URI")
        if location is not None:
            try:
                target = urllib.parse.urljoin(request.full_url, location)
            except ValueError:  # url_problem says why
                target = location
            problem = url_problem(target)
            visited = getattr(request, "redirect_dict", {})
            looping = len(visited) >= self.max_redirections or visited.get(target, 0) >= self.max_repeats
            if problem is None and looping:
                problem = f"a redirect loop ({len(visited)} redirects, the last to {target!r})"
            if problem is not None:
                fp.close()
                raise _DownloadError(f"HTTP {code} redirect refused: {problem}", permanent=True)
        return super().http_error_302(request, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    """urllib's HTTP(S) handlers, redirects and proxies only: no file://, ftp:// or data: (even via a redirect);
    every connection is shut down at `deadline`."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        _HTTPHandler(deadline),
        _HTTPSHandler(deadline),
        _RedirectHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def _fetch(url: str, timeout: float, max_bytes: int) -> bytes:
    """One GET of `url`, all of it (connecting, redirects, headers, body) within `timeout` seconds; the whole body,
    or `_DownloadError`."""
    with _Deadline(timeout) as deadline:
        try:
            body = _get(_opener(deadline), url, timeout, max_bytes)
        except _DownloadError as error:
            if deadline.expired and not error.permanent:  # the shutdown at the deadline looks like a cut transfer
                raise _DownloadError(f"timed out after {timeout:g} s (the whole request)", permanent=False) from None
            raise
    if deadline.expired:  # a body without Content-Length ends at the shutdown as if complete
        raise _DownloadError(f"timed out after {timeout:g} s (the whole request)", permanent=False)
    return body


def _get(opener: urllib.request.OpenerDirector, url: str, timeout: float, max_bytes: int) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with opener.open(request, timeout=timeout) as response:
            chunks, size = [], 0
            while chunk := response.read(1 << 16):
                size += len(chunk)
                if size > max_bytes:
                    raise _DownloadError(f"body over {max_bytes:,} bytes", permanent=True)
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
    except urllib.error.URLError as error:  # connection refused, DNS
        raise _DownloadError(f"connection error: {error.reason}", permanent=False) from None
    except (http.client.HTTPException, OSError) as error:  # resets, TLS errors, malformed responses
        raise _DownloadError(f"connection error: {type(error).__name__}: {error}", permanent=False) from None
    except ValueError as error:  # a Location header that is not a URL, say
        raise _DownloadError(f"invalid URL: {error}", permanent=True) from None


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
        raise _DownloadError(f"image too large: {error}", permanent=True) from None
    except UnidentifiedImageError:
        raise _DownloadError(f"not an image: body starts with {body[:32]!r}", permanent=True) from None
    except Exception as error:  # noqa: BLE001 (a damaged body: any decoder error)
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
                png, note = checked_png(_fetch(url, self.timeout, self.max_bytes), self.max_pixels)
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
    lock = images_dir.with_name(f".{images_dir.name}.download-{shard_index:05d}-of-{num_shards:05d}.lock")
    with run_lock(lock, f"a download of shard {shard_index} of {num_shards} into {images_dir}"):
        return _download_locked(
            items, images_dir, report_path, workers, num_shards, shard_index, retry_failed, started,
            per_host_rate=per_host_rate, retries=retries, timeout=timeout, backoff=backoff, max_pixels=max_pixels,
            max_bytes=max_bytes,
        )


def _download_locked(
    items: Iterable[tuple[str, str]],
    images_dir: Path,
    report_path: Path,
    workers: int,
    num_shards: int,
    shard_index: int,
    retry_failed: bool,
    started: float,
    **downloader_options,
) -> DownloadSummary:
    """`download_images` once it holds the shard's lock."""
    summary = DownloadSummary()
    previously_failed = set() if retry_failed else permanent_failures(report_path)

    # 1) one scan of images/: complete-looking files, and this shard's stale temporaries (a killed run's) deleted
    present: set[str] = set()
    stale_mark = ".png" + TEMP_MARK
    with os.scandir(images_dir) as entries:
        for entry in entries:
            if entry.name.endswith(".png"):
                present.add(entry.name[: -len(".png")])
            elif entry.name.startswith(".") and stale_mark in entry.name:
                stale_id = entry.name[1 : entry.name.index(stale_mark)]
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
            problem = url_problem(url)
            if problem is not None:
                report.add(image_id, problem, url=url, permanent=True, attempts=0)
                summary.failed += 1
                continue
            todo[image_id] = url
        summary.total = len(todo) + summary.failed + summary.previously_failed

        # 3) worker threads pull from one shared iterator (no queue of 355K futures)
        downloader = _Downloader(images_dir, report, summary, **downloader_options)
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
    parser.add_argument("--workers", type=at_least(1), default=DEFAULT_WORKERS, help="concurrent downloads (threads)")
    parser.add_argument(
        "--per-host-rate",
        type=at_least(0, float),
        default=DEFAULT_PER_HOST_RATE,
        help="most requests per second to one host, all threads together (0: no limit)",
    )
    parser.add_argument("--retries", type=at_least(0), default=DEFAULT_RETRIES, help="retries of a transient failure")
    parser.add_argument(
        "--timeout", type=at_least(0, float, exclusive=True), default=DEFAULT_TIMEOUT, help="seconds for one attempt"
    )
    parser.add_argument("--num-shards", type=at_least(1), default=1, help="split the ids into this many jobs")
    parser.add_argument("--shard-index", type=at_least(0), default=0, help="the job's shard, 0 .. num-shards - 1")
    parser.add_argument(
        "--max-image-pixels",
        type=at_least(1),
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
    # A file that breaks off (truncated, say) still gives the complete entries before the break: they are fetched,
    # and the break is reported with a non-zero exit status (`build` refuses such a file, with the same message).
    items, broken = [], None
    with ReportWriter(report_path, "download") as rejected:
        try:
            for record in iter_records(json_path, rejected if args.shard_index == 0 else None):
                if shard_of(record.image_id, args.num_shards) == args.shard_index:
                    items.append((record.image_id, record.image_url))
        except BrokenFileError as error:
            if not items:
                raise
            broken = error
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
    if broken is not None:
        print(f"download: {broken} (the {len(items)} entries before it were downloaded)", file=sys.stderr)
        return 1
    return 0

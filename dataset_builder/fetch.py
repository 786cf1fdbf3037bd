"""One HTTP(S) GET of a figure within a deadline, a per-host rate limit, and which failures are worth a retry."""

from __future__ import annotations

import email.utils
import http.client
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["MAX_WAIT", "DownloadError", "HostRateLimiter", "fetch", "retry_after_seconds", "url_problem"]

MAX_WAIT = 300.0  # cap on one backoff or Retry-After wait, in seconds
USER_AGENT = "patentlmm-dataset-builder (PatentDesc-355k figure download)"
_RETRY_STATUSES = (408, 429)  # plus every 5xx


class HostRateLimiter:
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


class DownloadError(Exception):
    """A failed attempt; `permanent` ones are not retried, `retry_after` (seconds) overrides the backoff."""

    def __init__(self, reason: str, permanent: bool, retry_after: float | None = None):
        super().__init__(reason)
        self.permanent = permanent
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float | None:
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


class _DeadlineHandler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """urllib's HTTP and HTTPS handlers, with connections that `deadline` shuts down."""

    def __init__(self, deadline: _Deadline):
        urllib.request.HTTPHandler.__init__(self)
        urllib.request.HTTPSHandler.__init__(self)
        self.deadline = deadline

    def http_open(self, request: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_connection_class(http.client.HTTPConnection, self.deadline), request)

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
                raise DownloadError(f"HTTP {code} redirect refused: {problem}", permanent=True)
        return super().http_error_302(request, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    """urllib's HTTP(S) handlers, redirects and proxies only: no file://, ftp:// or data: (even via a redirect);
    every connection is shut down at `deadline`."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        _DeadlineHandler(deadline),
        _RedirectHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def fetch(url: str, timeout: float, max_bytes: int) -> bytes:
    """One GET of `url`, all of it (connecting, redirects, headers, body) within `timeout` seconds; the whole body,
    or `DownloadError`."""
    with _Deadline(timeout) as deadline:
        try:
            body = _get(_opener(deadline), url, timeout, max_bytes)
        except DownloadError as error:
            if deadline.expired and not error.permanent:  # the shutdown at the deadline looks like a cut transfer
                raise DownloadError(f"timed out after {timeout:g} s (the whole request)", permanent=False) from None
            raise
    if deadline.expired:  # a body without Content-Length ends at the shutdown as if complete
        raise DownloadError(f"timed out after {timeout:g} s (the whole request)", permanent=False)
    return body


def _get(opener: urllib.request.OpenerDirector, url: str, timeout: float, max_bytes: int) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with opener.open(request, timeout=timeout) as response:
            chunks, size = [], 0
            while chunk := response.read(1 << 16):
                size += len(chunk)
                if size > max_bytes:
                    raise DownloadError(f"body over {max_bytes:,} bytes", permanent=True)
                chunks.append(chunk)
            # http.client ends a short fixed-length body silently; chunked bodies raise IncompleteRead instead
            expected = response.headers.get("Content-Length", "")
            if expected.isdigit() and size < int(expected):
                raise DownloadError(f"truncated body: {size} of {expected} bytes", permanent=False)
            return b"".join(chunks)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code in _RETRY_STATUSES or error.code >= 500:
            retry_after = retry_after_seconds(error.headers.get("Retry-After")) if error.code in (429, 503) else None
            raise DownloadError(f"HTTP {error.code}", permanent=False, retry_after=retry_after) from None
        raise DownloadError(f"HTTP {error.code}", permanent=True) from None
    except http.client.IncompleteRead as error:
        raise DownloadError(f"truncated body: {len(error.partial)} bytes, then the connection closed", False) from None
    except TimeoutError:
        raise DownloadError(f"timed out after {timeout:g} s", permanent=False) from None
    except urllib.error.URLError as error:  # connection refused, DNS
        raise DownloadError(f"connection error: {error.reason}", permanent=False) from None
    except (http.client.HTTPException, OSError) as error:  # resets, TLS errors, malformed responses
        raise DownloadError(f"connection error: {type(error).__name__}: {error}", permanent=False) from None
    except ValueError as error:  # a Location header that is not a URL, say
        raise DownloadError(f"invalid URL: {error}", permanent=True) from None

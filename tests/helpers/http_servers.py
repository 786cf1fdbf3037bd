"""A scripted HTTP server on 127.0.0.1 for the downloader's tests and benchmark (stdlib only, one thread per request).

    with FigureServer(delay=0.05) as server:           # every reply waits 50 ms first
        server.route("/a.png", Reply(500), Reply(200, png_bytes))   # 1st request: 500, then 200 for ever
        url = server.url("/a.png")
        ...
        server.counts["/a.png"]                       # requests received per path

A path without a route answers 404. A reply can wait before its status line (`delay`), send fewer body bytes
than its `Content-Length` and close (`send_bytes`), which a client sees as a truncated body, or send everything
one byte every `trickle` seconds (a stalling server). `server.sent[path]` counts the bytes written per path.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["FigureServer", "Reply"]


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before the status line
    send_bytes: int | None = None  # send only this many body bytes (Content-Length stays the full size), then close
    trickle: float = 0.0  # seconds between bytes: status line, headers and body are sent one byte at a time


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the stdlib's 5 drops connections (SYN retries of 1 s) under concurrent clients


class FigureServer:
    """Serves scripted replies per path; the last reply of a path repeats. Counts and times every request."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.counts: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()  # bytes of the replies written, status line and headers included
        self.times: defaultdict[str, list[float]] = defaultdict(list)  # time.monotonic() of each request, per path
        self._routes: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def route(self, path: str, *replies: Reply) -> str:
        """Scripts the replies of `path`; returns its URL."""
        with self._lock:
            self._routes[path] = list(replies)
        return self.url(path)

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def _next_reply(self, path: str) -> Reply:
        with self._lock:
            self.counts[path] += 1
            self.times[path].append(time.monotonic())
            replies = self._routes.get(path)
            if not replies:
                return Reply(404, b"not found")
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server name)
                reply = server._next_reply(self.path)
                time.sleep(server.delay + reply.delay)
                try:
                    head = [f"HTTP/1.0 {reply.status} {self.responses.get(reply.status, ('',))[0]}"]
                    for name, value in {"Content-Type": "image/png", **reply.headers}.items():
                        head.append(f"{name}: {value}")
                    head += [f"Content-Length: {len(reply.body)}", "Connection: close", "", ""]
                    data = "\r\n".join(head).encode("latin-1") + reply.body[: reply.send_bytes]
                    step = 1 if reply.trickle else len(data)
                    for start in range(0, len(data), step):
                        self.wfile.write(data[start : start + step])
                        self.wfile.flush()
                        with server._lock:
                            server.sent[self.path] += len(data[start : start + step])
                        time.sleep(reply.trickle)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout, killed)
                    pass
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

        return Handler

    def __enter__(self) -> FigureServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

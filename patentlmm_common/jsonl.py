"""JSON Lines that survive a crash: lines appended and flushed one by one, a torn last line cut off or skipped."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["JsonlAppender", "complete_lines", "cut_torn_line", "iter_jsonl"]


def cut_torn_line(path: str | os.PathLike) -> None:
    """Truncates `path` after its last newline (a line a killed writer left half-written), so that the next
    append starts a line of its own; nothing happens to a missing file or one that ends with a newline."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        position = size
        while position > 0:  # read back from the end, 64 KiB at a time, to the last newline
            step = min(position, 1 << 16)
            handle.seek(position - step)
            newline = handle.read(step).rfind(b"\n")
            if newline >= 0:
                position = position - step + newline + 1
                break
            position -= step
        if position < size:
            handle.truncate(position)


def iter_jsonl(path: str | os.PathLike, errors: str = "replace") -> Iterator[tuple[int, Any]]:
    """`(line number, value)` for each non-blank line of `path` (none if it does not exist); a line that does not
    parse (a torn last line, a damaged one) gives its `ValueError` as the value, for the caller to report or skip.
    `errors` is the decoding error handler (bytes that are not UTF-8)."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors=errors) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except ValueError as error:
                yield number, error


def complete_lines(path: str | os.PathLike) -> Iterator[Any]:
    """The values of the lines of `path` that parse (see `iter_jsonl`); the others are skipped."""
    return (value for _, value in iter_jsonl(path) if not isinstance(value, ValueError))


class JsonlAppender:
    """Appends JSON values to `path`, one line each, flushed as written (a crash loses at most the line being
    written); the folder and the file are created on the first write, after `cut_torn_line`. A context manager."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.count = 0  # lines written by this appender
        self._handle: IO[str] | None = None

    def write(self, value: Any) -> None:
        self.write_many([value])

    def write_many(self, values: Iterable[Any]) -> None:
        """Appends the values in one write and one flush."""
        lines = [json.dumps(value, ensure_ascii=False) + "\n" for value in values]
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            cut_torn_line(self.path)
            self._handle = open(self.path, "a", encoding="utf-8")  # closed in close()
        self._handle.write("".join(lines))
        self._handle.flush()
        self.count += len(lines)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

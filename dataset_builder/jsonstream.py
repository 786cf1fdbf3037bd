"""Streams the entries of one huge JSON object (`{"key": value, ...}`), each value parsed on its own."""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

__all__ = [
    "MAX_ENTRY_CHARS",
    "NOT_UTF8",
    "BadEntry",
    "BrokenFileError",
    "iter_object_entries",
    "open_text",
    "sniff_encoding",
]

MAX_ENTRY_CHARS = 64 << 20  # one entry: a figure's descriptions or OCR are KBs to a few MB
CHUNK_BYTES = 1 << 20

# Bytes that are not valid in the file's encoding decode to this Unicode noncharacter, which valid text never
# contains; an entry holding it is rejected with a clear reason instead of the whole parse stopping at it.
NOT_UTF8 = "\ufdd0"
codecs.register_error("patentdesc-mark-invalid", lambda error: (NOT_UTF8, error.end))

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_SPACE = re.compile(r"[ \t\r\n]*")
_STRING_BODY = re.compile(r'(?:[^"\\]++|\\.)*+', re.DOTALL)  # after the opening quote, up to the closing one
_STRUCTURE = re.compile(r'["{}\[\]]')
_SCALAR = re.compile(r"[^,}\]\s]*")


class BrokenFileError(ValueError):
    """The file as a whole is not one JSON object (truncated, an array, text after the end, ...)."""


class BadEntry(ValueError):
    """One entry that cannot be read; `key` is its key (None when the key itself is unreadable)."""

    def __init__(self, key: str | None, reason: str):
        super().__init__(reason)
        self.key = key


def sniff_encoding(head: bytes) -> str:
    """The codec of a text file from its first bytes: a BOM (UTF-8 or UTF-16), or the NULs of BOM-less UTF-16
    ASCII text, else UTF-8."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    if len(head) >= 2 and head[0] and not head[1]:
        return "utf-16-le"
    if len(head) >= 2 and not head[0] and head[1]:
        return "utf-16-be"
    return "utf-8"


def open_text(path: str | os.PathLike) -> Iterator[str]:
    """The text of `path` in chunks, decoded as `sniff_encoding` says (BOM dropped, invalid bytes -> `NOT_UTF8`)."""
    with open(path, "rb") as handle:
        head = handle.read(4)
        decoder = codecs.getincrementaldecoder(sniff_encoding(head))("patentdesc-mark-invalid")
        yield from _decode(handle, decoder, head)


def _decode(handle: BinaryIO, decoder: codecs.IncrementalDecoder, head: bytes) -> Iterator[str]:
    raw = head
    while True:
        text = decoder.decode(raw, final=not raw)
        if text:
            yield text
        if not raw:
            return
        raw = handle.read(CHUNK_BYTES)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (Python's json writes it, no JSON reader accepts it)")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


class _Scanner:
    """A window on the text: `buf[pos:]` is unread; `more()` appends the next chunk, dropping what is before `keep`
    (the start of the entry being read, or `pos` when nothing needs keeping). An entry that grows over
    `MAX_ENTRY_CHARS` stops being kept (`dropped`), so its size never reaches memory."""

    def __init__(self, chunks: Iterator[str]):
        self.chunks, self.buf, self.pos, self.offset = chunks, "", 0, 0
        self.keep: int | None = None
        self.dropped = False

    def more(self) -> bool:
        chunk = next(self.chunks, None)
        if chunk is None:
            return False
        if self.keep is not None and len(self.buf) - self.keep > MAX_ENTRY_CHARS:
            self.keep, self.dropped = None, True
        cut = self.pos if self.keep is None else self.keep
        self.buf = self.buf[cut:] + chunk
        self.offset += cut
        self.pos -= cut
        if self.keep is not None:
            self.keep -= cut
        return True

    def skip_space(self) -> str:
        """Skips whitespace; returns the next character ('' at the end of the text)."""
        while True:
            self.pos = _SPACE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""

    def string_end(self, start: int) -> int | None:
        """The index after the closing quote of the string opening at `start`; None if the text ends first."""
        self.pos = start + 1
        while True:
            self.pos = _STRING_BODY.match(self.buf, self.pos).end()
            if self.pos < len(self.buf) and self.buf[self.pos] == '"':
                self.pos += 1
                return self.pos
            if not self.more():
                return None

    def where(self) -> str:
        return f"character {self.offset + self.pos:,}"


def iter_object_entries(chunks: Iterator[str], name: str) -> Iterator[tuple[str, Any] | BadEntry]:
    """`(key, value)` for each entry of the JSON object in `chunks` (text), in order, or a `BadEntry` for one that
    cannot be read; `name` (the file) is for messages. See the module docstring."""
    scan = _Scanner(chunks)
    first = scan.skip_space()
    if first != "{":
        kind = {"[": "a JSON array", "": "empty"}.get(first, f"not a JSON object (it starts with {first!r})")
        raise BrokenFileError(f"{name} is {kind}: it must be one JSON object {{image_id: entry, ...}}")
    scan.pos += 1
    count = 0
    while True:
        token = scan.skip_space()
        if token == "}" and count == 0:
            scan.pos += 1
            break
        if token != '"':
            raise _broken(name, count, scan, "a quoted key" if token else "more entries")
        key = _read_key(scan, name, count)
        if scan.skip_space() != ":":
            raise _broken(name, count, scan, f"':' after the key {key!r}")
        scan.pos += 1
        yield _read_value(scan, name, count, key)
        count += 1
        token = scan.skip_space()
        if token not in (",", "}"):
            raise _broken(name, count, scan, "',' or '}' after an entry" if token else "the rest of the object")
        scan.pos += 1
        if token == "}":
            break
    if scan.skip_space():
        raise _broken(name, count, scan, "the end of the file after the final '}'")


def _broken(name: str, count: int, scan: _Scanner, expected: str) -> BrokenFileError:
    found = scan.buf[scan.pos : scan.pos + 20]
    what = f"found {found!r}" if found else "the file ends"
    return BrokenFileError(
        f"{name} is not valid JSON after {count} entries: expected {expected} at {scan.where()}, {what}"
    )


def _read_key(scan: _Scanner, name: str, count: int) -> str:
    try:  # fast path: the key is whole in the text in hand
        key, scan.pos = json.decoder.scanstring(scan.buf, scan.pos + 1)
        return key
    except ValueError:  # cut by the end of the chunk, or invalid: found and named below
        pass
    scan.keep, scan.dropped = scan.pos, False
    end = scan.string_end(scan.pos)
    if end is None or scan.dropped:
        raise _broken(name, count, scan, "the end of a key" if end is None else "a key shorter than an entry")
    text, scan.keep = scan.buf[scan.keep : end], None
    try:
        return json.loads(text)
    except ValueError as error:
        raise BrokenFileError(f"{name}: the key at {scan.where()} is not a valid JSON string: {error}") from None


def _read_value(scan: _Scanner, name: str, count: int, key: str) -> tuple[str, Any] | BadEntry:
    """The value starting at the next non-space character as `(key, value)`, or `BadEntry`; `scan.pos` ends
    after it. Fast path: `json`'s C decoder on the text in hand. It fails on a value cut by the end of the current
    chunk, and on a bad one (NaN, too deep, invalid): then `_read_value_slowly` finds where the value ends."""
    first = scan.skip_space()
    if first:
        try:
            value, end = _DECODER.raw_decode(scan.buf, scan.pos)
        except (ValueError, RecursionError):
            pass
        else:
            if end < len(scan.buf) or first in '"{[':  # a number at the end of the text may go on in the next
                scan.pos = end
                return key, value
    return _read_value_slowly(scan, name, count, key, first)


def _read_value_slowly(scan: _Scanner, name: str, count: int, key: str, first: str) -> tuple[str, Any] | BadEntry:
    scan.keep, scan.dropped, problem = scan.pos, False, None  # `keep` follows the value's start as the text moves
    if first == '"':
        if scan.string_end(scan.pos) is None:
            raise _broken(name, count, scan, f"the end of the value of {key!r}")
    elif first in ("{", "["):
        _skip_container(scan, name, count, key)
    elif first:  # a number, true, false, null (or something invalid, which json.loads names)
        while True:
            scan.pos = _SCALAR.match(scan.buf, scan.pos).end()
            if scan.pos < len(scan.buf) or not scan.more():
                break
    else:
        raise _broken(name, count, scan, f"the value of {key!r}")
    if scan.dropped:
        problem = f"the entry is over {MAX_ENTRY_CHARS:,} characters: skipped unread"
    text = scan.buf[scan.keep : scan.pos] if problem is None else ""
    scan.keep = None
    if problem is not None:
        return BadEntry(key, problem)
    try:
        return key, _DECODER.decode(text)
    except RecursionError:
        return BadEntry(key, "the entry is nested too deeply for a JSON parser")
    except ValueError as error:
        return BadEntry(key, f"the entry is not valid JSON: {error}")


def _skip_container(scan: _Scanner, name: str, count: int, key: str) -> None:
    """Moves `scan.pos` past the object or array opening there, checking that brackets pair up."""
    closers: list[str] = []  # the closing bracket each open one expects
    while True:
        match = _STRUCTURE.search(scan.buf, scan.pos)
        if match is None:
            scan.pos = len(scan.buf)
            if not scan.more():
                raise _broken(name, count, scan, f"the end of the value of {key!r}")
            continue
        character = match.group()
        scan.pos = match.end()
        if character == '"':
            if scan.string_end(match.start()) is None:
                raise _broken(name, count, scan, f"the end of the value of {key!r}")
        elif character in "{[":
            closers.append("}" if character == "{" else "]")
        elif closers.pop() != character:
            scan.pos -= 1
            raise _broken(name, count, scan, f"brackets that pair up in the value of {key!r}")
        elif not closers:
            return

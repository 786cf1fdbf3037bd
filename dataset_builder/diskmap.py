"""`DiskMap`: a `str -> str` map in a SQLite file, for per-id bookkeeping that must not grow memory with the run."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator

__all__ = ["DiskMap"]


class DiskMap:
    """A `str -> str` map in a SQLite file: `in`, `[]`, `del`, `get`, `add` (a set member), `keys()` in insert order.

    Used for the per-id bookkeeping of a run, so that 355K ids cost disk, not memory.
    """

    def __init__(self, path: str | os.PathLike):
        self._connection = sqlite3.connect(os.fspath(path))
        self._connection.execute("PRAGMA journal_mode = OFF")
        self._connection.execute("PRAGMA synchronous = OFF")
        self._connection.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def __contains__(self, key: str) -> bool:
        return self._connection.execute("SELECT 1 FROM kv WHERE key = ?", (key,)).fetchone() is not None

    def __setitem__(self, key: str, value: str) -> None:
        self._connection.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __delitem__(self, key: str) -> None:
        self._connection.execute("DELETE FROM kv WHERE key = ?", (key,))

    def get(self, key: str, default: str | None = None) -> str | None:
        row = self._connection.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def add(self, key: str) -> None:
        self[key] = ""

    def keys(self) -> Iterator[str]:
        for (key,) in self._connection.execute("SELECT key FROM kv ORDER BY rowid"):
            yield key

    def close(self) -> None:
        self._connection.close()

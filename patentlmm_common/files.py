"""Atomic writes readable by others (the usual umask), the cleanup of a killed run's temporaries, and run locks."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = [
    "TEMP_MARK",
    "AlreadyRunningError",
    "atomic_directory",
    "atomic_write",
    "remove_stale_temporaries",
    "run_lock",
    "temporary_name",
]

TEMP_MARK = ".tmp-"  # .<name>.tmp-<random>: the temporary of <name>


class AlreadyRunningError(RuntimeError):
    """Another process holds the lock of this step on this folder."""


def temporary_name(path: str | os.PathLike) -> Path:
    """A fresh temporary name next to `path`: `.<name>.tmp-<12 hex digits>`."""
    path = Path(path)
    return path.with_name(f".{path.name}{TEMP_MARK}{secrets.token_hex(6)}")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """`with atomic_write(path, "w" | "wb") as handle:` writes a temporary file, fsyncs it and renames it to `path`
    when the block ends without an error (on an error the temporary is removed and `path` is left as it was)."""
    path = Path(path)
    temporary = temporary_name(path)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with open(descriptor, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """`with atomic_directory(path) as staging:` fill `staging`; at the end it replaces `path` (the old folder is
    moved aside, the new one renamed into place, then the old one deleted). On an error `staging` is deleted."""
    path = Path(path)
    staging = temporary_name(path)
    os.mkdir(staging, 0o777)  # the umask applies
    try:
        yield staging
        old = None
        if path.exists():
            old = temporary_name(path)  # a stale temporary too, if the run is killed before it is deleted
            path.rename(old)
        staging.rename(path)
        if old is not None:
            shutil.rmtree(old)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_stale_temporaries(path: str | os.PathLike) -> int:
    """Deletes every `.<name>.tmp-*` next to `path` (files or folders a killed run left); returns how many.

    Call it only while holding the folder's `run_lock`, so that no live run's temporary is taken for stale."""
    path = Path(path)
    removed = 0
    for stale in path.parent.glob(f".{path.name}{TEMP_MARK}*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
        removed += 1
    return removed


@contextlib.contextmanager
def run_lock(lock_path: str | os.PathLike, what: str) -> Iterator[None]:
    """Holds an exclusive `flock` on `lock_path` for the block, or raises `AlreadyRunningError` at once naming `what`
    and the holder's pid. The lock dies with its process (SIGKILL included), so no stale lock is ever left."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise AlreadyRunningError(
                f"{what} is already running (pid {holder} holds the lock {lock_path}): wait for it to finish"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # releases the lock

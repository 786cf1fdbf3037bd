"""Real processes for the dataset builder's tests: find them in /proc, kill them with real signals, hold a lock.

    with ProcessKiller(lambda pid, argv: argv[:1] == ["tesseract"], signal.SIGKILL) as killer:
        ...                                  # every matching process is killed as soon as it appears
    killer.killed                            # their pids

    with held_lock(path):                    # another process holds `files.run_lock(path)` meanwhile
        ...
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["ProcessKiller", "child_of", "children", "held_lock", "parent_of"]

REPO = Path(__file__).resolve().parents[1]


def _parent_and_argv(pid: int) -> tuple[int, list[str]] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:  # gone meanwhile
        return None
    parent = int(stat[stat.rindex(")") + 2 :].split()[1])  # after "pid (comm) state"
    return parent, [arg.decode("utf-8", "replace") for arg in argv if arg]


def children(pid: int) -> list[tuple[int, list[str]]]:
    """`(pid, argv)` of the live child processes of `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _parent_and_argv(int(entry))) is not None and info[0] == pid:
            found.append((int(entry), info[1]))
    return found


class ProcessKiller(threading.Thread):
    """Polls /proc every few ms; sends `signum` to `target(pid, argv)` of each process `match(pid, argv)` selects
    (`target` returns the pid to kill, by default the matching one). At most `limit` kills."""

    def __init__(
        self,
        match: Callable[[int, list[str]], bool],
        signum: int = signal.SIGKILL,
        target: Callable[[int, list[str]], int] | None = None,
        limit: int | None = None,
    ):
        super().__init__(daemon=True)
        self.match, self.signum, self.limit = match, signum, limit
        self.target = target or (lambda pid, argv: pid)
        self.killed: list[int] = []
        self._done = threading.Event()

    def run(self) -> None:
        seen: set[int] = set()
        while not self._done.is_set() and (self.limit is None or len(self.killed) < self.limit):
            for entry in os.listdir("/proc"):
                if self.limit is not None and len(self.killed) >= self.limit:
                    break
                if not entry.isdigit() or int(entry) in seen:
                    continue
                info = _parent_and_argv(int(entry))
                if info is not None and self.match(int(entry), info[1]):
                    seen.add(int(entry))
                    with contextlib.suppress(ProcessLookupError):
                        victim = self.target(int(entry), info[1])
                        os.kill(victim, self.signum)
                        self.killed.append(victim)
            time.sleep(0.005)

    def __enter__(self) -> ProcessKiller:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self.join()


def parent_of(pid: int, argv: list[str]) -> int:
    """A `ProcessKiller` target: the matching process's parent."""
    info = _parent_and_argv(pid)
    if info is None:
        raise ProcessLookupError(pid)
    return info[0]


def child_of(parent: int) -> Callable[[int, list[str]], bool]:
    """A `ProcessKiller` match: the child processes of `parent` (with fork, a process pool's workers)."""
    return lambda pid, argv: (info := _parent_and_argv(pid)) is not None and info[0] == parent


_HOLDER = """
import sys, time
from patentlmm_common.files import run_lock
with run_lock(sys.argv[1], "the test's holder"):
    print("locked", flush=True)
    time.sleep(120)
"""


@contextlib.contextmanager
def held_lock(path: str | os.PathLike) -> Iterator[int]:
    """Another process holds `files.run_lock(path)` for the block; yields its pid."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, os.fspath(path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()

"""A call bounded in time: run in a forked child process that is killed (with its own children) at the deadline."""

from __future__ import annotations

import os
import pickle
import select
import signal
import time
from collections.abc import Callable
from typing import Any

__all__ = ["CallDiedError", "DeadlineExceededError", "call_with_deadline"]


class DeadlineExceededError(TimeoutError):
    """The call was still running at its deadline; its process (group) was killed."""


class CallDiedError(RuntimeError):
    """The process running the call died (killed by a signal, out of memory) before it returned."""


def call_with_deadline(function: Callable[..., Any], *args: Any, seconds: float) -> Any:
    """`function(*args)` in a child forked from this process, so it starts with this process's memory (loaded
    models, decoded images) and no pickling of its arguments; the result (or the exception it raised) is pickled
    back. At `seconds` the child and the processes it started are killed with SIGKILL and `DeadlineExceededError`
    is raised; a child that dies on its own raises `CallDiedError`. Fork only where no other thread holds a lock
    the call needs (a `dataset` worker process: one thread, single-threaded engines)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        os.setpgid(0, 0)  # its own process group: killed with whatever it started
        _run_child(function, args, write_fd)
    os.close(write_fd)
    try:
        os.setpgid(pid, pid)  # also here: no kill can come before the child's own setpgid
    except OSError:
        pass  # the child has set it already
    try:
        payload = _read_until(read_fd, time.monotonic() + seconds)
    except DeadlineExceededError:
        _kill_group(pid)
        raise DeadlineExceededError(f"still running after {seconds:g} s: stopped") from None
    finally:
        os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    if not payload:
        raise CallDiedError(_how_it_died(status))
    failed, value = pickle.loads(payload)
    if failed:
        raise value
    return value


def _run_child(function: Callable[..., Any], args: tuple, write_fd: int) -> None:
    """In the child: runs the call, writes `(failed, result or exception)` pickled to `write_fd`, exits at once."""
    status = 0
    try:
        try:
            outcome = (False, function(*args))
        except BaseException as error:  # noqa: BLE001 (handed to the parent, which raises it)
            outcome = (True, error)
        try:
            payload = pickle.dumps(outcome)
        except Exception as error:  # noqa: BLE001 (an exception that does not pickle is passed on as text)
            payload = pickle.dumps((True, RuntimeError(f"{outcome[1]!r} (unpicklable: {error})")))
        with os.fdopen(write_fd, "wb") as stream:
            stream.write(payload)
    except BaseException:  # noqa: BLE001 (a broken pipe: the parent is gone)
        status = 1
    finally:
        os._exit(status)  # no atexit handlers, no flushing of the parent's buffers twice


def _read_until(read_fd: int, deadline: float) -> bytes:
    """All bytes of the pipe until the child closes it, or `DeadlineExceededError` at `deadline`."""
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([read_fd], [], [], remaining)[0]:
            raise DeadlineExceededError
        chunk = os.read(read_fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _kill_group(pid: int) -> None:
    """SIGKILL to the child's process group (the child and what it started), then reaps the child."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.waitpid(pid, 0)


def _how_it_died(status: int) -> str:
    """'killed by SIGKILL' or 'exited with status N', from a `waitpid` status."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"the process running it was killed by {signal.Signals(number).name}"
        except ValueError:
            return f"the process running it was killed by signal {number}"
    return f"the process running it exited with status {os.waitstatus_to_exitcode(status)} without a result"

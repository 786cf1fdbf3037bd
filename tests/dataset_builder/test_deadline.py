"""`dataset_builder.deadline.call_with_deadline` with real forked processes, real signals and a real grandchild."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from dataset_builder.deadline import CallDiedError, DeadlineExceededError, call_with_deadline


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead (the test process is not its parent)
        return stat.read().split(") ")[1][0] != "Z"


def _sleep_under_a_grandchild(pid_file: str) -> None:
    """Starts `sleep 300` (a grandchild of the caller), writes its pid, then waits for it."""
    child = subprocess.Popen(["sleep", "300"])
    with open(pid_file, "w") as handle:
        handle.write(str(child.pid))
    child.wait()


def _raise() -> None:
    raise KeyError("figure 7")


class _Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("no pickling")


def _raise_unpicklable() -> None:
    raise _Unpicklable("lock held")


def test_the_result_comes_back_from_the_child():
    parent = os.getpid()
    child_pid, words = call_with_deadline(lambda n: (os.getpid(), ["12"] * n), 3, seconds=30)
    assert child_pid != parent and words == ["12", "12", "12"]


def test_an_exception_of_the_call_is_raised_here():
    with pytest.raises(KeyError, match="figure 7"):
        call_with_deadline(_raise, seconds=30)
    with pytest.raises(RuntimeError, match=r"lock held.*unpicklable"):
        call_with_deadline(_raise_unpicklable, seconds=30)


def test_at_the_deadline_the_child_and_what_it_started_are_killed(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError, match=r"still running after 1 s: stopped"):
        call_with_deadline(_sleep_under_a_grandchild, str(pid_file), seconds=1)
    assert time.monotonic() - started < 60  # not the 300 s the call would take
    grandchild = int(pid_file.read_text())
    for _ in range(100):  # SIGKILL is delivered asynchronously
        if not _pid_alive(grandchild):
            break
        time.sleep(0.05)
    assert not _pid_alive(grandchild)


def test_a_child_killed_by_a_signal_is_reported_as_such():
    with pytest.raises(CallDiedError, match="the process running it was killed by SIGKILL"):
        call_with_deadline(lambda: os.kill(os.getpid(), signal.SIGKILL), seconds=30)
    with pytest.raises(CallDiedError, match="exited with status 3 without a result"):
        call_with_deadline(lambda: os._exit(3), seconds=30)

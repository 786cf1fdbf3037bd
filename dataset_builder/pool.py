"""A process pool that outlives its workers: one killed by a signal (the out-of-memory killer, say) fails one task."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

__all__ = ["ResilientPool", "WorkerDiedError"]

Task = tuple[Hashable, tuple]  # (key, the function's arguments)


class WorkerDiedError(Exception):
    """The result of a task whose worker process died (killed by a signal, or out of memory) while running it."""


_DIED = (
    "the worker process died while processing it (killed by a signal, e.g. by the out-of-memory killer); it was "
    "run again alone and its worker died again"
)


class ResilientPool:
    """`workers` processes; `map_unordered` yields `(key, result)` as tasks finish, `WorkerDiedError` for a task
    whose worker died. Exceptions the function raises are raised by `map_unordered`, as from `Future.result`."""

    def __init__(self, workers: int, initializer: Callable[[], None] | None = None, in_flight_per_worker: int = 2):
        self.workers, self.initializer = workers, initializer
        self.limit = workers * in_flight_per_worker  # tasks queued at once: busy workers, no queue of 355K futures
        self.restarts = 0  # pools replaced after a worker died
        self._pool = self._new_pool(workers)

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, initializer=self.initializer)

    def map_unordered(self, function: Callable[..., Any], tasks: Iterable[Task]) -> Iterator[tuple[Hashable, Any]]:
        pending = iter(tasks)
        in_flight: dict[Future, Task] = {}
        exhausted = False
        while True:
            suspects: list[Task] = []
            while not exhausted and not suspects and len(in_flight) < self.limit:
                task = next(pending, None)
                if task is None:
                    exhausted = True
                    break
                try:
                    in_flight[self._pool.submit(function, *task[1])] = task
                except BrokenProcessPool:
                    suspects.append(task)
            if not in_flight and not suspects:
                return
            finished = wait(in_flight, return_when=FIRST_COMPLETED)[0] if in_flight else set()
            for future in finished:
                task = in_flight.pop(future)
                if isinstance(future.exception(), BrokenProcessPool):
                    suspects.append(task)
                else:
                    yield task[0], future.result()
            if suspects:  # the pool is broken: the rest of what is in flight fails (or finished) too
                for future in wait(in_flight)[0]:
                    task = in_flight.pop(future)
                    if isinstance(future.exception(), BrokenProcessPool):
                        suspects.append(task)
                    else:
                        yield task[0], future.result()
                self._pool.shutdown(wait=True)
                self.restarts += 1
                for task in suspects:
                    yield task[0], self._run_alone(function, task)
                self._pool = self._new_pool(self.workers)

    def map_in_order(self, function: Callable[..., Any], arguments: Iterable[tuple]) -> Iterator[Any]:
        """`function(*args)` for each `args` of `arguments`, yielded in their order, each as soon as it and all
        before it are done (results that finish early wait: pass a bounded batch)."""
        waiting: dict[int, Any] = {}
        next_index = 0
        for index, result in self.map_unordered(function, enumerate(arguments)):
            waiting[index] = result
            while next_index in waiting:
                yield waiting.pop(next_index)
                next_index += 1

    def _run_alone(self, function: Callable[..., Any], task: Task) -> Any:
        with self._new_pool(1) as alone:
            try:
                return alone.submit(function, *task[1]).result()
            except BrokenProcessPool:
                return WorkerDiedError(_DIED)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ResilientPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

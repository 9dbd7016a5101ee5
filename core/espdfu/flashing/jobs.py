"""Flash jobs: each on a thread of its own, cancellable, and joined when their owner stops.

``flash_many``, the station and the workbench all run flashes this way; what differs between
them is what starts a job and what they do when it ends, which they pass in. What a port's job
does next (the latest wish waiting for it) is the owner's: the workbench keeps it in its port.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")


class Job(Generic[_T, _R]):
    """One flash of ``item`` to the board at ``path``; ``result`` once it has ended."""

    def __init__(self, path: str, item: _T, cancel: threading.Event) -> None:
        self.path = path
        self.item = item
        self.result: _R | None = None
        self._cancel = cancel

    def cancel(self) -> None:
        """Ask the job to stop between two requests (it leaves its board ready)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()


class Jobs(Generic[_T, _R]):
    """Runs ``run(path, item, cancel)`` on a thread of its own for each job started, one job a
    port at a time.

    When a run returns, ``ended(job, result)`` is called inside ``guard`` (the owner's lock),
    with the job no longer running: so the owner sees the end and decides what comes next in
    one step, as it checks a board and starts its job in one step.
    """

    def __init__(
        self,
        run: Callable[[str, _T, threading.Event], _R],
        ended: Callable[[Job[_T, _R], _R], None],
        *,
        guard: AbstractContextManager[Any] | None = None,
        name: str = "espdfu-flash",
    ) -> None:
        self._run = run
        self._ended = ended
        self._guard = guard or threading.RLock()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._name = name
        self._running: dict[str, Job[_T, _R]] = {}
        self._threads = 0
        """Jobs not yet ended: running, or being reported to ``ended``."""
        self._closed = False

    def start(
        self, path: str, item: _T, cancel: threading.Event | None = None
    ) -> Job[_T, _R] | None:
        """Start a job for ``path`` now; None once closed, or while ``path`` has one.

        A given ``cancel`` is the job's (a caller may share one among its jobs).
        """
        with self._lock:
            if self._closed or path in self._running:
                return None
            job: Job[_T, _R] = Job(path, item, cancel or threading.Event())
            self._running[path] = job
            self._threads += 1
        name = f"{self._name}-{path}"
        threading.Thread(target=self._job, args=(job,), name=name, daemon=True).start()
        return job

    @property
    def closed(self) -> bool:
        return self._closed

    def running(self, path: str) -> bool:
        with self._lock:
            return path in self._running

    def close(self) -> list[Job[_T, _R]]:
        """Start nothing from now on and cancel every job; the jobs that were running (once
        joined, each one's ``result`` says how it ended)."""
        with self._lock:
            self._closed = True
            stopped = list(self._running.values())
        for job in stopped:
            job.cancel()
        return stopped

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every job has ended (``timeout`` seconds at most); whether all have."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._threads, timeout)

    def _job(self, job: Job[_T, _R]) -> None:
        try:
            result = self._run(job.path, job.item, job._cancel)
            with self._guard:
                with self._lock:
                    del self._running[job.path]
                job.result = result
                self._ended(job, result)
        finally:
            with self._idle:
                self._threads -= 1
                self._idle.notify_all()

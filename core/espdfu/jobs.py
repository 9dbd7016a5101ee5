"""Flash jobs by port: one thread a port at a time, the latest wish waiting, cancellable.

``flash_many``, the station and the workbench all run flashes this way; what differs between
them is what starts a job and what they do when it ends, which they pass in. A port never has
two jobs: what is asked for while one runs waits, and only the latest such wish is kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")


class FlashJobs(Generic[_T, _R]):
    """Runs ``run(path, item, cancel)`` on a thread of its own for each started port.

    When it returns, ``ended(path, item, result, waiting)`` is called inside ``guard`` (the
    owner's lock) with the job gone from the registry and the wish that waited for the port
    (None when there was none or the job was cancelled): so the owner sees the end and decides
    on the next job in one step, as it checks a board and starts its job in one step.
    """

    def __init__(
        self,
        run: Callable[[str, _T, threading.Event], _R],
        ended: Callable[[str, _T, _R, _T | None], None],
        *,
        guard: AbstractContextManager[Any] | None = None,
        name: str = "espdfu-flash",
    ) -> None:
        self._run = run
        self._ended = ended
        self._guard = guard or threading.RLock()
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._name = name
        self._items: dict[str, _T] = {}
        self._cancels: dict[str, threading.Event] = {}
        self._waiting: dict[str, _T] = {}
        self._threads = 0
        """Jobs not yet ended: running, or being reported to ``ended``."""
        self._closed = False

    def start(self, path: str, item: _T, cancel: threading.Event | None = None) -> bool:
        """Start a job for ``path`` now (True), or keep ``item`` as its next one (False).

        A given ``cancel`` is the job's (a caller may share one among its jobs). Once the
        registry is closed nothing starts and nothing is kept.
        """
        with self._lock:
            if self._closed:
                return False
            if path in self._items:
                self._waiting[path] = item  # latest wins
                return False
            event = cancel or threading.Event()
            self._items[path] = item
            self._cancels[path] = event
            self._threads += 1
            thread = threading.Thread(
                target=self._job, args=(path, item, event), name=f"{self._name}-{path}",
                daemon=True,
            )  # fmt: skip
            thread.start()
            return True

    def item(self, path: str) -> _T | None:
        """What the running job of ``path`` flashes (None: no job runs there)."""
        with self._lock:
            return self._items.get(path)

    def forget_waiting(self, path: str) -> None:
        with self._lock:
            self._waiting.pop(path, None)

    @property
    def closed(self) -> bool:
        return self._closed

    def paths(self) -> list[str]:
        """The ports with a running job."""
        with self._lock:
            return list(self._items)

    def __contains__(self, path: object) -> bool:
        with self._lock:
            return path in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def cancel(self, path: str) -> bool:
        """Cancel the job of ``path`` and forget what waited for it; whether one ran."""
        with self._lock:
            self._waiting.pop(path, None)
            event = self._cancels.get(path)
        if event is None:
            return False
        event.set()
        return True

    def close(self) -> list[str]:
        """Start nothing from now on and cancel every job; the ports whose jobs were running."""
        with self._lock:
            self._closed = True
            self._waiting.clear()
            events = dict(self._cancels)
        for event in events.values():
            event.set()
        return list(events)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every job has ended (``timeout`` seconds at most); whether all have."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._threads, timeout)

    def _job(self, path: str, item: _T, cancel: threading.Event) -> None:
        try:
            result = self._run(path, item, cancel)
            with self._guard:
                with self._lock:
                    del self._items[path]
                    del self._cancels[path]
                    waiting = self._waiting.pop(path, None)
                    if cancel.is_set() or self._closed:
                        waiting = None
                self._ended(path, item, result, waiting)
        finally:
            with self._idle:
                self._threads -= 1
                self._idle.notify_all()

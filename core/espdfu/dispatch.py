"""A model's lock and the hand-off of its events, as one thing to hold.

A model changes its state inside ``with dispatcher:`` (the model's lock) and posts an event for
each change there, so events are queued in the order of the changes, whichever threads made
them. When the outermost ``with`` on a thread ends, the queue is emptied outside the lock by one
thread at a time: a thread that finds another delivering leaves its events to it, so the order
holds and no thread waits for another's callback. The callback may call back into the model.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

_E = TypeVar("_E")


class Dispatcher(Generic[_E]):
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._delivered = threading.Condition(self._lock)
        self._outbox: deque[_E] = deque()
        self._subscribers: list[Callable[[_E], object]] = []
        self._deliverer: threading.Thread | None = None
        self._depth = threading.local()
        """How deep this thread is in ``with`` blocks: events go out when it leaves the last."""

    def __enter__(self) -> None:
        self._lock.acquire()
        self._depth.n = getattr(self._depth, "n", 0) + 1

    def __exit__(self, *exc_info: object) -> None:
        self._depth.n -= 1
        self._lock.release()
        if self._depth.n == 0:
            self._deliver()

    def connect(self, subscriber: Callable[[_E], object]) -> None:
        """Hand every event posted from now on to ``subscriber`` too (after those before it)."""
        with self._lock:
            self._subscribers = [*self._subscribers, subscriber]

    def post(self, event: _E) -> None:
        """Queue ``event`` (inside ``with``): it goes out in the order posted."""
        with self._lock:
            self._outbox.append(event)

    def drain(self, timeout: float) -> bool:
        """Wait until every event posted so far has gone out (``timeout`` at most); whether
        all have. From the thread delivering (inside the callback) it cannot: False."""
        self._deliver()
        with self._delivered:
            if self._deliverer is threading.current_thread():
                return False
            return self._delivered.wait_for(
                lambda: self._deliverer is None and not self._outbox, timeout
            )

    def disconnect(self, timeout: float) -> None:
        """Let a delivery under way finish (``timeout`` at most); then nothing more goes out."""
        self._deliver()
        with self._delivered:
            self._delivered.wait_for(
                lambda: self._deliverer in (None, threading.current_thread()), timeout
            )
            self._subscribers = []
            self._outbox.clear()

    def _deliver(self) -> None:
        with self._lock:
            if self._deliverer is not None:
                return
            self._deliverer = threading.current_thread()
        try:
            while True:
                with self._lock:
                    if not self._outbox:  # seen empty and given up in one step: none is left
                        self._end_delivery()
                        return
                    event = self._outbox.popleft()
                    subscribers = self._subscribers
                for subscriber in subscribers:
                    subscriber(event)
        except BaseException:
            with self._lock:
                self._end_delivery()
            raise

    def _end_delivery(self) -> None:
        self._deliverer = None
        self._delivered.notify_all()

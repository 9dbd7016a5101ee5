"""Background threads: a loop and the event that stops it, and alarms by key.

The hot-plug monitor, each console reader and the consoles' batching thread are each a
:class:`Worker`; every wait in them is :meth:`Worker.wait`, so a stop ends the loop at once,
never after a sleep. The looks for a board that left and the demo finger's presses are
:class:`Alarms`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Worker:
    """Runs ``loop`` on a daemon thread named ``name`` once started, until it returns."""

    def __init__(self, loop: Callable[[], None], name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    @property
    def stopping(self) -> bool:
        """Whether the loop was asked to end (it checks this between its steps)."""
        return self._stop.is_set()

    def wait(self, seconds: float | None) -> bool:
        """Sleep ``seconds`` unless asked to end first; whether it was asked to end."""
        return self._stop.wait(seconds)

    def stop(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Ask the loop to end; with ``wait``, also :meth:`join` it."""
        self._stop.set()
        if wait:
            self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end (``timeout`` at most), if it ran and is not this one."""
        if self.started and threading.current_thread() is not self._thread:
            self._thread.join(timeout)


class Alarms:
    """Daemon timers by key: one a key (set again, it moves), all cancelled by :meth:`close`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timers: dict[str, threading.Timer] = {}
        self._closed = False

    def set(self, key: str, seconds: float, call: Callable[[], object]) -> None:
        """Call ``call`` in ``seconds`` on a thread of its own, instead of what ``key`` had."""
        timer = threading.Timer(seconds, self._ring, (key, call))
        timer.daemon = True
        with self._lock:
            if self._closed:
                return
            if (before := self._timers.pop(key, None)) is not None:
                before.cancel()
            self._timers[key] = timer
        timer.start()

    def close(self) -> None:
        """Cancel every alarm; none is set from now on."""
        with self._lock:
            self._closed = True
            timers, self._timers = list(self._timers.values()), {}
        for timer in timers:
            timer.cancel()

    def _ring(self, key: str, call: Callable[[], object]) -> None:
        with self._lock:
            if self._timers.get(key) is not threading.current_thread():
                return  # moved or cancelled meanwhile
            del self._timers[key]
        call()

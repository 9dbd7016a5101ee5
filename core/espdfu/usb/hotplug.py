"""Hot-plug: boards coming, changing and going, by port path (pyusb has no hot-plug callbacks).

A thread rescans the buses: at once when the world says a device came or went (Linux's uevents,
:mod:`.uevents`), and every interval in any case, for what no word came of (at least
:data:`SAFETY_NET_S` apart where word comes: a poll is then only the safety net). A cue is
followed by two more looks soon after, for what the system finishes a moment later (a udev
rule's permissions, a board that re-enumerates). Only devices new since the last scan (a new bus
address) are examined, so an idle scan costs one enumeration.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import usb.core

from ..loops import Worker
from .boards import Board, classify
from .transport import BusNews, Usb

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 0.5
SAFETY_NET_S = 2.0
"""The least interval of the poll where the world gives word of devices coming and going."""
FOLLOW_UPS_S = (0.1, 0.4)
"""After word of a device, the looks that follow the first one, in seconds after it."""


class Change(enum.Enum):
    """What became of a port path between two scans."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


class BoardEvent(NamedTuple):
    """A board that came, changed or went, as one scan found it."""

    change: Change
    board: Board
    """The board now (for REMOVED: as it was last seen)."""


class HotPlug:
    """Rescans the buses on a thread and reports what changed to ``on_event``.

    Boards that could not be opened are probed again each scan, since permissions and drivers
    often arrive a moment after the device does.
    """

    def __init__(
        self,
        usb_world: Usb,
        on_event: Callable[[BoardEvent], None],
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self._usb = usb_world
        self._on_event = on_event
        self._interval = interval_s
        self._worker = Worker(self._run, "espdfu-hotplug")
        self._news: BusNews | None = None
        self._known: dict[tuple[int, int], Board | None] = {}
        self._boards: dict[str, Board] = {}
        self._lock = threading.Lock()

    def boards(self) -> dict[str, Board]:
        """The boards present at the last scan, by port path."""
        with self._lock:
            return dict(self._boards)

    def start(self) -> None:
        """Scan once now (so :meth:`boards` is filled on return), then keep scanning."""
        self._news = self._usb.news() if self._usb.news is not None else None
        if self._news is not None:
            self._interval = max(self._interval, SAFETY_NET_S)
        self.scan()
        self._worker.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._worker.stop(wait=False)
        news = self._news
        if news is not None:
            news.wake()
        self._worker.join(timeout_s)

    def _run(self) -> None:
        news = self._news
        looks: list[float] = []  # when to look next, besides the interval: after a cue
        try:
            while not self._worker.stopping:
                now = time.monotonic()
                due = min([now + self._interval, *looks])
                if news is None:
                    self._worker.wait(due - now)
                elif news.wait(due - now):
                    now = time.monotonic()
                    looks = [now, *(now + after for after in FOLLOW_UPS_S)]
                if self._worker.wait(0):  # asked to stop meanwhile
                    return
                now = time.monotonic()
                looks = [at for at in looks if at > now]
                try:
                    self.scan()
                except Exception:  # a bad scan must not end hot-plug for the whole session
                    log.exception("USB scan failed")
        finally:
            if news is not None:
                news.close()

    def scan(self) -> list[BoardEvent]:
        """Rescan now; report and return what changed."""
        backend = self._usb.backend
        known: dict[tuple[int, int], Board | None] = {}
        for dev in backend.enumerate_devices():
            descriptor = backend.get_device_descriptor(dev)
            key = (descriptor.bus, descriptor.address)
            board = self._known.get(key)
            if key not in self._known or (board is not None and not board.accessible):
                board = classify(usb.core.Device(dev, backend))
            known[key] = board
        boards = {board.path: board for board in known.values() if board is not None}
        with self._lock:
            events = _differences(self._boards, boards)
            self._known, self._boards = known, boards
        for event in events:
            self._on_event(event)
        return events


def _differences(before: dict[str, Board], after: dict[str, Board]) -> list[BoardEvent]:
    events = [
        BoardEvent(Change.REMOVED, board) for path, board in before.items() if path not in after
    ]
    for path, board in after.items():
        if path not in before:
            events.append(BoardEvent(Change.ADDED, board))
        elif before[path] != board:
            events.append(BoardEvent(Change.CHANGED, board))
    return events

"""Hot-plug: boards coming, changing and going, by port path (pyusb has no hot-plug callbacks).

A thread rescans the buses; only devices new since the last scan (a new bus address) are
examined, so an idle scan costs one enumeration.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from typing import NamedTuple

import usb.core

from ..loops import Worker
from .boards import Board, classify
from .transport import Usb

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 0.5


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
        self._known: dict[tuple[int, int], Board | None] = {}
        self._boards: dict[str, Board] = {}
        self._lock = threading.Lock()

    def boards(self) -> dict[str, Board]:
        """The boards present at the last scan, by port path."""
        with self._lock:
            return dict(self._boards)

    def start(self) -> None:
        """Scan once now (so :meth:`boards` is filled on return), then keep scanning."""
        self.scan()
        self._worker.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._worker.stop(timeout=timeout_s)

    def _run(self) -> None:
        while not self._worker.wait(self._interval):
            try:
                self.scan()
            except Exception:  # a bad scan must not end hot-plug for the whole session
                log.exception("USB scan failed")

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

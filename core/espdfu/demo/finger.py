"""The demo's virtual finger: it presses the virtual boards' buttons where a person would.

After a good flash the ESP ROM waits for RESET; as a build starts, a board that runs an app
without a DFU runtime needs BOOT held and RESET tapped to take the flash after it. In the demo
the finger does both, and says so in the log, for the boards without a USB-UART bridge: those
with one are reset through it by the workbench itself, as real DevKits are. It is a subscriber
like any front end: it reads what the workbench reports and presses only virtual boards; the
workbench knows nothing of it.
"""

from __future__ import annotations

import functools
import threading

from ..bench.build import BuildState
from ..bench.views import (
    BenchEvent,
    BoardChanged,
    BoardRemoved,
    BoardView,
    BuildChanged,
    Life,
    Stopped,
)
from ..bench.workbench import Workbench
from ..loops import Alarms
from ..sim import SimBus

RESET_S = 2.0
"""How long after a good flash the finger taps RESET."""
_OFF_THE_BUS = (Life.APP, Life.AWAY)


class Finger:
    """Subscribe :meth:`see` to the workbench: from then on the finger presses for the user."""

    def __init__(self, bus: SimBus, workbench: Workbench, reset_s: float = RESET_S) -> None:
        self._bus = bus
        self._workbench = workbench
        self._reset_s = reset_s
        self._lock = threading.Lock()
        self._views: dict[str, BoardView] = {}
        self._alarms = Alarms()
        self._building = False
        self._stopped = False

    def see(self, event: BenchEvent) -> None:
        """Called on the workbench's threads, with each event in order."""
        if isinstance(event, BoardChanged):
            self._board(event.view)
        elif isinstance(event, BoardRemoved):
            with self._lock:
                self._views.pop(event.path, None)
        elif isinstance(event, BuildChanged):
            building = event.status.state is BuildState.RUNNING
            if building and not self._building:
                self._to_download_mode()
            self._building = building
        elif isinstance(event, Stopped):
            self.close()

    def close(self) -> None:
        """Press nothing from now on."""
        with self._lock:
            self._stopped = True
        self._alarms.close()

    def _board(self, view: BoardView) -> None:
        with self._lock:
            before = self._views.get(view.path)
            self._views[view.path] = view
            flashed = view.last is not None and view.last.ok and bool(view.last.next_step)
            new = before is None or before.last_at != view.last_at
            if self._stopped or view.bridged or not (flashed and new):
                return
        self._alarms.set(view.path, self._reset_s, functools.partial(self._reset, view.path))

    def _reset(self, path: str) -> None:
        """RESET, if the board still waits for it: in DFU mode, not flashed again meanwhile."""
        with self._lock:
            view = self._views.get(path)
            board = self._bus.boards.get(path)
            if self._stopped or view is None or board is None:
                return
            if not view.present or view.flashing:
                return
        self._workbench.say(f"Demo: RESET tapped on {view.title} for you, to run its new app.")
        board.press_reset()

    def _to_download_mode(self) -> None:
        """BOOT held and RESET tapped on every board off the bus, running its app."""
        with self._lock:
            running = [v for v in self._views.values() if v.life in _OFF_THE_BUS and not v.bridged]
            if self._stopped:
                return
        for view in running:
            board = self._bus.boards.get(view.path)
            if board is not None:
                self._workbench.say(f"Demo: BOOT held and RESET tapped on {view.title} for you.")
                board.press_reset(boot=True)

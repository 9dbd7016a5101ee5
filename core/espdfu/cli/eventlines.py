"""What ``espdfu watch`` prints: one timestamped line per event worth a line, and each board's
console lines prefixed with the board."""

from __future__ import annotations

import threading
import time

from ..bench.views import BenchEvent, BoardChanged, ConsoleOutput, Logged
from ..consoles.health import RunState
from ..flashing.flasher import Phase


class EventLines:
    """One timestamped line per event; progress only when a board's phase changes, its app's
    state only when that changes."""

    def __init__(self) -> None:
        self.phase: dict[str, Phase | None] = {}
        self.app: dict[str, RunState | None] = {}
        self.device: dict[str, str | None] = {}
        self.titles: dict[str, str] = {}
        self.lock = threading.Lock()

    def show(self, event: BenchEvent) -> None:
        if isinstance(event, BoardChanged):
            self._board(event)
        elif isinstance(event, Logged):
            prefix = "build: " if event.source == "build" else ""
            self._line(f"{prefix}{event.text}")
        elif isinstance(event, ConsoleOutput):
            title = self.titles.get(event.path, event.path)
            for line in event.lines:
                self._line(f"{title} | {line.text}")

    def _board(self, event: BoardChanged) -> None:
        view, progress = event.view, event.view.progress
        phase = progress.phase if progress else None
        if progress is not None and self.phase.get(view.path) is not phase:
            self._line(f"{view.title}: {progress.activity}")
        self.phase[view.path] = phase
        self.titles[view.path] = view.title
        device = view.console.device if view.console else None
        if device != self.device.get(view.path):
            self._line(
                f"{view.title}: console on {device}" if device else f"{view.title}: console gone"
            )
        self.device[view.path] = device
        console = view.console if view.running_app else None
        state = console.state if console else None
        if console and state is not RunState.UNKNOWN and self.app.get(view.path) is not state:
            self._line(f"{view.title}: {console.words}")
        self.app[view.path] = state

    def _line(self, text: str) -> None:
        with self.lock:
            print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)

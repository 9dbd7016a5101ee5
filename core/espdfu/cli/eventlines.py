"""What ``espdfu watch`` prints: one timestamped line per event worth a line."""

from __future__ import annotations

import threading
import time

from ..flasher import Phase
from ..workbench import BoardChanged, Event, Logged


class EventLines:
    """One timestamped line per event; progress only when a board's phase changes."""

    def __init__(self) -> None:
        self.phase: dict[str, Phase | None] = {}
        self.lock = threading.Lock()

    def show(self, event: Event) -> None:
        if isinstance(event, BoardChanged):
            self._board(event)
        elif isinstance(event, Logged):
            prefix = "build: " if event.source == "build" else ""
            self._line(f"{prefix}{event.text}")

    def _board(self, event: BoardChanged) -> None:
        view = event.view
        phase = view.progress.phase if view.progress else None
        if phase is not None and self.phase.get(view.path) is not phase:
            self._line(f"{view.title}: {phase.value}")
        self.phase[view.path] = phase

    def _line(self, text: str) -> None:
        with self.lock:
            print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)

"""What ``espdfu watch`` prints: one timestamped line per event, and what a stop ended."""

from __future__ import annotations

import threading
import time

from ..build import BuildState
from ..flasher import FlashResult, Phase
from ..workbench import BoardChanged, Event, Logged, Workbench
from .common import flash_endings


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


def stop_workbench(workbench: Workbench) -> list[str]:
    """Stop the workbench (flashes aborted, the build's process group ended) and say how the
    work that ran ended: ["2 flashes aborted, boards left ready to flash (1-1.1, 1-1.2)",
    "the build was stopped"]; empty when nothing ran.
    """
    flashing = _flashing(workbench)
    building = workbench.build_status.state is BuildState.RUNNING
    workbench.stop()
    views = workbench.boards()
    endings: dict[str, FlashResult | None] = {}
    off_the_bus = []  # a board's view goes when its flash ends while it is away
    for path in flashing:
        view = views.get(path)
        if view is None:
            off_the_bus.append(path)
        else:
            endings[path] = None if view.flashing else view.last
    parts = flash_endings(endings)
    if off_the_bus:
        parts.append(f"ended with the board off the bus: {', '.join(off_the_bus)} (see the log)")
    if building:
        state = workbench.build_status.state
        parts.append(
            "the build was stopped"
            if state is BuildState.CANCELLED
            else "the build is still running"
            if state is BuildState.RUNNING
            else f"the build {state.value}"
        )
    return parts


def _flashing(workbench: Workbench) -> list[str]:
    return [path for path, view in workbench.boards().items() if view.flashing]

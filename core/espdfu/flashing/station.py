"""A flashing station: one fixed dfu.bin to every board as it is plugged in, once per plug.

For a production line: the operator plugs a board (in download mode) into a slot, it is
flashed, its result is reported, the operator unplugs it and plugs the next. Boards are told
apart by their bus address, which the kernel gives anew on every plug: the board a flash left
on the bus (in DFU mode, after its own re-enumeration) is not flashed again, a board plugged
into the same port afterwards is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass

from ..dispatch import Dispatcher
from ..files.dfufile import DfuImage
from ..usb.boards import Board
from ..usb.hotplug import BoardEvent, Change, HotPlug
from ..usb.transport import Usb
from .flasher import FlashOptions, FlashResult, Outcome, flash_and_look, incompatibility
from .jobs import Job, Jobs

JOIN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Skipped:
    """A board that was plugged in but cannot take the file, and why (once per plug)."""

    path: str
    reason: str
    hint: str


class Station:
    """Flash ``image`` to every board plugged in (only at ``paths``, when given) until stopped.

    ``on_result`` and ``on_skipped`` are called on the station's threads; they should print or
    hand the news on, not block. Boards present at :meth:`start` count as plugged in.
    """

    def __init__(
        self,
        usb_world: Usb,
        image: DfuImage,
        on_result: Callable[[FlashResult], None],
        on_skipped: Callable[[Skipped], None],
        *,
        paths: Collection[str] = (),
        options: FlashOptions | None = None,
        monitor_interval_s: float = 0.25,
    ) -> None:
        self._usb = usb_world
        self._image = image
        self._on_result = on_result
        self._on_skipped = on_skipped
        self._paths = frozenset(paths)
        self._options = options or FlashOptions()
        self._hotplug = HotPlug(usb_world, self._on_board, monitor_interval_s)
        self._changes: Dispatcher[FlashResult | Skipped] = Dispatcher()
        """The station's lock; its news goes to the callbacks outside it, in order."""
        self._changes.connect(self._tell)
        self._jobs: Jobs[Board, Outcome] = Jobs(
            self._flash, self._flashed, guard=self._changes, name="espdfu-station"
        )
        self._handled: dict[str, int] = {}
        """Port path → bus address of the board last flashed or skipped there."""
        self.results: list[FlashResult] = []

    def start(self) -> None:
        self._hotplug.start()

    def stop(self) -> dict[str, FlashResult | None]:
        """Stop watching, abort the running flashes (boards left ready) and wait for them.

        Returns how each flash that was running ended (None: still running after the wait).
        """
        with self._changes:  # from here on, no flash starts
            stopped = self._jobs.close()
        self._hotplug.stop()
        self._jobs.join(JOIN_TIMEOUT_S)
        return {job.path: job.result.result if job.result else None for job in stopped}

    # --- the monitor's thread -----------------------------------------------------------------

    def _on_board(self, event: BoardEvent) -> None:
        board = event.board
        if self._paths and board.path not in self._paths:
            return
        with self._changes:
            if self._jobs.closed or self._jobs.running(board.path):
                return  # a flash re-enumerates its board: that is not a new plug
            if event.change is Change.REMOVED:
                self._handled.pop(board.path, None)
                return
            if self._handled.get(board.path) == board.address:
                return  # the board already flashed (or skipped), still on the bus
            self._handled[board.path] = board.address
            problem = incompatibility(board, self._image, self._options.force)
            if problem is None:
                self._jobs.start(board.path, board)  # nothing starts once stopping
            else:
                self._changes.post(Skipped(board.path, problem.message, problem.hint))

    def _flash(self, path: str, board: Board, cancel: threading.Event) -> Outcome:
        return flash_and_look(self._usb, path, self._image, options=self._options, cancel=cancel)

    def _flashed(self, job: Job[Board, Outcome], outcome: Outcome) -> None:
        result = outcome.result
        self.results.append(result)
        if outcome.board is not None:  # the board as the flash left it: not a new plug
            self._handled[job.path] = outcome.board.address
        else:
            self._handled.pop(job.path, None)
        self._changes.post(result)

    def _tell(self, news: FlashResult | Skipped) -> None:
        if isinstance(news, Skipped):
            self._on_skipped(news)
        else:
            self._on_result(news)

"""The workbench's flashes: one job a port at a time, the latest wish waiting in the port, and
one line of RESET advice for each round of flashes."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable

from ..flashing.failures import FlashError
from ..flashing.flasher import (
    FlashResult,
    Outcome,
    Phase,
    Progress,
    flash_and_look,
    incompatibility,
)
from ..flashing.jobs import Job, Jobs
from ..usb.boards import board_at
from ..usb.transport import port_order
from .artifacts import Artifact
from .base import Sending, sending
from .bridged import into_download_mode, reset_words
from .ports import Ports
from .views import Life, Outbox, reset_advice

_OFF_THE_BUS = {
    Life.APP: "its app runs without a DFU runtime, so the board is not on the bus to take a "
    "flash. Hold BOOT, tap RESET, release BOOT to put it in download mode, then flash again.",
    Life.AWAY: "it left the bus (a RESET?) and has not come back yet. Wait for it, or hold "
    "BOOT, tap RESET, release BOOT to put it in download mode.",
}
"""Why a board off the bus cannot be flashed now, by where its port is in its life."""


class Flashes:
    """Starts and ends the workbench's flashes, inside its lock (``changes``); ``count`` takes
    the number of boards being flashed each time it changes."""

    def __init__(self, ports: Ports, changes: Outbox, count: Callable[[int], None]) -> None:
        self._ports = ports
        self._changes = changes
        self._count = count
        self._jobs: Jobs[Sending, Outcome] = Jobs(
            self._flash, self._flashed, guard=changes, name="espdfu-job"
        )
        self._bridges: dict[str, Callable[[], str | None]] = {}
        """Port path → where its bridge is, for the jobs that start with a reset through it."""
        ports.flash_whole = functools.partial(self.start, explicit=True, whole=True)
        self._to_reset: dict[str, str] = {}
        """Port path → title of the boards of this round of flashes that wait for RESET: said
        once, when the round ends."""

    def start(self, path: str, artifact: Artifact, explicit: bool, whole: bool = False) -> bool:
        """Start flashing ``path``; a running flash keeps the newest other artifact for after.

        Checking the board and starting its job are one step (inside the lock). ``explicit``:
        the user asked for this board, so a refusal is a warning. Only the changes since the
        board's base go, unless ``whole`` (or the settings) say otherwise; nothing, when
        nothing changed.
        """
        image = artifact.image
        assert image is not None
        port = self._ports.get(path)
        if self._jobs.closed or port.board is None:
            return False
        if port.job is not None:
            same = port.job.item.digest == artifact.digest
            port.waiting = None if same else artifact  # the latest wins
            if same and explicit:
                self._changes.log(f"{port.title} is being flashed already.", level="warning")
            return False
        if not port.startable:
            if explicit:
                why = _OFF_THE_BUS.get(port.life, "it is not on the bus.")
                self._changes.log(f"{port.title}: not flashed: {why}", level="warning")
            return False
        # A board never on the bus is checked once its bridge has put it there (by the flasher)
        force = self._ports.settings.flash.force
        problem = None if port.unseen else incompatibility(port.board, image, force)
        if problem is not None:  # said each time, so that no board is passed over unsaid
            if explicit:  # what to do, too: the user asked for this board
                why = f"{problem.message} {problem.hint}".strip()
                self._changes.log(f"{port.title}: not flashed: {why}", level="warning")
            else:
                self._changes.log(f"{port.title}: not flashed: {problem.message}")
            return False
        changes_only = self._ports.settings.changes_only and not whole
        sent = sending(artifact, port.base, changes_only)
        if sent.delta is not None and sent.delta.unchanged:
            if explicit:
                since = sent.base.since if sent.base is not None else ""
                self._changes.log(
                    f"{port.title}: nothing sent: it holds this build already (nothing "
                    f"changed since {since}); a whole flash sends it again.",
                    level="warning",
                )
            return False
        job = self._jobs.start(path, sent)
        if job is None:
            return False
        if sent.words:
            self._changes.log(f"{port.title}: {sent.words}.")
        if not port.on_bus:  # a bridged board: its bridge takes it into download mode first
            self._bridges[path] = self._ports.console_finder(path)
        self._ports.apply(port, port.flash_started(job, len(image.payload)))
        self._counted()
        return True

    def cancel(self, path: str) -> bool:
        """Cancel the flash of the board at ``path``; whether one ran (else it says so)."""
        port = self._ports.get(path)
        if port.job is None:
            self._changes.log(f"Nothing to cancel on {path}: no flash runs there.", level="warning")
            return False
        port.waiting = None
        port.job.cancel()
        return True

    def close(self) -> list[Job[Sending, Outcome]]:
        """Start nothing from now on; cancel the running flashes and return their jobs."""
        return self._jobs.close()

    def join(self, timeout: float) -> None:
        self._jobs.join(timeout)

    def _flash(self, path: str, sent: Sending, cancel: threading.Event) -> Outcome:
        """A job, on its own thread."""
        image = sent.image
        self._ports.feed.release(path)  # a console port is never held across a flash

        def progress(now: Progress) -> None:
            self._ports.tell(path, lambda port: port.progressed(now))

        finder = self._bridges.pop(path, None)
        if finder is not None:
            start = time.monotonic()
            progress(Progress(path, Phase.RESETTING, 0, len(image.payload)))
            device, wait_s = finder(), self._ports.settings.flash.detach_wait_s
            reached = into_download_mode(self._ports.usb, path, device, wait_s, cancel)
            if isinstance(reached, FlashError):
                size, seconds = len(image.payload), time.monotonic() - start
                result = FlashResult(path, image.chip_name, size, seconds, reached)
                return Outcome(result, board_at(self._ports.usb, path))
            self._changes.log(reset_words(path, str(device)))
            self._ports.tell(path, lambda port: port.seen(reached))  # before the next scan
        options = self._ports.settings.flash
        return flash_and_look(
            self._ports.usb, path, image, options=options, progress=progress, cancel=cancel
        )

    def _flashed(self, job: Job[Sending, Outcome], outcome: Outcome) -> None:
        """A job ended (inside the lock): the port takes it, then what waited there starts."""
        port = self._ports.get(job.path)
        waiting, port.waiting = port.waiting, None
        result = outcome.result
        self._ports.apply(port, port.ended(outcome, job.item))
        if result.ok and result.next_step and not port.bridged:  # a bridge resets it
            self._to_reset[port.path] = port.title
        if waiting is None or job.cancelled or not self.start(port.path, waiting, False):
            self._counted()
        if not any(port.flashing for port in self._ports) and self._to_reset:  # round over
            titles = [self._to_reset[path] for path in sorted(self._to_reset, key=port_order)]
            self._changes.log(reset_advice(titles))
            self._to_reset.clear()

    def _counted(self) -> None:
        self._count(sum(port.flashing for port in self._ports))

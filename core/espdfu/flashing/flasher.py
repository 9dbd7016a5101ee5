"""One flash job per board — detach, wait for the same port, download, manifest — and many at once.

A job drives :func:`espdfu.usb.protocol.download` over a :class:`~espdfu.usb.transport.DfuInterface`
with :func:`espdfu.usb.driver.drive`: it makes the waiting (bwPollTimeout) cancellable, reports
progress, and turns every way a flash can go wrong into a :class:`FlashError` in words
(:mod:`espdfu.flashing.failures`). A flash is "flashed" only when the device confirmed the whole
download.
"""

from __future__ import annotations

import contextlib
import enum
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

from ..chips import ANY_PID, ESPRESSIF_VID, chip_by_pid
from ..errors import EspdfuError
from ..files.contents import REBUILD
from ..files.dfufile import DfuImage
from ..units import format_size
from ..usb import rom
from ..usb.boards import DRIVER_HINT, Access, Board, Mode, access_hint, board_at, descriptors
from ..usb.driver import drive
from ..usb.protocol import (
    BUSY_LIMIT_MS,
    Blocks,
    BusyTooLongError,
    DeviceGone,
    Ending,
    ProtocolError,
    Reply,
    Request,
    Sent,
    State,
    Status,
    Step,
    download,
    recover,
)
from ..usb.trace import BoardTrace, TraceSink
from ..usb.transport import DEFAULT_TIMEOUT_MS, BlockFault, DfuInterface, Usb, UsbFault
from .failures import WORDED, Cancelled, worded
from .failures import Failure as Failure
from .failures import FlashError as FlashError
from .jobs import Job, Jobs

MAX_TRANSFER_SIZE = 4096  # what Linux usbfs takes in one control transfer (as dfu-util)
ESP_TRANSFER_SIZE = 64  # the ESP ROM's, when a board hides its functional descriptor
_RECOVER_BUSY_LIMIT_MS = 10_000
_POLL_FOR_BOARD_S = 0.05
_SHOWN_ERASE_S = 1.0
"""Erases expected to take this long are shown as a phase; shorter ones only count in the ETA."""
_SHOWN_BUSY_S = 1.0
"""A board busy this long is shown to be (each block makes it busy a few milliseconds)."""
_BUSY_STATES = (State.DNBUSY, State.MANIFEST)
_CANCELLED_BUSY_LIMIT_MS = 1000
"""After a cancel, how long a busy board is waited for before it is left so: a stop is prompt."""
_PROGRESS_GRAIN = 1024
"""Bytes between two looks at the clock for progress (sixteen 64-byte blocks)."""
_T = TypeVar("_T")


class Phase(enum.Enum):
    RESETTING = "reset into download mode"
    """Its USB-UART bridge resets the board into ROM download mode (the workbench's)."""
    CONNECTING = "connecting"
    DETACHING = "detaching"
    WAITING = "waiting for DFU mode"
    DOWNLOADING = "downloading"
    ERASING = "erasing"
    """The ROM erases an entry's region and answers nothing until it is done."""
    MANIFESTING = "finishing"
    BUSY = "busy"
    """The board keeps answering that it is busy (dfuDNBUSY, dfuMANIFEST): it is given time up
    to the busy limit, then the flash fails."""


@dataclass(frozen=True)
class FlashOptions:
    force: bool = False
    """Flash even when the file's chip is not the board's."""
    detach_wait_s: float = 10.0
    retries: int = 1
    """Automatic retries of a flash that failed before the device accepted any data."""
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    """Longest wait for the answer to one USB request; the requests during which the ROM may
    erase get that erase's allowance instead (:func:`espdfu.usb.rom.erase_deadline_s`)."""
    busy_limit_s: float = BUSY_LIMIT_MS / 1000
    """Longest a board may stay busy on one step (a large erase takes seconds)."""
    progress_interval_s: float = 0.1
    trace: TraceSink | None = None
    """Where each flash writes its requests and decisions (:mod:`espdfu.usb.trace`); None:
    nowhere, at no cost."""


@dataclass(frozen=True)
class Progress:
    path: str
    phase: Phase
    done: int
    total: int
    rate: float | None = None
    """Bytes per second since the download started."""
    eta_s: float | None = None
    """Seconds left, the ROM's erases still to come included."""
    attempt: int = 1
    erase: rom.Erase | None = None
    """While the phase is ERASING: what the ROM erases."""
    busy_s: float | None = None
    """While the phase is BUSY: how long the board has answered so."""
    busy_limit_s: float | None = None
    """While the phase is BUSY: how long it may (then the flash fails)."""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    @property
    def activity(self) -> str:
        """The phase in words: "erasing 4 MB at 0x10000 (~31 s)", "downloading", "busy 12 s
        (gives up at 120 s)"."""
        if self.phase is Phase.BUSY and self.busy_s is not None and self.busy_limit_s:
            return f"busy {self.busy_s:.0f} s (gives up at {self.busy_limit_s:.0f} s)"
        erase = self.erase
        if erase is None or self.phase is not Phase.ERASING:
            return self.phase.value
        return (
            f"erasing {format_size(erase.size)} at 0x{erase.address:x} "
            f"(~{math.ceil(erase.expected_s)} s)"
        )


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class FlashResult:
    path: str
    chip: str
    size: int
    seconds: float
    error: FlashError | None = None
    ending: Ending | None = None
    attempts: int = 1
    notes: tuple[str, ...] = ()
    """What the user should know of a flash that went well all the same."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def headline(self) -> str:
        """What happened, in one sentence (a failure's kind is in ``error.kind``)."""
        if self.error is not None:
            return self.error.message
        rate = f" ({format_size(int(self.size / self.seconds))}/s)" if self.seconds > 0 else ""
        flashed = f"Flashed {format_size(self.size)} in {self.seconds:.1f} s{rate}."
        return " ".join((flashed, *self.notes))

    @property
    def next_step(self) -> str:
        """What the user must do now, if anything."""
        if self.error is not None:
            return self.error.hint
        return reset_step() if self.ending is Ending.IDLE else ""

    @property
    def message(self) -> str:
        return f"{self.headline} {self.next_step}".strip()

    @property
    def confirmed(self) -> int:
        """Payload bytes the board confirmed: all of them after a flash that went well."""
        return self.size if self.error is None else self.error.accepted

    def as_dict(self) -> dict[str, Any]:
        error = self.error
        return {
            "path": self.path,
            "chip": self.chip,
            "ok": self.ok,
            "bytes": self.confirmed,
            "size": self.size,
            "seconds": round(self.seconds, 3),
            "attempts": self.attempts,
            "ending": self.ending.name.lower() if self.ending else None,
            "error": error.kind.name.lower() if error else None,
            "status": error.status.label if error and error.status is not None else None,
            "message": self.headline,
            "hint": self.next_step,
            "notes": list(self.notes),
        }


def reset_step(boards: int = 1) -> str:
    """What to do after good flashes left ``boards`` boards in DFU mode: one line for all."""
    which = "the board" if boards == 1 else "each board"
    return (
        f"Press RESET on {which} to run the new firmware: the ESP ROM does not start it by itself."
    )


def forced(board: Board, image: DfuImage) -> str | None:
    """What ``--force`` lets through for ``board`` (the chips' mismatch), None when nothing; what
    the file itself would not boot is said once, by whoever loads it."""
    if _unreachable(board) is not None:
        return None
    problem = _other_chip(board, image)
    return problem.message if problem is not None else None


def incompatibility(board: Board, image: DfuImage, force: bool = False) -> FlashError | None:
    """Why ``image`` must not go to ``board`` (None when it may)."""
    problem = _unreachable(board)
    if problem is not None or force:
        return problem
    if image.contents.problems:
        return FlashError(
            Failure.WONT_BOOT, f"The file would not boot: {image.contents.problems[0]}", REBUILD
        )
    return _other_chip(board, image)


def _unreachable(board: Board) -> FlashError | None:
    """Why nothing can be flashed to ``board``, whatever the file and --force."""
    if board.access is Access.NO_PERMISSION:
        return FlashError(
            Failure.NO_PERMISSION, f"The board at {board.path} cannot be opened.", access_hint()
        )
    if board.access is Access.NO_DRIVER:
        return FlashError(
            Failure.NO_DRIVER,
            f"The board at {board.path} cannot be opened: it has no driver.",
            DRIVER_HINT,
        )
    if board.interface is None:
        return FlashError(
            Failure.NOT_DFU, f"The device at {board.path} has no DFU interface.", board.hint
        )
    return None


def _other_chip(board: Board, image: DfuImage) -> FlashError | None:
    if image.pid == ANY_PID or (board.chip is None and board.mode is Mode.APP):
        return None  # an application's chip shows once it has detached into the ROM
    if board.chip is None or board.chip.dfu_pid != image.pid:
        wanted = chip_by_pid(image.pid)
        return FlashError(
            Failure.WRONG_CHIP,
            f"The file is for {wanted.name if wanted else f'PID 0x{image.pid:04x}'} but the "
            f"board at {board.path} is {board.chip.name if board.chip else 'not an ESP board'}.",
            "Flash the dfu.bin built for this board's chip (or use --force if you are sure).",
        )
    return None


def flash(
    usb_world: Usb,
    path: str,
    image: DfuImage,
    *,
    options: FlashOptions | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> FlashResult:
    """Flash ``image`` to the board at ``path``; never raises for a failed flash."""
    job = _Flash(usb_world, path, image, options or FlashOptions(), progress, cancel)
    return job.run()


@dataclass(frozen=True)
class Outcome:
    """A flash's result, and the board as the flash left its port (None: none there)."""

    result: FlashResult
    board: Board | None


def flash_and_look(
    usb_world: Usb,
    path: str,
    image: DfuImage,
    *,
    options: FlashOptions | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Outcome:
    """:func:`flash`, then one look at the port: whether the board stayed (and as what) or left
    (a RESET that followed, a cable), for those who follow the board after its flash."""
    result = flash(usb_world, path, image, options=options, progress=progress, cancel=cancel)
    return Outcome(result, board_at(usb_world, path))


def flash_many(
    usb_world: Usb,
    paths: Sequence[str],
    image: DfuImage,
    *,
    options: FlashOptions | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    on_result: Callable[[FlashResult], object] | None = None,
) -> list[FlashResult]:
    """Flash every board in ``paths`` at once, one thread each; results in ``paths`` order.

    ``on_result`` hears of each flash as it ends (on its thread). Ctrl-C (KeyboardInterrupt)
    cancels every flash, waits for them (each leaves its board ready to flash again) and is
    raised again.
    """
    if len(set(paths)) != len(paths):
        raise ValueError("a board may be flashed by one job at a time: paths repeat")
    results: dict[str, FlashResult] = {}

    def run(path: str, _: None, cancel: threading.Event) -> FlashResult:
        return flash(usb_world, path, image, options=options, progress=progress, cancel=cancel)

    def ended(job: Job[None, FlashResult], result: FlashResult) -> None:
        results[job.path] = result
        if on_result is not None:
            on_result(result)

    jobs: Jobs[None, FlashResult] = Jobs(run, ended)
    cancel = cancel or threading.Event()
    for path in paths:
        jobs.start(path, None, cancel)
    try:
        jobs.join()
    except KeyboardInterrupt:
        cancel.set()
        jobs.join()
        raise
    return [results[path] for path in paths]


# --- one job ----------------------------------------------------------------------------------


@dataclass
class _Reporter:
    """Progress for one board, at most one update per interval except on phase changes."""

    path: str
    total: int
    callback: ProgressCallback | None
    interval_s: float
    busy_limit_s: float
    phase: Phase = Phase.CONNECTING
    attempt: int = 1
    done: int = 0
    started: float | None = None
    last_sent: float = field(default=float("-inf"))
    erase: rom.Erase | None = None
    """The erase under way (phase ERASING), and when it began."""
    erase_started: float = 0.0
    erasing_s: float = 0.0
    """Time the download spent in finished erases: not counted in the transfer rate."""
    erases_left_s: float = 0.0
    """The expected time of the erases still to come."""
    busy_since: float | None = None
    """When the board began answering that it is busy (None: it does not)."""
    before_busy: Phase = Phase.DOWNLOADING

    def enter(self, phase: Phase) -> None:
        self.phase = phase
        if phase is Phase.DOWNLOADING and self.started is None:
            self.started = time.monotonic()
        self._send(force=True)

    def plan(self, erases: Iterable[rom.Erase]) -> None:
        """The erases this download will meet, for the ETA (each counted once)."""
        self.erases_left_s = sum(erase.expected_s for erase in set(erases))

    def erasing(self, erase: rom.Erase | None) -> None:
        """The ROM starts erasing ``erase``, or (None) has finished the one under way."""
        now = time.monotonic()
        if self.erase is not None:
            self.erasing_s += now - self.erase_started
        if erase is not None:
            self.erases_left_s = max(0.0, self.erases_left_s - erase.expected_s)
            self.erase_started = now
        shown = self.phase is Phase.ERASING
        self.erase = erase
        if erase is not None and erase.expected_s >= _SHOWN_ERASE_S:
            self.enter(Phase.ERASING)
        elif shown:
            self.enter(Phase.DOWNLOADING)

    def answered(self, busy: bool) -> None:
        """A GETSTATUS answer, busy or not: busy past :data:`_SHOWN_BUSY_S` is a phase."""
        if not busy:
            self.busy_since = None
            if self.phase is Phase.BUSY:
                self.enter(self.before_busy)
            return
        now = time.monotonic()
        if self.busy_since is None:
            self.busy_since = now
        elif self.phase is Phase.BUSY:
            self._send(force=False)
        elif now - self.busy_since >= _SHOWN_BUSY_S:
            self.before_busy = self.phase
            self.enter(Phase.BUSY)

    def advance(self, done: int) -> None:
        """Called for every block, or run of blocks: the clock is read only every so many
        bytes."""
        if done - self.done < _PROGRESS_GRAIN and done < self.total:
            return
        self.done = done
        self._send(force=done >= self.total)

    def _send(self, force: bool) -> None:
        now = time.monotonic()
        if self.callback is None or (not force and now - self.last_sent < self.interval_s):
            return
        self.last_sent = now
        rate = eta = None
        erase = self.erase
        if self.started is not None:
            erase_left = self.erases_left_s
            if erase is not None:
                erase_left += max(0.0, erase.expected_s - (now - self.erase_started))
            sending = now - self.started - self.erasing_s
            if erase is not None:
                sending -= now - self.erase_started
            if sending > 0.2 and self.done:
                rate = self.done / sending
                eta = (self.total - self.done) / rate + erase_left
            elif erase_left:
                eta = erase_left
        progress = Progress(
            self.path, self.phase, self.done, self.total, rate, eta, self.attempt, erase
        )
        if self.phase is Phase.BUSY and self.busy_since is not None:
            progress = replace(
                progress, busy_s=now - self.busy_since, busy_limit_s=self.busy_limit_s
            )
        self.callback(progress)


class _Flash:
    """The flash of one board: find it, DETACH it into DFU mode if it must, download, manifest;
    again while the board has accepted nothing (``options.retries``)."""

    def __init__(
        self,
        usb_world: Usb,
        path: str,
        image: DfuImage,
        options: FlashOptions,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> None:
        self.usb = usb_world
        self.path = path
        self.image = image
        self.payload = image.payload
        self.options = options
        self.cancel = cancel or threading.Event()
        self.report = _Reporter(
            path, len(self.payload), progress, options.progress_interval_s, options.busy_limit_s
        )
        self.chip = image.chip_name
        self.request = Request.GETSTATUS  # the one in flight, for messages
        self.confirmed = 0
        self.address = -1  # the bus address of the board the job has open
        self.transfer = ESP_TRANSFER_SIZE
        self.erases: dict[int, rom.Erase] = {}
        """The ROM's erases by the block number that may set them off (for the transfer size)."""
        self.notes: list[str] = []
        self.trace: BoardTrace | None = None

    @property
    def _busy_limit_ms(self) -> int:
        return int(self.options.busy_limit_s * 1000)

    def _note(self, event: str, **fields: Any) -> None:
        """A decision, or what it was made on, for the trace (when the flash is traced)."""
        if self.trace is not None:
            self.trace.event(event, **fields)

    def run(self) -> FlashResult:
        sink = self.options.trace
        if sink is not None:
            try:
                self.trace = sink.open(self.path)
            except EspdfuError as error:
                self.notes.append(error.message)  # the flash goes on, untraced
        try:
            self._note(
                "flash", chip=self.image.chip_name, size=len(self.payload),
                usb=self.usb.description, options={
                    "force": self.options.force, "detach_wait_s": self.options.detach_wait_s,
                    "retries": self.options.retries, "timeout_ms": self.options.timeout_ms,
                    "busy_limit_s": self.options.busy_limit_s,
                },
            )  # fmt: skip
            result = self._attempts()
            self._note("result", **result.as_dict())
            return result
        finally:
            if self.trace is not None:
                self.trace.close()

    def _attempts(self) -> FlashResult:
        start = time.monotonic()
        attempt = 0
        first: FlashError | None = None
        while True:
            attempt += 1
            self.report.attempt = attempt
            self.confirmed = 0
            self._note("attempt", number=attempt, of=self.options.retries + 1)
            try:
                ending = self._attempt()
            except FlashError as error:
                self._note("failed", kind=error.kind.name.lower(), message=error.message,
                           accepted=error.accepted, final=error.final)  # fmt: skip
                if first is not None and error.kind is Failure.NOT_FOUND:
                    error = first  # gone for good after the first failure: that one says why
                if error.final or error.accepted > 0 or attempt > self.options.retries:
                    return self._result(start, attempt, error=error)
                first = first or error
                continue
            return self._result(start, attempt, ending=ending)

    def _result(
        self,
        start: float,
        attempts: int,
        error: FlashError | None = None,
        ending: Ending | None = None,
    ) -> FlashResult:
        seconds = time.monotonic() - start
        size = len(self.payload)
        notes = tuple(self.notes)
        return FlashResult(self.path, self.chip, size, seconds, error, ending, attempts, notes)

    def _attempt(self) -> Ending:
        self.report.enter(Phase.CONNECTING)
        board = self._board()
        if board.mode.runtime:
            self.report.enter(Phase.DETACHING)
            self._detach(board)
            self.report.enter(Phase.WAITING)
            board = self._wait_for_dfu_mode(board)
        self.report.enter(Phase.DOWNLOADING)
        return self._download(board)

    def _board(self, *, check: bool = True) -> Board:
        """The board at the port now, refused (``check``) when the file must not go to it."""
        board = board_at(self.usb, self.path)
        if board is None:
            raise FlashError(
                Failure.NOT_FOUND,
                f"There is no board at USB port {self.path}.",
                "Check that it is plugged in (`espdfu list` shows what is connected).",
            )
        if self.trace is not None:
            self._seen(board)
        if not check:
            return board
        problem = incompatibility(board, self.image, self.options.force)
        if problem is not None:
            raise problem
        if board.chip is not None:
            self.chip = board.chip.name
        return board

    def _seen(self, board: Board) -> None:
        """The board as the flash found it, with its descriptors, for the trace."""
        device = self.usb.find(self.path)
        functional = board.functional
        self._note(
            "board", mode=board.mode.name.lower(), chip=board.chip_name,
            access=board.access.name.lower(), interface=board.interface,
            functional=None if functional is None else asdict(functional),
            descriptors=None if device is None else descriptors(device),
        )  # fmt: skip

    def _in_dfu_mode(self, before: Board) -> Board:
        """The board after DETACH: the chip read at the port before DETACH is the one checked.

        Nothing public shows the ROM's DFU-mode PID (:func:`rom.dfu_mode_pid` is an
        assumption), so an Espressif DFU-mode device at the port is the board whatever its
        PID. An application's PID names no chip: then the DFU-mode device's PID is checked.
        """
        if before.chip is None:
            return self._board()
        board = self._board(check=False)
        if board.vid != ESPRESSIF_VID:
            return self._board()
        note = (
            f"The board came back in DFU mode as {board.vid:04x}:{board.pid:04x}, not "
            f"{before.vid:04x}:{before.pid:04x}; it was flashed as the {before.chip.name} it "
            "was before DETACH."
        )
        if board.pid != before.pid and note not in self.notes:  # once, whatever the retries
            self.notes.append(note)
        return replace(board, chip=before.chip)

    def _open(self, board: Board) -> DfuInterface:
        device = self.usb.find(self.path)
        if device is None or board.interface is None:
            raise DeviceGone(f"nothing at {self.path}")
        self.address = device.address
        return DfuInterface(device, board.interface, self.options.timeout_ms, self.trace)

    def _detach(self, board: Board) -> None:
        """DETACH the runtime interface; the device leaves the bus, usually mid-request."""
        try:
            dfu = self._translated(lambda: self._open(board))
        except FlashError as error:
            if error.kind is Failure.VANISHED:
                return  # already on its way
            raise
        try:
            self._translated(dfu.claim)
            functional = board.functional
            timeout = min(functional.detach_timeout_ms, 5000) if functional else 1000
            will_detach = functional is not None and functional.will_detach
            self._note("detach", wValue=timeout, will_detach=will_detach)
            self.request = Request.DETACH
            try:
                dfu.send(Request.DETACH, timeout)
                if functional is not None and not functional.will_detach:
                    dfu.reset()
            except (DeviceGone, UsbFault):
                pass  # devices often leave before they answer (dfu-util: "error detaching")
        finally:
            dfu.close()

    def _wait_for_dfu_mode(self, before: Board) -> Board:
        """The same port, in DFU mode, within the bounded wait (polled often, not slept)."""
        started = time.monotonic()
        deadline = started + self.options.detach_wait_s
        self._note("waiting", allowance_s=self.options.detach_wait_s, poll_s=_POLL_FOR_BOARD_S)
        seen: Board | None = None
        while time.monotonic() < deadline:
            seen = board_at(self.usb, self.path)
            if seen is not None and seen.mode is Mode.DFU and seen.accessible:
                self._note("back", after_s=round(time.monotonic() - started, 3))
                return self._in_dfu_mode(before)
            self._sleep(_POLL_FOR_BOARD_S)
        self._note("not_back", last_seen=None if seen is None else seen.mode.name.lower())
        raise _not_back(self.path, seen, self.options.detach_wait_s)

    def _download(self, board: Board) -> Ending:
        dfu = self._translated(lambda: self._open(board))
        try:
            self._translated(dfu.claim)
            self.transfer = self._transfer_size(board, dfu)
            self.erases = rom.erases(self.image.entries, self.transfer)
            self.report.plan(self.erases.values())
            slow = {block: math.ceil(e.deadline_s * 1000) for block, e in self.erases.items()}
            for block, erase in self.erases.items():
                self._note("erase_allowance", block=block, address=f"0x{erase.address:x}",
                           size=erase.size, expected_s=round(erase.expected_s, 3),
                           timeout_ms=slow[block])  # fmt: skip
            steps = download(
                self.payload, self.transfer, busy_limit_ms=self._busy_limit_ms, slow=slow
            )
            wait = self._sleep if self.trace is None else self._poll_wait
            perform = self._sender(dfu)
            send_blocks = None if dfu.send_blocks is None else self._block_sender(dfu.send_blocks)
            ending = self._translated(lambda: drive(steps, perform, wait, send_blocks=send_blocks))
            self._note("ending", ending=ending.name.lower())
            if ending is Ending.WAIT_RESET:
                with contextlib.suppress(DeviceGone, UsbFault):
                    dfu.reset()
            return ending
        except FlashError as error:
            if error.kind is not Failure.VANISHED:
                cancelled = error.kind is Failure.CANCELLED
                limit = _CANCELLED_BUSY_LIMIT_MS if cancelled else _RECOVER_BUSY_LIMIT_MS
                status, settled = _recover(dfu, min(self._busy_limit_ms, limit), self._note)
                if error.status is None and status is not None:
                    error.status = status
                    error.message += f" The board reports {status.label}: {status.meaning}."
                if cancelled and not settled:
                    _left_busy(error)
            raise
        finally:
            dfu.close()

    def _transfer_size(self, board: Board, dfu: DfuInterface) -> int:
        functional = board.functional or dfu.functional_descriptor()
        if functional is not None and functional.transfer_size > 0:
            size = min(functional.transfer_size, MAX_TRANSFER_SIZE)
            self._note("transfer_size", size=size, declared=functional.transfer_size,
                       asked=board.functional is None)  # fmt: skip
            return size
        if board.chip is not None:
            self._note("transfer_size", size=ESP_TRANSFER_SIZE, declared=None)
            return ESP_TRANSFER_SIZE
        raise FlashError(
            Failure.PROTOCOL,
            f"The device at {self.path} does not say how large a block it takes "
            "(no DFU functional descriptor).",
        )

    def _sender(self, dfu: DfuInterface) -> Callable[[Step], Reply]:
        """The download's ``perform``: it stops a cancelled flash, names each request for the
        messages and counts each block for progress."""
        cancelled = self.cancel.is_set
        get_status, send = dfu.get_status, dfu.send
        answered = self.report.answered

        def perform(step: Step) -> Reply:
            if cancelled():
                raise Cancelled
            request = self.request = step.request
            if request is Request.GETSTATUS:
                reply = get_status(step.timeout_ms)
                answered(reply.state in _BUSY_STATES)
                return reply
            if request is Request.DNLOAD:
                self._on_block(step)
            send(request, step.value, step.data, step.timeout_ms)
            return None

        return perform

    def _block_sender(self, send: Callable[[Blocks], Sent]) -> Callable[[Blocks], Sent]:
        """The download's ``send_blocks`` on a route with a loop of its own for runs of blocks:
        it hands the route a progress grain of blocks at a time, so that progress and a cancel
        are seen between two, and places a failure, or an answer that ends the run, at its
        block and request for the messages, as :meth:`_sender` does for each request."""
        cancelled = self.cancel.is_set
        answered = self.report.answered
        grain = max(1, _PROGRESS_GRAIN // self.transfer)

        def send_blocks(blocks: Blocks) -> Sent:
            if self.report.erase is not None:
                self.report.erasing(None)  # the erase was the block before the run
            for part in blocks.parts(grain):
                if cancelled():
                    raise Cancelled
                self.request = Request.DNLOAD
                self.confirmed = part.offset
                self.report.advance(part.offset)
                try:
                    sent = send(part)
                except BlockFault as failed:
                    self.request = failed.request
                    self.confirmed = part.offset + failed.done * part.size
                    raise failed.fault from None
                if sent.reply is not None:
                    self.request = Request.GETSTATUS
                    self.confirmed = part.offset + sent.done * part.size
                    answered(sent.reply.state in _BUSY_STATES)
                    return Sent(part.first - blocks.first + sent.done, sent.reply)
            return Sent(blocks.block_count)

        return send_blocks

    def _on_block(self, step: Step) -> None:
        self.confirmed = step.offset
        self.report.advance(step.offset)
        if step.timeout_ms or self.report.erase is not None:
            erase = self.erases.get(step.offset // self.transfer) if step.data else None
            if erase is not self.report.erase:
                self.report.erasing(erase)
        if not step.data:
            self.report.enter(Phase.MANIFESTING)

    def _poll_wait(self, seconds: float) -> None:
        """:meth:`_sleep` out a busy board's poll timeout, written down (a traced flash)."""
        self._note("poll_wait", ms=round(seconds * 1000, 3))
        self._sleep(seconds)

    def _sleep(self, seconds: float) -> None:
        """Sleep, unless the flash is cancelled: then stop with its error."""
        if self.cancel.wait(seconds):
            raise self._error(Cancelled())

    def _left_the_bus(self, grace_s: float) -> bool:
        """Whether the board is gone (or came back as another device) after a failed request.

        The kernel fails the transfer with EIO a few milliseconds before it reports the
        disconnect, so the bus is looked at for ``grace_s`` before deciding.
        """
        deadline = time.monotonic() + grace_s
        while True:
            device = self.usb.find(self.path)
            if device is None or device.address != self.address:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_FOR_BOARD_S)

    def _translated(self, action: Callable[[], _T]) -> _T:
        try:
            return action()
        except WORDED as error:
            raise self._error(error) from None

    def _error(self, error: Exception) -> FlashError:
        """The failure, worded, with where in the download it happened."""
        total = len(self.payload)
        if self.report.phase is Phase.MANIFESTING:
            at = f"while finishing, after all {total:,} bytes"
        else:
            at = f"at byte {self.confirmed:,} of {total:,}"
        return worded(
            error,
            path=self.path,
            at=at,
            accepted=self.confirmed,
            request=self.request,
            erase=self.report.erase,
            timeout_ms=self.options.timeout_ms,
            left_the_bus=self._left_the_bus,
        )


def _not_back(path: str, seen: Board | None, waited_s: float) -> FlashError:
    """Why a board was not seen back in DFU mode after DETACH (``seen``: as it was last)."""
    if seen is not None and seen.mode is Mode.DFU and seen.access is Access.NO_DRIVER:
        return FlashError(
            Failure.NO_DRIVER,
            f"The board at {path} came back in DFU mode, but Windows has no driver for the "
            "DFU-mode device. The board stays in DFU mode: install the driver for it now, "
            "then flash again.",
            DRIVER_HINT,
        )
    if seen is not None and seen.mode is Mode.DFU:
        return FlashError(
            Failure.NO_PERMISSION,
            f"The board at {path} came back in DFU mode but cannot be opened.",
            access_hint(),
        )
    return FlashError(
        Failure.LOST,
        f"The board at {path} did not come back in DFU mode within {waited_s:g} s after DETACH.",
        "Replug it, or hold BOOT, tap RESET, release BOOT, and flash again.",
    )


def _recover(
    dfu: DfuInterface, busy_limit_ms: int, note: Callable[..., None]
) -> tuple[Status | None, bool]:
    """Best effort after a failed download: leave the board in dfuIDLE, waiting for a busy
    one ``busy_limit_ms`` at most; the error status it reported, and whether it is in
    dfuIDLE. ``note`` writes the trace."""
    seen: Status | None = None

    def perform(step: Step) -> Reply:
        nonlocal seen
        if step.request is not Request.GETSTATUS:
            dfu.send(step.request, step.value, step.data, step.timeout_ms)
            return None
        reply = dfu.get_status(step.timeout_ms)
        if reply.state is State.ERROR and seen is None:
            seen = reply.status
        return reply

    note("recover", busy_limit_ms=busy_limit_ms)
    try:
        drive(recover(busy_limit_ms), perform)
    except (DeviceGone, UsbFault, ProtocolError, BusyTooLongError) as error:
        note("recovered", idle=False, why=f"{type(error).__name__}: {error}")
        return seen, False
    note("recovered", idle=True, status=None if seen is None else seen.label)
    return seen, True


def _left_busy(error: FlashError) -> None:
    """A cancel that found the board busy and left it so says that, not "ready to flash"."""
    error.left_busy = True
    error.message = error.message.replace(
        "the board is left ready to flash again", "the board was still busy and is left so"
    )
    error.hint = "Press RESET on the board (or replug it) before you flash it again."

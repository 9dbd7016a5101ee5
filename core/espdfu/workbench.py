"""The live model the app shows, usable headless: boards, the artifact, the build, auto-flash.

It owns the hot-plug monitor, the build-folder watcher, the build runner and the flash jobs;
it takes commands (build, flash, arm, cancel, ...) from any thread and reports every change as
an :class:`Event` through one callback, which front ends (the TUI, ``espdfu watch``) render as
they are: a board's :class:`BoardView` and the :class:`Summary` say all there is to show, so a
front end never asks the model back (nor reads the disk) to draw them. It never runs two
flashes at once on one board: a newer artifact that arrives while a board is being flashed
waits, and only the latest one is kept.

Events are delivered in the order of the changes they report, whichever threads made them
(:class:`~espdfu.dispatch.Dispatcher`): the last event about a board always shows its state
now, and ``on_event`` may call back into the workbench (its own events then follow).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import rom
from .backtrace import project_elf
from .boards import Board, BoardEvent, Change, Mode, Monitor
from .build import DEFAULT_COMMAND, BuildResult, BuildRunner, BuildState
from .chips import Chip
from .config import is_port_path
from .console import Line
from .consoles import Consoles, ConsoleView
from .dfufile import DfuImage
from .dispatch import Dispatcher
from .errors import EspdfuError
from .flasher import Failure, FlashOptions, FlashResult, Phase, Progress, flash, incompatibility
from .idfbuild import project_target
from .jobs import FlashJobs
from .serialport import console_finder, port_at
from .stopping import flash_endings
from .transport import Usb, port_order
from .watch import Artifact, ArtifactWatcher

JOIN_TIMEOUT_S = 5.0
AWAY_S = 5.0
"""How long a board that leaves by a RESET may take to come back (its app's console after a
flash, download mode after its app) before it counts as unplugged: its panel stays meanwhile."""
_NO_CONSOLE_MODES = (Mode.ROM, Mode.DFU)
"""Modes whose serial port, if any, is the ROM's (the serial bootloader), not the app's."""


# --- what the model reports -------------------------------------------------------------------


@dataclass(frozen=True)
class BoardView:
    """One board as the user sees it."""

    board: Board
    present: bool = True
    label: str = ""
    armed: bool = False
    progress: Progress | None = None
    """The running flash's progress; None when no flash runs."""
    last: FlashResult | None = None
    last_at: float | None = None
    """When the last flash ended (time.time())."""
    fits: bool = False
    """The current artifact may go to this board now."""
    artifact_chip: str | None = None
    """The chip the current artifact is for (None: no usable artifact)."""
    console: ConsoleView | None = None
    """Its app's console, while it is read (None: not read: in DFU mode, flashing)."""
    away: bool = False
    """It left by what may be a RESET and is looked for (see AWAY_S)."""

    @property
    def running_app(self) -> bool:
        """Its app's console is open."""
        return self.console is not None and self.console.open

    @property
    def path(self) -> str:
        return self.board.path

    @property
    def title(self) -> str:
        return self.label or self.board.path

    @property
    def flashing(self) -> bool:
        return self.progress is not None

    @property
    def cancelled(self) -> bool:
        """The last flash was cancelled: the user's doing, not a failure; the board is ready."""
        error = self.last.error if self.last else None
        return error is not None and error.kind is Failure.CANCELLED

    @property
    def last_state(self) -> str:
        """The state a finished flash leaves: "flashed", "cancelled at byte N" or
        "failed: <reason>"."""
        last = self.last
        if last is None:
            return ""
        if last.error is None:
            return "flashed"
        if self.cancelled:
            return f"cancelled at byte {last.error.accepted:,}"
        return f"failed: {_reason(last)}"

    @property
    def state(self) -> str:
        """In words: ready, detaching, flashing 42%, flashed, cancelled at byte N, failed:
        <reason>, ..."""
        if self.progress is not None:
            if self.progress.phase is Phase.DOWNLOADING:
                return f"flashing {self.progress.fraction:.0%}"
            return self.progress.activity
        if not self.present:
            if self.console is not None and (self.running_app or self.console.problem):
                return self.console.words
            return "reset? looking for it" if self.away else "unplugged"
        if self.last is not None:
            return self.last_state
        if not self.board.accessible:
            return self.board.access.value
        if self.board.mode in (Mode.JTAG, Mode.NO_DFU):
            return "no DFU"
        return "ready"


def _reason(result: FlashResult) -> str:
    return result.error.kind.value if result.error else ""


def _reset_advice(titles: list[str]) -> str:
    """One line for a round of flashes: "Press RESET on 1-1.1 and 1-1.2 to run ..."."""
    boards = titles[0] if len(titles) == 1 else f"{', '.join(titles[:-1])} and {titles[-1]}"
    return (
        f"Press RESET on {boards} to run the new firmware: the ESP ROM does not start it by itself."
    )


def build_ending(state: BuildState) -> str:
    """What a stop did to the build that was running."""
    if state is BuildState.CANCELLED:
        return "the build was stopped"
    if state is BuildState.RUNNING:
        return "the build is still running"
    return f"the build {state.value}"


@dataclass(frozen=True)
class BuildStatus:
    state: BuildState = BuildState.IDLE
    done: int = 0
    total: int = 0
    result: BuildResult | None = None
    then_flash: bool = False


@dataclass(frozen=True)
class Summary:
    """Everything the workbench shows besides its boards."""

    artifact: Artifact | None = None
    target: str | None = None
    """The project's target as its sdkconfig says (None: not known)."""
    build: BuildStatus = BuildStatus()
    auto_flash: bool = False


class Event:
    """Base of everything the workbench reports."""


@dataclass(frozen=True)
class BoardChanged(Event):
    view: BoardView


@dataclass(frozen=True)
class BoardRemoved(Event):
    path: str


@dataclass(frozen=True)
class SummaryChanged(Event):
    """The summary as it is now; the subclass says what changed."""

    summary: Summary


class ArtifactChanged(SummaryChanged):
    @property
    def artifact(self) -> Artifact:
        assert self.summary.artifact is not None
        return self.summary.artifact


class BuildChanged(SummaryChanged):
    @property
    def status(self) -> BuildStatus:
        return self.summary.build


class AutoFlashChanged(SummaryChanged):
    @property
    def on(self) -> bool:
        return self.summary.auto_flash


@dataclass(frozen=True)
class ConsoleOutput(Event):
    """Lines a board's app printed since the last ones (batched: a front end keeps them)."""

    path: str
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class Logged(Event):
    """A line for the log: build output (``source="build"``) or what the workbench did."""

    text: str
    source: str = "espdfu"
    level: str = "info"  # info, warning, error


@dataclass(frozen=True)
class WorkbenchSettings:
    build_dir: Path
    project_dir: Path | None = None
    build_command: tuple[str, ...] = DEFAULT_COMMAND
    auto_flash: bool = False
    make_dfu: bool = True
    arm_new_boards: bool = True
    arm_only: frozenset[str] = frozenset()
    """When given, only the boards at these port paths are armed as they appear."""
    labels: dict[str, str] = field(default_factory=dict)
    flash: FlashOptions = field(default_factory=FlashOptions)
    monitor_interval_s: float = 0.5
    settle_s: float = 0.25
    consoles: bool = True
    """Read each board's app console when it has one (its USB CDC port at the board's path)."""
    console_ports: dict[str, str] = field(default_factory=dict)
    """Board (port path or label) → its console's serial port when not on its own USB: a
    device (/dev/ttyUSB0, COM5) or the USB port path of its USB-UART bridge."""
    demo_reset_s: float | None = None
    """Virtual boards only (the demo): press RESET this long after a good flash, as a user
    would, so that the app runs and its console shows."""


# --- the model ---


@dataclass
class _Port:
    """Everything the workbench knows of one USB port; it outlives the board's presence."""

    label: str = ""
    board: Board | None = None
    """The board last seen there (None: none yet)."""
    present: bool = False
    armed: bool = False
    progress: Progress | None = None
    last: FlashResult | None = None
    last_at: float | None = None
    flashed: str | None = None
    """The digest of the artifact last flashed there successfully."""
    console: ConsoleView | None = None
    away: threading.Timer | None = None
    """Running while the board is away and looked for (see AWAY_S)."""
    chip: Chip | None = None
    """The chip seen there since the board was plugged in: the application it runs after a
    RESET has descriptors (a USB console, a DFU runtime) that do not name it."""

    def view(self, image: DfuImage | None, force: bool) -> BoardView:
        """The board as the user sees it, with whether ``image`` (the usable artifact's) fits."""
        assert self.board is not None
        fits = (
            self.present and image is not None and incompatibility(self.board, image, force) is None
        )
        return BoardView(
            board=self.board,
            present=self.present,
            label=self.label,
            armed=self.armed,
            progress=self.progress,
            last=self.last,
            last_at=self.last_at,
            fits=fits,
            artifact_chip=image.chip_name if image else None,
            console=self.console,
            away=self.away is not None,
        )


class Workbench:
    """Boards by port path, the current artifact, the build and the flash jobs."""

    def __init__(
        self,
        usb_world: Usb,
        settings: WorkbenchSettings,
        *,
        save_label: Callable[[str, str], object] | None = None,
    ) -> None:
        self.usb = usb_world
        self.settings = settings
        self._save_label = save_label
        self._changes: Dispatcher[Event] = Dispatcher()
        """The model's lock: every change is made inside it, and its events go out after."""
        self._stopping = False
        """Set by stop(): no flash or build starts any more, and no event goes out once it
        returns."""
        self._ports = {path: _Port(label) for path, label in settings.labels.items()}
        self._jobs: FlashJobs[Artifact, FlashResult] = FlashJobs(
            self._flash, self._flashed, guard=self._changes, name="espdfu-job"
        )
        self._demo_resets: list[threading.Timer] = []
        self._to_reset: dict[str, str] = {}
        """Port path → title of the boards flashed in this round of flashes that wait for RESET:
        said once, when the round ends."""
        self._runner: BuildRunner | None = None
        """Our build while it runs; what it is for is in the summary's ``build.then_flash``."""
        self._summary = Summary(target=self._target(), auto_flash=settings.auto_flash)
        self.monitor = Monitor(usb_world, self._on_board_event, settings.monitor_interval_s)
        self.consoles = Consoles(
            self._console_finder,
            self._on_console,
            elf=lambda: project_elf(settings.build_dir),
        )
        self.watcher = ArtifactWatcher(
            settings.build_dir,
            self._on_artifact,
            settle_s=settings.settle_s,
            make_dfu=settings.make_dfu,
            on_note=self._on_note,
        )

    # --- life ---------------------------------------------------------------------------------

    def start(self, on_event: Callable[[Event], None]) -> None:
        """Report every change to ``on_event`` (called on the workbench's threads) from now on.

        It scans the bus and reads the dfu.bin there is before it returns. After :meth:`stop`
        it does nothing (a front end may start it on a thread of its own while it quits).
        """
        with self._changes:
            if self._stopping:
                return
            self._changes.connect(on_event)
        self.monitor.start()
        self.watcher.start()

    def stop(self) -> None:
        """Stop watching, cancel flashes and the build; every thread is joined (bounded).

        Nothing that comes in meanwhile (a board, a dfu.bin, a build's end) starts a flash,
        and no event is reported once this returns.
        """
        with self._changes:
            self._stopping = True
            self._jobs.close()
            runner = self._runner
            timers = [p.away for p in self._ports.values() if p.away] + self._demo_resets
            for timer in timers:
                timer.cancel()
        for timer in timers:
            timer.join()  # at once: cancelled
        self.consoles.close()
        self.monitor.stop()
        self.watcher.stop()
        if runner is not None and runner.running:
            runner.cancel()
            runner.wait(JOIN_TIMEOUT_S)
        self._jobs.join(JOIN_TIMEOUT_S)
        self._changes.disconnect(JOIN_TIMEOUT_S)

    def drain(self, timeout: float = JOIN_TIMEOUT_S) -> bool:
        """Wait until every change made so far has been reported to ``on_event``; whether
        all have within ``timeout`` (a script that saw the work end may want its last lines)."""
        return self._changes.drain(timeout)

    def stop_and_say(self) -> list[str]:
        """Stop (see :meth:`stop`) and say how the work that ran ended, for a line after a
        quit or a signal: ["2 flashes aborted, boards left ready to flash (1-1.1, 1-1.2)",
        "the build was stopped"]; empty when nothing ran.
        """
        with self._changes:
            flashing = self._jobs.paths()
            building = self._summary.build.state is BuildState.RUNNING
        self.stop()
        endings: dict[str, FlashResult | None] = {}
        off_the_bus = []
        with self._changes:
            for path in flashing:
                if path in self._jobs:
                    endings[path] = None
                elif self._ports[path].present:
                    endings[path] = self._ports[path].last
                else:
                    off_the_bus.append(path)
            state = self._summary.build.state
        return flash_endings(endings, off_the_bus) + ([build_ending(state)] if building else [])

    # --- what is there ------------------------------------------------------------------------

    def boards(self) -> dict[str, BoardView]:
        """The boards shown: those present, and those away in the middle of their flash."""
        with self._changes:
            return {path: self._view(path) for path in self._ports if self._shown(path)}

    @property
    def summary(self) -> Summary:
        return self._summary

    @property
    def artifact(self) -> Artifact | None:
        return self._summary.artifact

    @property
    def build_status(self) -> BuildStatus:
        return self._summary.build

    @property
    def auto_flash(self) -> bool:
        return self._summary.auto_flash

    @property
    def busy(self) -> bool:
        """A flash or a build is running (quitting now would interrupt it)."""
        with self._changes:
            return bool(len(self._jobs)) or self._summary.build.state is BuildState.RUNNING

    def compatible(self, path: str) -> bool:
        """Whether the current artifact may go to the board at ``path`` now."""
        view = self.boards().get(path)
        return view is not None and view.fits

    # --- commands (any thread) ----------------------------------------------------------------

    def build(self, then_flash: bool = False) -> None:
        """Run the build command; with ``then_flash``, flash the armed boards if it succeeds."""
        with self._changes:
            if self._stopping:
                return
            if self._summary.build.state is BuildState.RUNNING:
                self._log("A build is already running.", level="warning")
                return
            directory = self.settings.project_dir or self.settings.build_dir.parent
            runner = BuildRunner(
                self.settings.build_command,
                directory,
                on_line=self._on_build_line,
                on_progress=self._on_build_progress,
                on_done=self._on_build_done,
            )
            try:
                runner.start()
            except EspdfuError as error:
                self._log(str(error), level="error")
                return
            self._runner = runner
            self.watcher.paused = True
            self._set_build(BuildStatus(BuildState.RUNNING, then_flash=then_flash))
            self._log(f"Build started: {' '.join(self.settings.build_command)}")
            self._demo_download_mode()

    def flash(self, paths: Iterable[str]) -> list[str]:
        """Flash the current artifact to these boards now; return the ones started."""
        with self._changes:
            artifact = self._summary.artifact
            if artifact is None or not artifact.valid:
                why = "there is no dfu.bin yet" if artifact is None else artifact.problem
                self._log(f"Nothing to flash: {why}.", level="warning")
                return []
            return [path for path in paths if self._start(path, artifact, explicit=True)]

    def flash_all(self) -> list[str]:
        with self._changes:
            paths = [path for path, view in self.boards().items() if view.fits]
            artifact = self._summary.artifact
            if not paths and artifact is not None and artifact.valid:
                self._log("Nothing to flash: no board here can take this dfu.bin.", level="warning")
                return []
            return self.flash(paths)

    def flash_armed(self) -> list[str]:
        with self._changes:
            return self.flash(path for path, view in self.boards().items() if view.armed)

    def set_armed(self, path: str, armed: bool | None = None) -> None:
        """Arm or disarm a board for auto-flash (``None`` toggles)."""
        with self._changes:
            port = self._ports.get(path)
            if port is None or not self._shown(path):
                return
            port.armed = not port.armed if armed is None else armed
            self._changed(path)

    def set_auto_flash(self, on: bool) -> None:
        with self._changes:
            self._summary = replace(self._summary, auto_flash=on)
            self._changes.post(AutoFlashChanged(self._summary))
            self._log(f"Auto-flash on rebuild: {'on' if on else 'off'}.")

    def set_label(self, path: str, label: str) -> None:
        label = label.strip()
        with self._changes:
            self._ports.setdefault(path, _Port()).label = label
            if self._shown(path):
                self._changed(path)
            if self._save_label is not None:
                try:
                    self._save_label(path, label)
                except EspdfuError as error:
                    self._log(f"The label was not saved: {error}", level="error")

    def cancel(self, path: str | None = None) -> bool:
        """Cancel the flash of ``path`` if it runs, else the build; whether anything was."""
        with self._changes:
            if path is not None and self._jobs.cancel(path):
                return True
            runner = self._runner
        if runner is not None and runner.running:
            runner.cancel()
            return True
        return False

    # --- boards -------------------------------------------------------------------------------

    def _on_board_event(self, event: BoardEvent) -> None:
        board = event.board
        path = board.path
        with self._changes:
            port = self._ports.setdefault(path, _Port())
            if event.change is Change.REMOVED:
                if not port.present:
                    return
                port.present = False
                if port.last is not None and port.last.ok and path not in self._jobs:
                    self._look_for(path)  # RESET after the flash: its app is coming
                self._read_console(path)
                if self._shown(path):  # re-enumerating in its flash, or off to run its app
                    self._changed(path)
                else:
                    self._unplugged(path)
                    self._log(f"{self._title(path)} unplugged.")
                return
            new = not port.present
            if board.chip is None:
                board = replace(board, chip=port.chip)
            port.chip = board.chip
            if new and path not in self._jobs:  # a board (re)appears: armed as settings say
                port.armed = board.flashable and (
                    path in self.settings.arm_only
                    if self.settings.arm_only
                    else self.settings.arm_new_boards
                )
            port.board, port.present = board, True
            self._back(port)
            self._read_console(path)
            self._changed(path)
            if new and path not in self._jobs:
                where = f"{port.label} ({path})" if port.label else path
                self._log(f"{where}: {board.chip_name}, {board.mode.value}.")

    # --- artifacts and builds -----------------------------------------------------------------

    def _on_artifact(self, artifact: Artifact) -> None:
        target = self._target()  # read here, on the watcher's thread, not where it is shown
        with self._changes:
            self._summary = replace(self._summary, artifact=artifact, target=target)
            self._changes.post(ArtifactChanged(self._summary))
            for path in self._ports:  # whether it fits each board
                if self._shown(path):
                    self._changed(path)
            if not artifact.valid:
                self._log(f"{artifact.path} is not usable: {artifact.problem}", level="error")
                return
            image = artifact.image
            chip = image.chip_name if image else "?"
            self._log(f"New dfu.bin: {chip}, {artifact.size:,} bytes.")
            for entry in rom.slow_entries(image.entries if image else ()):
                self._log(rom.erase_note(entry))
            if self._runner is None:  # after our own build, _on_build_done decides
                self._artifact_ready(artifact, then_flash=False)

    def _artifact_ready(self, artifact: Artifact, *, then_flash: bool) -> None:
        """The one rule for a new artifact: after a build with ``then_flash``, to every armed
        board; with auto-flash on, to the armed boards that do not hold it and will not after
        their running flash (a rebuild may come back to what a board held before)."""
        if then_flash:
            self.flash_armed()
            return
        if not self._summary.auto_flash:
            return
        for path, view in self.boards().items():
            port = self._ports[path]
            holds = path not in self._jobs and port.flashed == artifact.digest
            if view.armed and not holds:
                self._start(path, artifact, explicit=False)

    def _on_build_line(self, line: str) -> None:
        with self._changes:
            self._log(line, source="build")

    def _on_build_progress(self, done: int, total: int) -> None:
        with self._changes:
            self._set_build(replace(self._summary.build, done=done, total=total))

    def _on_build_done(self, result: BuildResult) -> None:
        # What the build left is read while the build still counts as running (the watcher
        # reports it under its own lock, so not under ours): a new artifact is reported, and
        # what to flash after our own build is decided here, once.
        artifact = self.watcher.refresh() if result.ok else None
        with self._changes:
            then_flash = self._summary.build.then_flash
            self._runner = None
            self.watcher.paused = False
            self._set_build(replace(self._summary.build, state=result.state, result=result))
            if not result.ok:
                what = "cancelled" if result.state is BuildState.CANCELLED else "failed"
                self._log(f"Build {what}: nothing is flashed.", level="error")
                for line in result.error_lines:
                    self._log(line, source="build", level="error")
                return
            self._log(f"Build finished in {result.seconds:.1f} s.")
            if artifact is None or not artifact.valid:
                self._log("The build made no usable dfu.bin.", level="error")
                return
            self._artifact_ready(artifact, then_flash=then_flash)

    def _set_build(self, status: BuildStatus) -> None:
        self._summary = replace(self._summary, build=status)
        self._changes.post(BuildChanged(self._summary))

    def _target(self) -> str | None:
        settings = self.settings
        return project_target(settings.project_dir or settings.build_dir.parent, settings.build_dir)

    # --- flash jobs ---------------------------------------------------------------------------

    def _start(self, path: str, artifact: Artifact, explicit: bool) -> bool:
        """Start flashing ``path``; a running job keeps the newest other artifact for afterwards.

        Inside the model's lock, so that checking the board and registering its job are one step.
        """
        image = artifact.image
        assert image is not None
        with self._changes:
            port = self._ports.get(path)
            if self._stopping or port is None or port.board is None:
                return False
            if not port.present and path not in self._jobs:  # away in its flash: it may wait
                return False
            problem = incompatibility(port.board, image, self.settings.flash.force)
            if problem is not None:  # said each time, so that no board is passed over unsaid
                level = "warning" if explicit else "info"
                self._log(f"{self._title(path)}: not flashed: {problem.message}", level=level)
                return False
            running = self._jobs.item(path)
            if running is not None and running.digest == artifact.digest:
                self._jobs.forget_waiting(path)  # the latest is the one being flashed
                if explicit:
                    self._log(f"{self._title(path)} is being flashed already.", level="warning")
                return False
            if not self._jobs.start(path, artifact):
                return False  # it waits for the running flash (latest wins)
            self._read_console(path)
            port.progress = Progress(path, Phase.CONNECTING, 0, len(image.payload))
            self._changed(path)
            return True

    def _flash(self, path: str, artifact: Artifact, cancel: threading.Event) -> FlashResult:
        """A job, on its own thread."""
        assert artifact.image is not None
        self.consoles.release(path)  # a console port is never held across a flash
        return flash(
            self.usb,
            path,
            artifact.image,
            options=self.settings.flash,
            progress=self._on_progress,
            cancel=cancel,
        )

    def _flashed(
        self, path: str, artifact: Artifact, result: FlashResult, waiting: Artifact | None
    ) -> None:
        """A job ended (inside the model's lock): record it, then start what waited."""
        port = self._ports[path]
        port.progress, port.last, port.last_at = None, result, time.time()
        self._read_console(path)
        if result.ok:
            port.flashed = artifact.digest
            self._log(f"{self._title(path)}: {result.headline}")  # RESET advice: once, below
            if result.next_step:
                self._to_reset[path] = self._title(path)
                self._press_reset_later(path)
        else:
            cancelled = result.error is not None and result.error.kind is Failure.CANCELLED
            self._log(
                f"{self._title(path)}: {result.message}", level="info" if cancelled else "error"
            )
        if port.present:
            self._changed(path)
            if waiting is not None:
                self._start(path, waiting, explicit=False)
        else:  # it left during the flash and has not come back
            self._unplugged(path)
        if not len(self._jobs) and self._to_reset:  # the last flash of the round
            titles = [self._to_reset[p] for p in sorted(self._to_reset, key=port_order)]
            self._log(_reset_advice(titles))
            self._to_reset.clear()

    def _on_progress(self, progress: Progress) -> None:
        with self._changes:
            port = self._ports.get(progress.path)
            if port is None or progress.path not in self._jobs:
                return
            port.progress = progress
            self._changed(progress.path)

    def _on_note(self, text: str) -> None:
        with self._changes:
            self._log(text, level="warning")

    # --- consoles -----------------------------------------------------------------------------

    def _read_console(self, path: str) -> None:
        """Read the board's console when its app may be running: not in the ROM's download or
        DFU mode, not while it is flashed. Inside the model's lock."""
        port = self._ports[path]
        board = port.board
        wanted = (
            self.settings.consoles
            and not self._stopping
            and board is not None
            and path not in self._jobs
            and not (port.present and board.mode in _NO_CONSOLE_MODES)
        )
        self.consoles.read(path, wanted)
        if not wanted:
            port.console = None
        elif port.console is None:
            port.console = ConsoleView()

    def _console_finder(self, path: str) -> Callable[[], str | None]:
        """Where the console of the board at ``path`` is: the serial port the settings give it
        (by port path or by its label), else its app's own USB port at ``path``."""
        ports = self.settings.console_ports
        label = self._ports[path].label
        given = ports.get(path) or (ports.get(label) if label else None)
        if given is None:
            return console_finder(path, self.usb.sim)
        if is_port_path(given):  # the USB-UART bridge's place: its port, whatever its name
            return lambda: port_at(given)
        return lambda: given

    def _on_console(self, path: str, view: ConsoleView, lines: tuple[Line, ...]) -> None:
        """A batch from the consoles' thread."""
        with self._changes:
            port = self._ports.get(path)
            if self._stopping or port is None or port.console is None:
                return  # no longer read (a flash started): what it said before is moot
            if lines:  # before the state they brought about
                self._changes.post(ConsoleOutput(path, lines))
            shown = self._shown(path)
            port.console = view
            if view.open:
                self._back(port)
                if not shown:
                    self._log(f"{self._title(path)}: its app's console is on {view.device}.")
            elif shown and not self._shown(path):
                self._look_for(path)  # RESET into download mode, or the cable
            if self._shown(path):
                self._changed(path)

    def _look_for(self, path: str) -> None:
        """Keep the board shown for :data:`AWAY_S` while it is away, as after a RESET."""
        port = self._ports[path]
        if not self.settings.consoles or self._stopping or port.away is not None:
            return
        port.away = threading.Timer(AWAY_S, self._not_back, (path,))
        port.away.daemon = True
        port.away.start()

    def _not_back(self, path: str) -> None:
        """The board did not come back, in any mode: it was unplugged."""
        with self._changes:
            port = self._ports[path]
            if port.away is None or self._stopping:
                return
            port.away = None
            if not self._shown(path):
                self._unplugged(path)
                self._log(f"{self._title(path)} unplugged.")

    def _unplugged(self, path: str) -> None:
        """The board is no longer shown: whatever comes to its port next may be another."""
        self._ports[path].chip = None
        self._changes.post(BoardRemoved(path))

    def _press_reset_later(self, path: str) -> None:
        """The demo's virtual finger on RESET (see ``demo_reset_s``)."""
        delay = self.settings.demo_reset_s
        if delay is None or self.usb.sim is None:
            return
        timer = threading.Timer(delay, self._demo_reset, (path,))
        timer.daemon = True
        self._demo_resets = [t for t in self._demo_resets if t.is_alive()] + [timer]
        timer.start()

    def _demo_reset(self, path: str) -> None:
        assert self.usb.sim is not None
        board = self.usb.sim.boards.get(path)
        with self._changes:
            port = self._ports[path]
            if self._stopping or board is None or path in self._jobs or not port.present:
                return
            self._log(f"Demo: RESET tapped on {self._title(path)} for you, to run its new app.")
        board.press_reset()

    def _demo_download_mode(self) -> None:
        """The demo's finger again, as a build starts: boards running an app without a DFU
        runtime go back to download mode (BOOT held, RESET tapped) for the flash after it."""
        if self.settings.demo_reset_s is None or self.usb.sim is None:
            return
        for path, port in self._ports.items():
            board = self.usb.sim.boards.get(path)
            if board is not None and not port.present and self._shown(path):
                self._log(f"Demo: BOOT held and RESET tapped on {self._title(path)} for you.")
                board.press_reset(boot=True)

    @staticmethod
    def _back(port: _Port) -> None:
        """It is there again (or the workbench stops): no longer looked for."""
        if port.away is not None:
            port.away.cancel()
            port.away = None

    # --- views and events ---------------------------------------------------------------------

    def _shown(self, path: str) -> bool:
        port = self._ports[path]
        console = port.console
        there = console is not None and (console.open or bool(console.problem))  # or held
        away = port.away is not None or there
        return port.board is not None and (port.present or path in self._jobs or away)

    def _view(self, path: str) -> BoardView:
        artifact = self._summary.artifact
        image = artifact.image if artifact is not None and artifact.valid else None
        return self._ports[path].view(image, self.settings.flash.force)

    def _title(self, path: str) -> str:
        return self._ports[path].label or path

    def _changed(self, path: str) -> None:
        """Report the board's state now."""
        self._changes.post(BoardChanged(self._view(path)))

    def _log(self, text: str, *, source: str = "espdfu", level: str = "info") -> None:
        self._changes.post(Logged(text, source, level))

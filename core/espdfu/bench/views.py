"""What the workbench reports: each board's view, the summary, and the events that carry them.

A front end draws what these carry and never asks the model back: a :class:`BoardView` says
all there is to show of a board, a :class:`Summary` all the rest.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..consoles.lines import Line
from ..dispatch import Dispatcher
from ..flashing.flasher import Failure, FlashResult, Phase, Progress
from ..usb.boards import Board, Mode
from .artifacts import Artifact
from .build import BuildResult, BuildState
from .feed import ConsoleView
from .verify import Check

IN_DFU_MODE = (Phase.DOWNLOADING, Phase.ERASING, Phase.MANIFESTING)
"""The phases of a flash in which the flasher has the board open in DFU mode."""


class Life(enum.Enum):
    """Where a port is in its life (:mod:`espdfu.bench.port` moves it on)."""

    ABSENT = "absent"
    """Not shown: nothing seen here yet, or what was here was unplugged."""
    PRESENT = "present"
    """On the bus, no flash running: its mode says how (ROM download, DFU, an app)."""
    FLASHING = "flashing"
    """Our flash runs; the board may be off the bus while DETACH takes it to DFU mode."""
    APP = "app"
    """Off the bus, its app's console there (open, or held by another program)."""
    AWAY = "away"
    """Off the bus after what may be a RESET, looked for until a deadline."""


@dataclass(frozen=True)
class BoardView:
    """One board as the user sees it."""

    board: Board
    """As last seen on the bus (its chip carried over from download mode while it stays)."""
    life: Life = Life.PRESENT
    present: bool = True
    """On the bus now."""
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
    check: Check | None = None
    """Whether it runs the build last flashed here, as its console says (None: nothing yet)."""
    bridged: bool = False
    """Its USB-UART bridge resets it: into download mode before a flash, into its app after."""

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
        return self.life is Life.FLASHING

    @property
    def away(self) -> bool:
        """It left by what may be a RESET and is looked for."""
        return self.life is Life.AWAY

    @property
    def troubled(self) -> bool:
        """Its console says it is in trouble: panicked, crashing at boot, cannot boot, power
        trouble."""
        console = self.console
        return console is not None and console.state.troubled

    @property
    def warned(self) -> bool:
        """Its app runs with trouble behind it the user has not looked at (a panic it rebooted
        from, a task-watchdog warning)."""
        console = self.console
        return console is not None and console.warned

    @property
    def mode_words(self) -> str:
        """How the board is here now: "ROM download", "DFU", "app (DFU runtime)"; during a
        flash, "ROM download → DFU" while DETACH takes it to DFU mode; "app" when only its
        console shows it; "off the bus" while it is looked for."""
        mode = self.board.mode
        if self.flashing:
            progress = self.progress
            if progress is not None and progress.phase is Phase.RESETTING:
                return f"app → {Mode.ROM.value}"  # its bridge resets it into download mode
            if progress is not None and progress.phase in IN_DFU_MODE:
                return Mode.DFU.value  # the flasher has it open in DFU mode
            if not self.present and mode is not Mode.DFU:
                return f"{mode.value} → {Mode.DFU.value}"
            return mode.value
        if self.present:
            return mode.value
        return "app" if self.life is Life.APP else "off the bus"

    @property
    def console_wait(self) -> str:
        """Why its app's console is not read now, and what brings it (empty: it is read)."""
        if self.console is not None:
            return ""
        if self.flashing:
            return "it is being flashed: its app's console comes after the flash and a RESET"
        if self.present and self.board.mode in (Mode.ROM, Mode.DFU):
            mode = "ROM download" if self.board.mode is Mode.ROM else "DFU"
            return f"it is in {mode} mode: its app's console comes after a RESET"
        return "its console is not read (consoles are off)"

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
        return f"failed: {last.error.kind.value}"

    @property
    def state(self) -> str:
        """In words: ready, detaching, flashing 42%, flashed, cancelled at byte N, failed:
        <reason>, app running, reset? looking for it, ..."""
        if self.progress is not None:
            if self.progress.phase is Phase.DOWNLOADING:
                return f"flashing {self.progress.fraction:.0%}"
            return self.progress.activity
        if self.life is Life.APP and self.console is not None:
            return self.console.words
        if self.life is Life.AWAY:
            return "reset? looking for it"
        if not self.present:
            return "unplugged"
        if self.last is not None:
            return self.last_state
        if not self.board.accessible:
            return self.board.access.value
        if self.board.mode in (Mode.JTAG, Mode.NO_DFU):
            return "no DFU"
        return "ready"


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
    unmade: str = ""
    """Why the build folder gives no dfu.bin, when the watcher knows (a missing image, in
    ``espdfu mkdfu``'s words); said instead of "no dfu.bin yet"."""
    target: str | None = None
    """The project's target as its sdkconfig says (None: not known)."""
    build: BuildStatus = BuildStatus()
    auto_flash: bool = False
    flashes: int = 0
    """Boards being flashed now."""

    @property
    def busy(self) -> bool:
        """A flash or a build runs (quitting now would stop it)."""
        return bool(self.flashes) or self.build.state is BuildState.RUNNING


def build_ending(state: BuildState) -> str:
    """What a stop did to the build that was running."""
    if state is BuildState.CANCELLED:
        return "the build was stopped"
    if state is BuildState.RUNNING:
        return "the build is still running"
    return f"the build {state.value}"


def reset_advice(titles: list[str]) -> str:
    """One line for a round of flashes: "Press RESET on 1-1.1 and 1-1.2 to run ..."."""
    boards = titles[0] if len(titles) == 1 else f"{', '.join(titles[:-1])} and {titles[-1]}"
    return (
        f"Press RESET on {boards} to run the new firmware: the ESP ROM does not start it by itself."
    )


# --- the events -------------------------------------------------------------------------------


class BenchEvent:
    """Base of everything the workbench reports."""


@dataclass(frozen=True)
class BoardChanged(BenchEvent):
    view: BoardView


@dataclass(frozen=True)
class BoardRemoved(BenchEvent):
    path: str


@dataclass(frozen=True)
class SummaryChanged(BenchEvent):
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
class ConsoleOutput(BenchEvent):
    """Lines a board's app printed since the last ones (batched: a front end keeps them)."""

    path: str
    lines: tuple[Line, ...]


class Stopped(BenchEvent):
    """The workbench stopped: the last event of all."""


@dataclass(frozen=True)
class Logged(BenchEvent):
    """A line for the log: build output (``source="build"``) or what the workbench did."""

    text: str
    source: str = "espdfu"
    level: str = "info"  # info, warning, error


class Outbox(Dispatcher[BenchEvent]):
    """The workbench's lock and its events' way out (see :class:`~espdfu.dispatch.Dispatcher`),
    with the log's lines."""

    def log(self, text: str, *, source: str = "espdfu", level: str = "info") -> None:
        with self:
            self.post(Logged(text, source, level))

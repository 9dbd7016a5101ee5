"""The live model the app shows, usable headless: boards, the artifact, the build, auto-flash.

It owns the hot-plug monitor, the build-folder watcher, the build runner and one flash job per
board; it takes commands (build, flash, arm, cancel, ...) from any thread and reports every
change as an :class:`Event` through one callback, which front ends (the TUI, ``espdfu watch``)
turn into screen updates or lines. It never runs two flashes at once on one board: a newer
artifact that arrives while a board is being flashed waits, and only the latest one is kept.

Events are delivered in the order of the changes they report, whichever threads made them: each
is queued under the model's lock as the change is made, and the queue is emptied outside the
lock by one thread at a time. So the last event about a board always shows its state now, and
``on_event`` may call back into the workbench (its own events then follow).
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from . import rom
from .boards import Board, BoardEvent, Change, Mode, Monitor
from .build import BuildResult, BuildRunner, BuildState
from .errors import EspdfuError
from .flasher import Failure, FlashOptions, FlashResult, Phase, Progress, flash, incompatibility
from .stopping import flash_endings
from .transport import Usb, port_order
from .watch import Artifact, ArtifactWatcher

JOIN_TIMEOUT_S = 5.0
_P = ParamSpec("_P")
_R = TypeVar("_R")


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
            return "unplugged"
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


@dataclass(frozen=True)
class BuildStatus:
    state: BuildState = BuildState.IDLE
    done: int = 0
    total: int = 0
    result: BuildResult | None = None
    then_flash: bool = False


class Event:
    """Base of everything the workbench reports."""


@dataclass(frozen=True)
class BoardChanged(Event):
    view: BoardView


@dataclass(frozen=True)
class BoardRemoved(Event):
    path: str


@dataclass(frozen=True)
class ArtifactChanged(Event):
    artifact: Artifact


@dataclass(frozen=True)
class BuildChanged(Event):
    status: BuildStatus


@dataclass(frozen=True)
class AutoFlashChanged(Event):
    on: bool


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
    build_command: tuple[str, ...] = ("idf.py", "dfu")
    auto_flash: bool = False
    make_dfu: bool = True
    arm_new_boards: bool = True
    arm_only: frozenset[str] = frozenset()
    """When given, only the boards at these port paths are armed as they appear."""
    labels: dict[str, str] = field(default_factory=dict)
    flash: FlashOptions = field(default_factory=FlashOptions)
    monitor_interval_s: float = 0.5
    settle_s: float = 0.25


# --- the model --------------------------------------------------------------------------------


def _delivers(
    method: Callable[Concatenate[Workbench, _P], _R],
) -> Callable[Concatenate[Workbench, _P], _R]:
    """The method's events go to ``on_event`` when it returns; never call it under the lock."""

    def delivering(self: Workbench, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        finally:
            self._deliver()

    functools.update_wrapper(delivering, method)
    return delivering


@dataclass
class _Job:
    artifact: Artifact
    cancel: threading.Event
    thread: threading.Thread


class Workbench:
    """Boards keyed by port path, the current artifact, the build and the flash jobs."""

    def __init__(
        self,
        usb_world: Usb,
        settings: WorkbenchSettings,
        *,
        save_label: Callable[[str, str], object] | None = None,
    ) -> None:
        self.usb = usb_world
        self.settings = settings
        self._emit: Callable[[Event], None] = lambda event: None
        self._save_label = save_label
        self._lock = threading.RLock()
        self._outbox: deque[Event] = deque()
        self._deliverer: threading.Thread | None = None
        """The thread handing events to on_event now, if any."""
        self._delivered = threading.Condition(self._lock)
        self._stopping = False
        """Set by stop(): no flash starts any more, and no event goes out once it returns."""
        self._views: dict[str, BoardView] = {}
        self._jobs: dict[str, _Job] = {}
        self._pending: dict[str, Artifact] = {}
        self._flashed: dict[str, str] = {}
        """The digest each board was last flashed with successfully."""
        self._remembered: dict[str, tuple[FlashResult, float]] = {}
        self._to_reset: dict[str, str] = {}
        """Port path → title of the boards flashed in this round of flashes that wait for RESET:
        said once, when the round ends."""
        self._labels = dict(settings.labels)
        self._auto_flash = settings.auto_flash
        self._build = BuildStatus()
        """An artifact that arrived while our build ran: it counts once the build succeeds."""
        self._artifact: Artifact | None = None
        self.monitor = Monitor(usb_world, self._on_board_event, settings.monitor_interval_s)
        self.watcher = ArtifactWatcher(
            settings.build_dir,
            self._on_artifact,
            settle_s=settings.settle_s,
            make_dfu=settings.make_dfu,
            on_note=self._on_note,
        )
        self._runner: BuildRunner | None = None

    # --- life ---------------------------------------------------------------------------------

    def start(self, on_event: Callable[[Event], None]) -> None:
        """Report every change to ``on_event`` (called on the workbench's threads) from now on."""
        self._emit = on_event
        self.monitor.start()
        self.watcher.start()

    def stop(self) -> None:
        """Stop watching, cancel flashes and the build; every thread is joined (bounded).

        Nothing that comes in meanwhile (a board, a dfu.bin, a build's end) starts a flash,
        and no event is reported once this returns.
        """
        with self._lock:
            self._stopping = True
        self.monitor.stop()
        self.watcher.stop()
        with self._lock:
            jobs = list(self._jobs.values())
            runner = self._runner
        for job in jobs:
            job.cancel.set()
        if runner is not None and runner.running:
            runner.cancel()
            runner.wait(JOIN_TIMEOUT_S)
        for job in jobs:
            job.thread.join(JOIN_TIMEOUT_S)
        self._deliver()
        with self._delivered:  # a flash that ended just before may still be reporting it
            self._delivered.wait_for(
                lambda: self._deliverer in (None, threading.current_thread()), JOIN_TIMEOUT_S
            )
            self._emit = lambda event: None
            self._outbox.clear()

    def stop_and_say(self) -> list[str]:
        """Stop (see :meth:`stop`) and say how the work that ran ended, for a line after a
        quit or a signal: ["2 flashes aborted, boards left ready to flash (1-1.1, 1-1.2)",
        "the build was stopped"]; empty when nothing ran.
        """
        with self._lock:
            flashing = list(self._jobs)
            building = self._build.state is BuildState.RUNNING
        self.stop()
        endings: dict[str, FlashResult | None] = {}
        off_the_bus = []  # a board's view goes when its flash ends while it is away
        with self._lock:
            for path in flashing:
                view = self._views.get(path)
                if view is None:
                    off_the_bus.append(path)
                else:
                    endings[path] = None if view.flashing else view.last
            state = self._build.state
        parts = flash_endings(endings)
        if off_the_bus:
            parts.append(
                f"ended with the board off the bus: {', '.join(off_the_bus)} (see the log)"
            )
        if building:
            parts.append(
                "the build was stopped"
                if state is BuildState.CANCELLED
                else "the build is still running"
                if state is BuildState.RUNNING
                else f"the build {state.value}"
            )
        return parts

    # --- what is there ------------------------------------------------------------------------

    def boards(self) -> dict[str, BoardView]:
        with self._lock:
            return dict(self._views)

    @property
    def artifact(self) -> Artifact | None:
        return self._artifact

    @property
    def build_status(self) -> BuildStatus:
        return self._build

    @property
    def auto_flash(self) -> bool:
        return self._auto_flash

    @property
    def busy(self) -> bool:
        """A flash or a build is running (quitting now would interrupt it)."""
        with self._lock:
            return bool(self._jobs) or self._build.state is BuildState.RUNNING

    def compatible(self, path: str) -> bool:
        """Whether the current artifact may go to the board at ``path`` now."""
        artifact = self._artifact
        view = self._views.get(path)
        return (
            view is not None
            and view.present
            and artifact is not None
            and artifact.image is not None
            and artifact.valid
            and incompatibility(view.board, artifact.image, self.settings.flash.force) is None
        )

    # --- commands (any thread) ----------------------------------------------------------------

    @_delivers
    def build(self, then_flash: bool = False) -> None:
        """Run the build command; with ``then_flash``, flash the armed boards if it succeeds."""
        with self._lock:
            if self._stopping:
                return
            if self._build.state is BuildState.RUNNING:
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

    @_delivers
    def flash(self, paths: Iterable[str]) -> list[str]:
        """Flash the current artifact to these boards now; return the ones started."""
        with self._lock:
            artifact = self._artifact
            if artifact is None or not artifact.valid:
                why = "there is no dfu.bin yet" if artifact is None else artifact.problem
                self._log(f"Nothing to flash: {why}.", level="warning")
                return []
            return [path for path in paths if self._start(path, artifact, explicit=True)]

    def flash_all(self) -> list[str]:
        paths = [path for path in self.boards() if self.compatible(path)]
        artifact = self._artifact
        if not paths and artifact is not None and artifact.valid:
            with self._lock:
                self._log("Nothing to flash: no board here can take this dfu.bin.", level="warning")
            self._deliver()
            return []
        return self.flash(paths)

    def flash_armed(self) -> list[str]:
        return self.flash([path for path, view in self.boards().items() if view.armed])

    @_delivers
    def set_armed(self, path: str, armed: bool | None = None) -> None:
        """Arm or disarm a board for auto-flash (``None`` toggles)."""
        with self._lock:
            view = self._views.get(path)
            if view is None:
                return
            view = replace(view, armed=not view.armed if armed is None else armed)
            self._show(view)

    @_delivers
    def set_auto_flash(self, on: bool) -> None:
        with self._lock:
            self._auto_flash = on
            self._post(AutoFlashChanged(on))
            self._log(f"Auto-flash on rebuild: {'on' if on else 'off'}.")

    @_delivers
    def set_label(self, path: str, label: str) -> None:
        label = label.strip()
        with self._lock:
            self._labels[path] = label
            view = self._views.get(path)
            if view is not None:
                self._show(replace(view, label=label))
        if self._save_label is not None:
            try:
                self._save_label(path, label)
            except EspdfuError as error:
                self._log(f"The label was not saved: {error}", level="error")

    def cancel(self, path: str | None = None) -> bool:
        """Cancel the flash of ``path`` if it runs, else the build; whether anything was."""
        with self._lock:
            job = self._jobs.get(path) if path else None
            self._pending.pop(path or "", None)
            runner = self._runner if job is None else None
        if job is not None:
            job.cancel.set()
            return True
        if runner is not None and runner.running:
            runner.cancel()
            return True
        return False

    # --- boards -------------------------------------------------------------------------------

    @_delivers
    def _on_board_event(self, event: BoardEvent) -> None:
        board = event.board
        with self._lock:
            view = self._views.get(board.path)
            if event.change is Change.REMOVED:
                if view is None:
                    return
                if board.path in self._jobs:  # re-enumerating in the middle of its flash
                    self._show(replace(view, present=False))
                    return
                del self._views[board.path]
                self._post(BoardRemoved(board.path))
                self._log(f"{view.title} unplugged.")
                return
            new = view is None or not view.present
            view = self._new_view(board) if view is None else replace(view, board=board)
            self._show(replace(view, present=True))
            if new and board.path not in self._jobs:
                where = f"{view.label} ({board.path})" if view.label else board.path
                self._log(f"{where}: {board.chip_name}, {board.mode.value}.")

    def _new_view(self, board: Board) -> BoardView:
        last = self._remembered.get(board.path)
        return BoardView(
            board=board,
            label=self._labels.get(board.path, ""),
            armed=board.flashable
            and (
                board.path in self.settings.arm_only
                if self.settings.arm_only
                else self.settings.arm_new_boards
            ),
            last=last[0] if last else None,
            last_at=last[1] if last else None,
        )

    # --- artifacts and builds -----------------------------------------------------------------

    @_delivers
    def _on_artifact(self, artifact: Artifact) -> None:
        with self._lock:
            self._artifact = artifact
            self._post(ArtifactChanged(artifact))
            if not artifact.valid:
                self._log(f"{artifact.path} is not usable: {artifact.problem}", level="error")
                return
            building = self._build.state is BuildState.RUNNING
            image = artifact.image
            chip = image.chip_name if image else "?"
            self._log(f"New dfu.bin: {chip}, {artifact.size:,} bytes.")
            for entry in rom.slow_entries(image.entries if image else ()):
                self._log(rom.erase_note(entry))
            if not building and self._auto_flash:
                self._auto_flash_to_armed(artifact)

    def _auto_flash_to_armed(self, artifact: Artifact) -> None:
        """Flash ``artifact`` to the armed boards that do not hold it and will not after their
        running flash (a rebuild may come back to what a board held before)."""
        with self._lock:
            for path, view in self._views.items():
                holds = path not in self._jobs and self._flashed.get(path) == artifact.digest
                if view.armed and not holds:
                    self._start(path, artifact, explicit=False)

    @_delivers
    def _on_build_line(self, line: str) -> None:
        self._log(line, source="build")

    @_delivers
    def _on_build_progress(self, done: int, total: int) -> None:
        with self._lock:
            self._set_build(replace(self._build, done=done, total=total))

    @_delivers
    def _on_build_done(self, result: BuildResult) -> None:
        # What the build left is read while the build still counts as running, so that a new
        # artifact is reported without being auto-flashed: what to flash after our own build is
        # decided here alone, once. No lock held: the watcher reports under its own.
        artifact = self.watcher.refresh() if result.ok else None
        with self._lock:
            status = self._build
            self.watcher.paused = False
            self._set_build(replace(status, state=result.state, result=result))
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
        if status.then_flash:
            self.flash_armed()
        elif self._auto_flash:
            self._auto_flash_to_armed(artifact)

    def _set_build(self, status: BuildStatus) -> None:
        with self._lock:
            self._build = status
            self._post(BuildChanged(status))

    # --- flash jobs ---------------------------------------------------------------------------

    def _start(self, path: str, artifact: Artifact, explicit: bool) -> bool:
        """Start flashing ``path``; a running job keeps the newest other artifact for afterwards.

        Called under the lock, so that checking the board and registering its job are one step.
        """
        image = artifact.image
        assert image is not None
        with self._lock:
            view = self._views.get(path)
            if self._stopping or view is None or not view.present:
                return False
            problem = incompatibility(view.board, image, self.settings.flash.force)
            if problem is not None:  # said each time, so that no board is passed over unsaid
                level = "warning" if explicit else "info"
                self._log(f"{view.title}: not flashed: {problem.message}", level=level)
                return False
            running = self._jobs.get(path)
            if running is not None:
                if running.artifact.digest != artifact.digest:
                    self._pending[path] = artifact  # latest wins
                else:  # the latest is the one being flashed: drop any older one queued
                    self._pending.pop(path, None)
                    if explicit:
                        self._log(f"{view.title} is being flashed already.", level="warning")
                return False
            cancel = threading.Event()
            thread = threading.Thread(
                target=self._run_job, args=(path, artifact, cancel), daemon=True,
                name=f"espdfu-job-{path}",
            )  # fmt: skip
            self._jobs[path] = _Job(artifact, cancel, thread)
            self._show(
                replace(view, progress=Progress(path, Phase.CONNECTING, 0, len(image.payload)))
            )
            thread.start()
            return True

    @_delivers
    def _run_job(self, path: str, artifact: Artifact, cancel: threading.Event) -> None:
        image = artifact.image
        assert image is not None
        result = flash(
            self.usb,
            path,
            image,
            options=self.settings.flash,
            progress=self._on_progress,
            cancel=cancel,
        )
        now = time.time()
        with self._lock:
            del self._jobs[path]
            self._remembered[path] = (result, now)
            if result.ok:
                self._flashed[path] = artifact.digest
            pending = self._pending.pop(path, None)
            view = self._views.get(path)
            title = view.title if view else path
            if result.ok:  # the RESET advice is the same for every board: said once, below
                self._log(f"{title}: {result.headline}")
                if result.next_step:
                    self._to_reset[path] = title
            else:
                cancelled = result.error is not None and result.error.kind is Failure.CANCELLED
                self._log(f"{title}: {result.message}", level="info" if cancelled else "error")
            if view is not None:
                self._show(replace(view, progress=None, last=result, last_at=now))
                if not view.present:  # it left during the flash and has not come back
                    del self._views[path]
                    self._post(BoardRemoved(path))
                elif pending is not None and not cancel.is_set():
                    # Taken over in the same step, so that no artifact can slip in between.
                    self._start(path, pending, explicit=False)
            if not self._jobs and self._to_reset:  # the last flash of the round
                titles = [self._to_reset[p] for p in sorted(self._to_reset, key=port_order)]
                self._log(_reset_advice(titles))
                self._to_reset.clear()

    @_delivers
    def _on_progress(self, progress: Progress) -> None:
        with self._lock:
            view = self._views.get(progress.path)
            if view is None or progress.path not in self._jobs:
                return
            self._show(replace(view, progress=progress))

    @_delivers
    def _on_note(self, text: str) -> None:
        self._log(text, level="warning")

    # --- events -------------------------------------------------------------------------------

    def _show(self, view: BoardView) -> None:
        """Make ``view`` the board's state, and report it."""
        with self._lock:
            self._views[view.path] = view
            self._post(BoardChanged(view))

    def _log(self, text: str, *, source: str = "espdfu", level: str = "info") -> None:
        self._post(Logged(text, source, level))

    def _post(self, event: Event) -> None:
        """Queue ``event``; it is delivered by :meth:`_deliver`, in the order posted."""
        with self._lock:
            self._outbox.append(event)

    def _deliver(self) -> None:
        """Hand the queued events to ``on_event``, outside the lock, one thread at a time.

        A thread that finds another delivering leaves its events to it: they are queued behind
        the ones being delivered, so the order holds and no thread waits for another's callback.
        """
        with self._lock:
            if self._deliverer is not None:
                return
            self._deliverer = threading.current_thread()
        try:
            while True:
                with self._lock:
                    if not self._outbox:  # seen empty and given up in one step: none is left
                        self._end_delivery()
                        return
                    event = self._outbox.popleft()
                    emit = self._emit
                emit(event)
        except BaseException:
            with self._lock:
                self._end_delivery()
            raise

    def _end_delivery(self) -> None:
        self._deliverer = None
        self._delivered.notify_all()

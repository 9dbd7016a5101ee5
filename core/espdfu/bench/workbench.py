"""The live model the app shows, usable headless: boards, the artifact, the build, auto-flash.

The workbench routes what happens (the hot-plug monitor, the build-folder watcher, the build,
the flash jobs, the consoles) to the one :class:`~espdfu.bench.port.Port` of each USB port,
which decides, and does what the port asks (show a board, say a line, read its console, look
for it). It takes commands (build, flash, arm, cancel, ...) from any thread and reports every
change as a :class:`~espdfu.bench.views.BenchEvent` through its subscribers, which front ends
(the TUI, ``espdfu watch``, the demo's finger) render as they are: a board's view and the
summary say all there is to show, so a front end never asks the model back. It never runs two
flashes at once on one board: a newer artifact that comes while a board is flashed waits, and
only the latest is kept.

Events are delivered in the order of the changes they report, whichever threads made them
(:class:`~espdfu.dispatch.Dispatcher`): the last event about a board always shows its
state now, and a subscriber may call back into the workbench (its own events then follow).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from ..errors import EspdfuError
from ..files.dfufile import DfuImage
from ..files.idfbuild import project_target
from ..flashing.stopping import stopped_flashes
from ..usb import rom
from ..usb.transport import Usb
from .artifacts import Artifact, ArtifactWatcher
from .build import BuildState
from .builder import Builder
from .flashes import Flashes
from .ports import Ports
from .settings import WorkbenchSettings
from .views import (
    ArtifactChanged,
    AutoFlashChanged,
    BenchEvent,
    BoardView,
    BuildChanged,
    BuildStatus,
    Outbox,
    Stopped,
    Summary,
    SummaryChanged,
    build_ending,
)

JOIN_TIMEOUT_S = 5.0

Subscriber = Callable[[BenchEvent], object]


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
        self._changes = Outbox()
        """The model's lock: every change is made inside it, and its events go out after."""
        self._stopping = False
        """Set by stop(): no flash or build starts any more, and no event goes out once it
        returns."""
        self._ports = Ports(usb_world, settings, self._changes, self._image)
        self._flashes = Flashes(self._ports, self._changes, count=self._count_flashes)
        self._summary = Summary(target=self._target(), auto_flash=settings.auto_flash)
        self.watcher = ArtifactWatcher(
            settings.build_dir,
            self._on_artifact,
            settle_s=settings.settle_s,
            make_dfu=settings.make_dfu,
            on_note=self._on_note,
            on_unmade=self._on_unmade,
        )
        self._builder = Builder(
            settings,
            self._changes,
            self.watcher,
            publish=self._set_build,
            made=lambda artifact, then_flash: self._artifact_ready(artifact, then_flash=then_flash),
        )

    # --- life ---------------------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> None:
        """Hand every event from now on to ``subscriber`` too (on the workbench's threads)."""
        self._changes.connect(subscriber)

    def start(self, subscriber: Subscriber | None = None) -> None:
        """Report every change to the subscribers from now on, starting with the summary.

        It scans the bus and reads the dfu.bin there is before it returns. After :meth:`stop`
        it does nothing (a front end may start it on a thread of its own while it quits).
        """
        with self._changes:
            if self._stopping:
                return
            if subscriber is not None:
                self._changes.connect(subscriber)
            self._changes.post(SummaryChanged(self._summary))
            trace = self.settings.flash.trace
            if trace is not None:  # the user asked for it: where it goes is said once
                self._changes.log(f"Each flash is traced into {trace.where}.")
            self._ports.link_consoles()
        self._ports.hotplug.start()
        self.watcher.start()

    def stop(self) -> list[str]:
        """Stop watching, cancel flashes and the build; every thread is joined (bounded).

        Nothing that comes in meanwhile (a board, a dfu.bin, a build's end) starts a flash,
        and no event is reported once this returns. Returns how the work that ran ended, for a
        line after a quit or a signal: ["2 flashes aborted, boards left ready to flash (1-1.1,
        1-1.2)", "the build was stopped"]; empty when nothing ran.
        """
        with self._changes:
            if self._stopping:
                return []
            self._stopping = True
            stopped = self._flashes.close()
            building = self._summary.build.state is BuildState.RUNNING
        self._ports.close()
        self.watcher.stop()
        self._builder.stop()
        self._flashes.join(JOIN_TIMEOUT_S)
        with self._changes:
            self._changes.post(Stopped())
        self._changes.disconnect(JOIN_TIMEOUT_S)
        ending = [build_ending(self._summary.build.state)] if building else []
        return stopped_flashes(stopped) + ending

    def drain(self, timeout: float = JOIN_TIMEOUT_S) -> bool:
        """Wait until every change made so far has been reported to the subscribers; whether
        all have within ``timeout`` (a script that saw the work end may want its last lines)."""
        return self._changes.drain(timeout)

    # --- what is there (for scripts and tests; a front end renders the events) ----------------

    def boards(self) -> dict[str, BoardView]:
        """The boards shown: those present, and those away in the middle of their flash."""
        with self._changes:
            return self._ports.shown()

    @property
    def summary(self) -> Summary:
        return self._summary

    @property
    def busy(self) -> bool:
        """A flash or a build is running (quitting now would interrupt it)."""
        return self._summary.busy

    def compatible(self, path: str) -> bool:
        """Whether the current artifact may go to the board at ``path`` now."""
        view = self.boards().get(path)
        return view is not None and view.fits

    # --- commands (any thread) ----------------------------------------------------------------

    def build(self, then_flash: bool = False) -> None:
        """Run the build command; with ``then_flash``, flash the armed boards if it succeeds."""
        self._builder.build(then_flash)

    def flash(self, paths: Iterable[str], whole: bool = False) -> list[str]:
        """Flash the current artifact to these boards now (``whole``: all of it, not only what
        changed since what each board holds); return the ones started."""
        with self._changes:
            artifact = self._summary.artifact
            if artifact is None or not artifact.valid:
                why = "there is no dfu.bin yet" if artifact is None else artifact.problem
                unmade = self._summary.unmade if artifact is None else ""
                self._changes.log(f"Nothing to flash: {why}. {unmade}".strip(), level="warning")
                return []
            return [
                path for path in paths
                if self._flashes.start(path, artifact, explicit=True, whole=whole)
            ]  # fmt: skip

    def flash_all(self) -> list[str]:
        """Flash every board shown that can take the artifact; say of each other one why not
        (a board passed over without a word looks like one espdfu did not see)."""
        with self._changes:
            shown = self._ports.shown()
            artifact = self._summary.artifact
            if artifact is not None and artifact.valid and not any(v.fits for v in shown.values()):
                why = "no board here can take this dfu.bin"
                self._changes.log(f"Nothing to flash: {why}.", level="warning")
            return self.flash(shown)

    def flash_armed(self) -> list[str]:
        with self._changes:
            return self.flash(port.path for port in self._ports if port.shown and port.armed)

    def set_armed(self, path: str, armed: bool | None = None) -> None:
        """Arm or disarm a board for auto-flash (``None`` toggles)."""
        with self._changes:
            port = self._ports.get(path)
            if port.shown:
                port.armed = not port.armed if armed is None else armed
                self._ports.show(port)

    def set_auto_flash(self, on: bool | None = None) -> None:
        """Auto-flash on rebuild on or off (``None`` toggles)."""
        with self._changes:
            on = not self._summary.auto_flash if on is None else on
            self._summary = replace(self._summary, auto_flash=on)
            self._changes.post(AutoFlashChanged(self._summary))
            self._changes.log(f"Auto-flash on rebuild: {'on' if on else 'off'}.")

    def set_label(self, path: str, label: str) -> None:
        label = label.strip()
        with self._changes:
            port = self._ports.get(path)
            self._ports.label(port, label)
            self._ports.show(port)
        if self._save_label is not None:  # outside the lock: it writes a file
            try:
                self._save_label(path, label)
            except EspdfuError as error:
                self._changes.log(f"The label was not saved: {error}", level="error")

    def console_seen(self, path: str) -> None:
        """The user looked at the console of ``path``: a panic its app rebooted from, or a
        task-watchdog warning, is no longer noted on its panel."""
        self._ports.feed.seen(path)

    def cancel_flash(self, path: str) -> bool:
        """Cancel the flash of the board at ``path``; whether one ran (else it says so)."""
        with self._changes:
            return self._flashes.cancel(path)

    def cancel_build(self) -> bool:
        """Cancel the build; whether one ran (else it says so)."""
        return self._builder.cancel()

    def say(self, text: str) -> None:
        """A line for the log from outside the model (the demo's finger says what it does)."""
        self._changes.log(text)

    # --- artifacts and builds -----------------------------------------------------------------

    def _on_artifact(self, artifact: Artifact) -> None:
        target = self._target()  # read here, on the watcher's thread, not where it is shown
        with self._changes:
            self._summary = replace(self._summary, artifact=artifact, target=target)
            self._changes.post(ArtifactChanged(self._summary))
            for port in self._ports:  # whether it fits each board
                self._ports.show(port)
            if not artifact.valid:
                self._changes.log(
                    f"{artifact.path} is not usable: {artifact.problem}", level="error"
                )
                return
            image = artifact.image
            chip = image.chip_name if image else "?"
            app = image.contents.app if image else None
            what = f" ({app.brief})" if app is not None else ""
            new = f"New dfu.bin: {chip}, {artifact.size:,} bytes{what}"
            if artifact.boot_problems:  # one line: what came, and why it is not flashed
                problems = "; ".join(artifact.boot_problems)
                self._changes.log(
                    f"{new}; not flashed, as it would not boot: {problems}", level="error"
                )
                return
            self._changes.log(f"{new}.")
            for entry in rom.slow_entries(image.entries if image else ()):
                self._changes.log(rom.erase_note(entry))
            if not self._builder.running:  # after our own build, the build's end decides
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
        for port in self._ports:
            holds = port.job is None and port.flashed == artifact.digest
            if port.shown and port.armed and not holds:
                self._flashes.start(port.path, artifact, explicit=False)

    def _set_build(self, status: BuildStatus) -> None:
        self._summary = replace(self._summary, build=status)
        self._changes.post(BuildChanged(self._summary))

    def _target(self) -> str | None:
        settings = self.settings
        return project_target(settings.project_dir or settings.build_dir.parent, settings.build_dir)

    def _on_note(self, text: str) -> None:
        self._changes.log(text, level="warning")

    def _on_unmade(self, text: str) -> None:
        with self._changes:
            self._summary = replace(self._summary, unmade=text)
            self._changes.post(SummaryChanged(self._summary))
            if text:
                self._changes.log(text, level="warning")

    def _count_flashes(self, flashes: int) -> None:
        if flashes != self._summary.flashes:
            self._summary = replace(self._summary, flashes=flashes)
            self._changes.post(SummaryChanged(self._summary))

    def _image(self) -> DfuImage | None:
        """The usable artifact's image (None: none), for whether it fits each board."""
        artifact = self._summary.artifact
        return artifact.image if artifact is not None and artifact.valid else None

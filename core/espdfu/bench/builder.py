"""The workbench's build: the build command run once at a time, its lines in the log, its
``[n/m]`` in the summary, and what it made handed to the workbench's one rule for artifacts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..errors import EspdfuError
from .artifacts import Artifact, ArtifactWatcher
from .build import BuildResult, BuildRunner, BuildState
from .settings import WorkbenchSettings
from .views import BuildStatus, Outbox

JOIN_TIMEOUT_S = 5.0


class Builder:
    """Runs the build command for the workbench, inside its lock (``changes``).

    ``publish`` takes each new :class:`BuildStatus`; ``made`` the artifact a good build left,
    and whether the build was asked to flash it.
    """

    def __init__(
        self,
        settings: WorkbenchSettings,
        changes: Outbox,
        watcher: ArtifactWatcher,
        *,
        publish: Callable[[BuildStatus], None],
        made: Callable[[Artifact, bool], None],
    ) -> None:
        self._settings = settings
        self._changes = changes
        self._watcher = watcher
        self._publish = publish
        self._made = made
        self.status = BuildStatus()
        self._runner: BuildRunner | None = None
        """Our build while it runs; what it is for is in ``status.then_flash``."""
        self._stopping = False

    @property
    def running(self) -> bool:
        """A build of ours runs (what it makes is flashed by its end, not as it appears)."""
        return self._runner is not None

    def build(self, then_flash: bool) -> None:
        """Start the build; with ``then_flash``, flash the armed boards if it succeeds."""
        with self._changes:
            if self._stopping:
                return
            if self._runner is not None:
                self._changes.log("A build is already running.", level="warning")
                return
            settings = self._settings
            runner = self._runner = BuildRunner(
                settings.build_command,
                settings.project_dir or settings.build_dir.parent,
                on_line=lambda line: self._changes.log(line, source="build"),
                on_progress=self._on_progress,
                on_done=self._on_done,
            )
            self._watcher.paused = True  # our build makes dfu.bin: the watcher does not
        try:  # outside the lock: a process takes a while to start
            runner.spawn()
        except EspdfuError as error:
            with self._changes:
                self._runner = None
                self._watcher.paused = False
            self._changes.log(str(error), level="error")
            return
        with self._changes:
            self._set(BuildStatus(BuildState.RUNNING, then_flash=then_flash))
            self._changes.log(f"Build started: {' '.join(settings.build_command)}")
            runner.follow()  # its lines, progress and end come after its start

    def cancel(self) -> bool:
        """Cancel the build; whether one ran (else it says so)."""
        with self._changes:
            runner = self._runner
            if runner is None:
                self._changes.log("Nothing to cancel: no build runs.", level="warning")
                return False
        runner.cancel()
        return True

    def stop(self) -> None:
        """Start no build from now on; cancel the one that runs and wait for it (bounded)."""
        with self._changes:
            self._stopping = True
            runner = self._runner
        if runner is not None:
            runner.cancel()
            runner.wait(JOIN_TIMEOUT_S)

    def _on_progress(self, done: int, total: int) -> None:
        with self._changes:
            self._set(replace(self.status, done=done, total=total))

    def _on_done(self, result: BuildResult) -> None:
        # What the build left is read while the build still counts as running (the watcher
        # reports it under its own lock, so not under ours): a new artifact is reported, and
        # what to flash after our own build is decided here, once.
        artifact = self._watcher.refresh() if result.ok else None
        with self._changes:
            self._runner = None
            self._watcher.paused = False
            self._set(replace(self.status, state=result.state, result=result))
            if not result.ok:
                what = "cancelled" if result.state is BuildState.CANCELLED else "failed"
                self._changes.log(f"Build {what}: nothing is flashed.", level="error")
                for line in result.error_lines:
                    self._changes.log(line, source="build", level="error")
                return
            self._changes.log(f"Build finished in {result.seconds:.1f} s.")
            if artifact is None or not artifact.usable:  # a won't-boot one was said as it came
                self._changes.log("The build made no usable dfu.bin.", level="error")
                return
            self._made(artifact, self.status.then_flash)

    def _set(self, status: BuildStatus) -> None:
        self.status = status
        self._publish(status)

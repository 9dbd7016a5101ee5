"""The two lines at the top: the project, and the artifact and build right now."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import ProgressBar, Static

from espdfu.build import BuildState
from espdfu.units import format_size
from espdfu.workbench import Summary

from .panels import ago


class StatusBar(Widget):
    """Project · target · build folder · auto-flash; then dfu.bin · build state."""

    def __init__(
        self, project: str, summary: Summary, build_dir: str, build_key: str = "b"
    ) -> None:
        super().__init__(id="status")
        self.build_key = build_key
        """The key that builds, as the user's config may have remapped it."""
        self.project = project
        self.build_dir = build_dir
        self.summary = summary
        """What it shows: the workbench's summary as it last came."""
        self.now = 0.0
        """The time the dfu.bin's age is counted to (the app's clock, when it last looked)."""

    def compose(self) -> ComposeResult:
        with Horizontal(id="first-line"):
            yield Static(id="project-line")
            yield ProgressBar(total=1, show_eta=False, id="build-bar")
        yield Static(id="artifact-line")

    def show(self, summary: Summary, now: float) -> None:
        """Both lines for ``summary`` at ``now``; a line is redrawn only when its words changed."""
        self.summary = summary
        self.refresh_age(now)

    def refresh_age(self, now: float) -> None:
        """The lines at ``now``: the dfu.bin's age is the only text that changes by itself."""
        self.now = now
        summary, build = self.summary, self.summary.build
        auto = "auto-flash ON" if summary.auto_flash else "auto-flash off"
        _update(
            self.query_one("#project-line", Static),
            f"{self.project} · {summary.target or '?'} · {self._build_text()} · {auto}",
        )
        _update(self.query_one("#artifact-line", Static), self._artifact_text())
        bar = self.query_one("#build-bar", ProgressBar)
        bar.display = build.state is BuildState.RUNNING and build.total > 0
        if bar.display:  # ninja's [n/m]
            bar.update(total=build.total, progress=build.done)
        self.set_class(build.state is BuildState.FAILED, "build-failed")
        artifact = summary.artifact
        self.set_class(artifact is not None and not artifact.valid, "artifact-bad")

    def _artifact_text(self) -> str:
        artifact = self.summary.artifact
        if artifact is None:
            return f"no {self.build_dir}/dfu.bin yet: press {self.build_key} to build"
        if not artifact.valid:
            return f"{self.build_dir}/dfu.bin is NOT usable: {artifact.problem}"
        chip = artifact.image.chip_name if artifact.image else "?"
        made = " (made from flasher_args.json)" if artifact.made_here else ""
        return (
            f"{self.build_dir}/dfu.bin: {format_size(artifact.size)}, {chip}, "
            f"{ago(artifact.mtime, self.now)}{made}"
        )

    def _build_text(self) -> str:
        build = self.summary.build
        if build.state is BuildState.RUNNING:
            return f"building {build.done}/{build.total}" if build.total else "building…"
        if build.state is BuildState.IDLE or build.result is None:
            return "build: idle"
        seconds = f"{build.result.seconds:.0f} s"
        return {
            BuildState.SUCCEEDED: f"build OK in {seconds}",
            BuildState.FAILED: "build FAILED (see log)",
            BuildState.CANCELLED: "build cancelled",
        }.get(build.state, build.state.name.lower())


def _update(line: Static, text: str) -> None:
    """Redraw ``line`` only if its text changed: the ages are looked at every second."""
    if str(line.content) != text:
        line.update(text)

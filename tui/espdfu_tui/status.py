"""The two lines at the top: the project, and the artifact and build right now."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import ProgressBar, Static

from espdfu.bench.build import BuildState
from espdfu.bench.views import Summary
from espdfu.units import format_size

from .panels import ago


class StatusBar(Widget):
    """Project · target · build folder · auto-flash; then dfu.bin · build state."""

    def __init__(self, project: str, build_dir: str, build_key: str = "b") -> None:
        super().__init__(id="status")
        self.build_key = build_key
        """The key that builds, as the user's config may have remapped it."""
        self.project = project
        self.build_dir = build_dir

    def compose(self) -> ComposeResult:
        with Horizontal(id="first-line"):
            yield Static(id="project-line")
            yield ProgressBar(total=1, show_eta=False, id="build-bar")
        yield Static(id="artifact-line")

    def show(self, summary: Summary, now: float) -> None:
        """Both lines for ``summary`` at ``now`` (the dfu.bin's age is the only text that changes
        by itself); a line is redrawn only when its words changed."""
        build = summary.build
        auto = "auto-flash ON" if summary.auto_flash else "auto-flash off"
        _update(
            self.query_one("#project-line", Static),
            f"{self.project} · {summary.target or '?'} · {_build_text(summary)} · {auto}",
        )
        _update(self.query_one("#artifact-line", Static), self._artifact_text(summary, now))
        bar = self.query_one("#build-bar", ProgressBar)
        bar.display = build.state is BuildState.RUNNING and build.total > 0
        if bar.display:  # ninja's [n/m]
            bar.update(total=build.total, progress=build.done)
        self.set_class(build.state is BuildState.FAILED, "build-failed")
        artifact = summary.artifact
        self.set_class(artifact is not None and not artifact.usable, "artifact-bad")

    def _artifact_text(self, summary: Summary, now: float) -> str:
        artifact = summary.artifact
        if artifact is None and summary.unmade:
            return f"no {self.build_dir}/dfu.bin: {summary.unmade}"
        if artifact is None:
            return f"no {self.build_dir}/dfu.bin yet: press {self.build_key} to build"
        if not artifact.valid or artifact.image is None:
            return f"{self.build_dir}/dfu.bin is NOT usable: {artifact.problem}"
        if artifact.boot_problems:
            return f"{self.build_dir}/dfu.bin would NOT boot: {artifact.boot_problems[0]}"
        contents = artifact.image.contents
        made = " (made from flasher_args.json)" if artifact.made_here else ""
        app = f" · {contents.app.brief}" if contents.app is not None else ""
        return (
            f"{self.build_dir}/dfu.bin: {format_size(artifact.size)}, "
            f"{artifact.image.chip_name}, {ago(artifact.mtime, now)}{made}{app}"
        )


def _build_text(summary: Summary) -> str:
    build = summary.build
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

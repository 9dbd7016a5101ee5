"""The app on virtual boards and a demo project, as the tests drive it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from time import time as wall_time

from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.widgets import RichLog, Static

from espdfu.demo import make_demo_project
from espdfu.flasher import FlashOptions
from espdfu.sim import SimBackend, SimBus, TimeModel
from espdfu.transport import Usb
from espdfu.workbench import Workbench, WorkbenchSettings
from espdfu_tui.app import EspdfuApp
from espdfu_tui.panels import BoardPanel, panel_id

WAIT_S = 20.0


def make_app(
    root: Path,
    spec: str = "esp32s2*2,esp32s3",
    time: TimeModel | None = None,
    keymap: dict[str, str] | None = None,
    clock: Callable[[], float] = wall_time,
) -> tuple[EspdfuApp, SimBus]:
    """An app on virtual boards with a demo project under ``root`` (its build: instant)."""
    project = make_demo_project(root)
    bus = SimBus.from_spec(spec, time=time or TimeModel.instant())
    workbench = Workbench(
        Usb(SimBackend(bus), "virtual boards", bus),
        WorkbenchSettings(
            build_dir=project.build_dir,
            project_dir=project.project_dir,
            build_command=project.build_command,
            monitor_interval_s=0.05,
            settle_s=0.05,
            flash=FlashOptions(progress_interval_s=0.05),
        ),
        save_label=lambda path, label: None,
    )
    app = EspdfuApp(
        workbench, project="espdfu-demo", facts=["USB: virtual"], keymap=keymap, clock=clock
    )
    return app, bus


async def until(pilot: Pilot[int], condition: Callable[[], bool], what: str) -> None:
    """Let the app run until ``condition`` holds (bounded; the app's clock, not a bare sleep).
    A widget it reads that is not there yet (not yet mounted, or gone) is a "not yet"."""
    for _ in range(int(WAIT_S / 0.05)):
        try:
            holds = condition()
        except NoMatches:
            holds = False
        if holds:
            await pilot.pause()  # let the messages already queued be handled
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def log_text(app: EspdfuApp) -> str:
    return "\n".join(str(line.text) for line in app.query_one("#log", RichLog).lines)


def panel(app: EspdfuApp, path: str) -> BoardPanel:
    return app.query_one(f"#{panel_id(path)}", BoardPanel)


def text(app: EspdfuApp, selector: str) -> str:
    return str(app.query_one(selector, Static).content)


def panel_text(app: EspdfuApp, path: str) -> str:
    widget = panel(app, path)
    lines = [str(widget.border_title), str(widget.border_subtitle)]
    lines += [str(static.content) for static in widget.query(Static)]
    return "\n".join(lines)

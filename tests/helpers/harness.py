"""The app on virtual boards and a demo project, as the tests drive it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from time import time as wall_time
from typing import Any

from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.widgets import RichLog, Static

from espdfu.bench.settings import WorkbenchSettings
from espdfu.bench.workbench import Workbench
from espdfu.demo.project import make_demo_project
from espdfu.flashing.flasher import FlashOptions
from espdfu.sim import SimBus, TimeModel, virtual_usb
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
        virtual_usb(bus, "virtual boards"),
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


async def until(
    pilot: Pilot[Any], condition: Callable[[], bool], what: str, step_s: float = 0.05
) -> None:
    """Let the app run until ``condition`` holds, looked at every ``step_s`` (bounded; the app's
    clock, not a bare sleep). A widget it reads that is not there yet (not yet mounted, or
    gone) is a "not yet"."""
    for _ in range(int(WAIT_S / step_s)):
        try:
            holds = condition()
        except NoMatches:
            holds = False
        if holds:
            await pilot.pause()  # let the messages already queued be handled
            return
        await pilot.pause(step_s)
    raise AssertionError(f"timed out waiting for {what}")


async def idle(pilot: Pilot[int], app: EspdfuApp) -> None:
    """Until the workbench runs nothing and the app has handled every event it made: a flash
    that had started is over by then, so one that did not happen did not start."""
    await until(pilot, lambda: not app.workbench.busy, "the workbench to be idle")
    assert app.workbench.drain(), "the workbench's last events"
    await pilot.pause()


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

"""Regenerate the app's screenshots: ``python docs/screenshots/make.py [OUT_DIR]``.

Each picture is the real app on the demo project and the demo's virtual boards, run headless
by Textual (``App.run_test``) at 100x30 and saved with Textual's own ``save_screenshot``:

- ``idle.svg``: the boards, ready, with a dfu.bin found;
- ``flashing.svg``: four boards flashing at once, their bars part-way;
- ``failed.svg``: a board whose cable came out in the middle of a flash, plugged back in;
- ``help.svg``: the help screen;
- ``apps.svg``: the boards after a flash and a RESET, each panel showing its new app's state
  and last console line (the log hidden: it would show each flash's speed on this machine);
- ``console.svg``: the first board's whole console (``m``);
- ``trouble.svg``: boards whose firmware is in trouble, one of each kind the simulator has
  (:data:`TROUBLE_BOARDS`), each caught in its first boot (the reboot after it held off).

Nothing on them depends on the clock or on the machine: the dfu.bin is made from a fixed seed
and written once the boards are shown (so the log's order is fixed), the flashes run on a time
model of the simulator chosen for it, and each board of the flashing picture stops at a chosen
block because its simulator answers "busy" from there on (a fault) — so a picture changes only
when the app does (but for the pseudo-terminal's name in console.svg's title: the system's).
Run it again after changing what the app shows, and commit the SVGs.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import RichLog, Static

from espdfu.bench.settings import WorkbenchSettings
from espdfu.bench.workbench import Workbench
from espdfu.chips import chip_by_name
from espdfu.demo.project import PROJECT_NAME, app_image, make_demo_project
from espdfu.files import dfufile
from espdfu.flashing.flasher import FlashOptions
from espdfu.sim import Fault, SimBus, TimeModel, firmware, virtual_usb
from espdfu.usb.protocol import Request
from espdfu_tui.app import EspdfuApp
from espdfu_tui.console_screen import ConsoleScreen
from espdfu_tui.panels import BoardPanel, panel_id
from espdfu_tui.screens import HelpScreen

SIZE = (100, 30)
HERE = Path(__file__).resolve().parent
WAIT_S = 30.0
STOPS = (11, 17, 23, 29)
"""Where each S2 board stops in the flashing picture, in KiB of its download (about 65 KiB)."""
FAILED_BOARD, FAILED_AT_KIB = "1-1.2", 40
APP_LINE = re.compile(r"[IWEDV] \(\d+\) app: .*")
"""A line the virtual app prints after its start-up."""
BLOCK = 64
"""The ESP ROM's transfer size: one DFU block."""
TROUBLE_BOARDS = (
    "esp32s2-app:panic,esp32s3-app:bootassert,esp32s2-app:refuse,esp32s3-app:blank,"
    "esp32s2-app:brownout"
)
TROUBLE_ENDS = ("Rebooting...", "Rebooting...", "No bootable app", "invalid header", "BOD:")
"""What each trouble board's panel shows once its first boot has printed all it will."""

PICTURE_TIME = TimeModel(
    request_s=0.0,
    erase_ms_per_sector=5.0,
    manifest_ms=0.0,
    busy_poll_ms=300_000.0,
    reenumerate_s=0.0,
)
"""Time for the flashing picture: requests take none, and the dfu.bin's 16 sectors take 80 ms
to erase, at the app's first byte — time for the app to lay out the progress bar it has just
shown, so that the bar's last update is drawn at its final width (Textual rounds it to half
cells only once the bar has a width). The whole way to a stop stays within the 0.2 s after
which the app would show a rate, which differs on every run. A board stuck busy asks for a
poll timeout of five minutes, which the host waits out (a picture's length) in one piece: a
board that keeps answering busy would be shown as waiting on a busy board, not as flashing."""


def demo_dfu() -> bytes:
    """A 64 KiB ESP32-S2 application at 0x10000 in a dfu.bin, the same bytes every time."""
    chip = chip_by_name("esp32s2")
    assert chip is not None
    app = dfufile.FlashFile(0x10000, "app.bin", app_image("build 1", time.gmtime(0), 64 * 1024))
    return dfufile.pack([app], pid=chip.dfu_pid, flash_size=dfufile.FLASH_SIZES["4MB"])


SHOT_BOARDS = "esp32s2*3,esp32s3,esp32s2-app:panic-once"
"""The demo's boards without their USB-UART bridges (its first two have one): every RESET
in the pictures is pressed here, on the four boards at once, so that their apps keep step."""


def make_app(root: Path, time: TimeModel, boards: str = SHOT_BOARDS) -> tuple[EspdfuApp, SimBus]:
    """The app as ``espdfu-tui --demo`` makes it (or with ``boards``), its settings fixed for
    pictures."""
    project = make_demo_project(root)
    project.build_dir.mkdir()
    bus = SimBus.from_spec(boards, time=time)
    workbench = Workbench(
        virtual_usb(bus, f"virtual boards ({boards})"),
        WorkbenchSettings(
            build_dir=project.build_dir,
            project_dir=project.project_dir,
            build_command=project.build_command,
            monitor_interval_s=0.05,
            settle_s=0.05,
            # Every 1 KiB reported; a stuck board may stay busy longer than this script runs.
            flash=FlashOptions(progress_interval_s=0.0, busy_limit_s=600.0),
        ),
        save_label=lambda path, label: None,
    )
    facts = [  # what `espdfu-tui --demo` lists, with its temporary folder shortened
        f"Project: …/{PROJECT_NAME} (demo: a throw-away copy)",
        f"Build folder: …/{PROJECT_NAME}/build",
        f"Build command: {Path(sys.executable).name} -m espdfu.demo.project build …/{PROJECT_NAME}",
        f"USB: virtual boards ({boards})",
        "Config files read: none",
        "Board labels are kept in ~/.config/espdfu/labels.toml",
    ]
    app = EspdfuApp(workbench, project=PROJECT_NAME, demo=True, facts=facts)
    return app, bus


async def until(pilot: Pilot[int], condition: Callable[[], bool], what: str) -> None:
    """Let the app run until ``condition`` holds, then until what is queued is shown."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the app did not reach this state in {WAIT_S:g} s: {what}")
        await pilot.pause(0.02)
    await pilot.pause(0.1)
    await pilot.pause()


async def ready(pilot: Pilot[int], root: Path) -> None:
    """The demo's five panels, its app's first line, then a dfu.bin, shown."""
    app = pilot.app
    assert isinstance(app, EspdfuApp)
    await until(pilot, lambda: len(app.query(BoardPanel)) == 5, "five board panels")
    await until(  # not caught in the middle of its start-up
        pilot,
        lambda: any(APP_LINE.search(str(static.content)) for static in app.query(Static)),
        "the running app's first line",
    )
    dfufile.save(root / PROJECT_NAME / "build" / "dfu.bin", demo_dfu())
    await until(pilot, lambda: app.summary.artifact is not None, "the dfu.bin")


async def shoot_idle(out: Path, root: Path) -> None:
    app, _ = make_app(root, TimeModel.instant())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, root)
        app.save_screenshot("idle.svg", str(out))
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        app.save_screenshot("help.svg", str(out))


async def shoot_flashing(out: Path, root: Path) -> None:
    app, bus = make_app(root, PICTURE_TIME)
    # The demo's ESP32-S2 boards: three in ROM download mode and one running an application.
    s2 = [path for path, board in bus.boards.items() if board.chip.name == "esp32s2"]
    stops = {path: kib * 1024 // BLOCK for path, kib in zip(s2, STOPS, strict=True)}
    for path, block in stops.items():
        bus.board(path).faults.append(Fault("busy", on=Request.DNLOAD, nth=block))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, root)
        # One at a time, each started once the one before has stopped: alone, a board reaches
        # its stop before the app shows a rate (after 0.2 s), which would differ on every run.
        for path, block in stops.items():
            await pilot.click(f"#{panel_id(path)}")
            await pilot.press("f")

            def stuck(path: str = path, block: int = block) -> bool:
                """The board took its last block and has answered that it is busy."""
                board = bus.board(path)
                return (
                    board.requests[Request.DNLOAD] == block
                    and board.requests[Request.GETSTATUS] >= block
                )

            await until(pilot, stuck, f"the flash of {path} to stop part-way")
        await pilot.click(f"#{panel_id(s2[0])}")
        await until(pilot, lambda: True, "the first board selected")
        app.save_screenshot("flashing.svg", str(out))
        progress = [app.query_one(f"#{panel_id(p)}", BoardPanel).view.progress for p in stops]
        slow = [p.path for p in progress if p is not None and p.rate is not None]
        if slow:
            print(
                f"note: flashing.svg shows the transfer rate of {', '.join(slow)}: this machine "
                "was too busy to reach the stops within 0.2 s. Run again on a quieter one for "
                "the picture that changes only with the app.",
                file=sys.stderr,
            )
        for path in stops:  # ends the flashes at once (a stuck board cannot be aborted)
            bus.board(path).unplug()


async def shoot_failed(out: Path, root: Path) -> None:
    app, bus = make_app(root, TimeModel.instant())
    board = bus.board(FAILED_BOARD)
    board.faults.append(Fault("unplug", on=Request.DNLOAD, nth=FAILED_AT_KIB * 1024 // BLOCK))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, root)
        await pilot.press("right", "f")  # the second board
        await until(
            pilot, lambda: not app.query(f"#{panel_id(FAILED_BOARD)}"), "the board to vanish"
        )
        board.replug()
        await until(
            pilot,
            lambda: any("failed" in p.view.state for p in app.query(BoardPanel)),
            "the board back, failed",
        )
        await pilot.click(f"#{panel_id(FAILED_BOARD)}")  # select it again, as a user would
        app.save_screenshot("failed.svg", str(out))


async def shoot_apps(out: Path, root: Path) -> None:
    app, bus = make_app(root, TimeModel.instant())
    s2 = [path for path, board in bus.boards.items() if board.chip.name == "esp32s2"]
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, root)
        await pilot.press("F")
        await until(
            pilot,
            lambda: all("press RESET" in _panel_lines(app, p) for p in s2),
            "the four flashes",
        )
        for path in s2:  # RESET pressed on all four at once: their apps keep step
            bus.board(path).press_reset()
        await pilot.press("l")  # the log hidden: it says how fast this machine flashed
        # Each panel shows its app's newest line, one a second: which one the picture catches
        # depends on how soon this machine opened the consoles; the same on all four.
        # After their start-up's burst of lines, which a panel shows as a rate for 2 s.
        await until(
            pilot,
            lambda: (
                _same_app_line(app, s2)
                and not any("lines/s" in _panel_lines(app, path) for path in s2)
            ),
            "the four apps showing a line",
        )
        app.save_screenshot("apps.svg", str(out))
        await pilot.press("m")
        await until(
            pilot,
            lambda: isinstance(app.screen, ConsoleScreen) and "no Wi-Fi set" in _console_lines(app),
            "the first board's console",
        )
        app.save_screenshot("console.svg", str(out))


async def shoot_trouble(out: Path, root: Path) -> None:
    reboot_s, firmware.REBOOT_S = firmware.REBOOT_S, WAIT_S * 10  # one boot: no count of boots
    try:
        app, bus = make_app(root, TimeModel.instant(), TROUBLE_BOARDS)
        async with app.run_test(size=SIZE) as pilot:
            # No dfu.bin: the header would say how long ago it was found.
            await until(pilot, lambda: len(app.query(BoardPanel)) == 5, "five board panels")
            # Once the boot's burst of lines is out of the rate the panels show (a flood's).
            await until(
                pilot,
                lambda: all(
                    end in (shown := _panel_lines(app, path)) and "lines/s" not in shown
                    for path, end in zip(bus.boards, TROUBLE_ENDS, strict=True)
                ),
                "each board's first boot",
            )
            app.save_screenshot("trouble.svg", str(out))
    finally:
        firmware.REBOOT_S = reboot_s


def _panel_lines(app: EspdfuApp, path: str) -> str:
    panel = app.query_one(f"#{panel_id(path)}", BoardPanel)
    return "\n".join(str(static.content) for static in panel.query(Static))


def _same_app_line(app: EspdfuApp, paths: list[str]) -> bool:
    """Whether the panels of ``paths`` all show the same line of their apps."""
    shown = {APP_LINE.search(_panel_lines(app, path)) for path in paths}
    return None not in shown and len({found.group() for found in shown if found}) == 1


def _console_lines(app: EspdfuApp) -> str:
    return "\n".join(line.text for line in app.screen.query_one(RichLog).lines)


async def make(out: Path) -> list[Path]:
    """Write every screenshot into ``out``; the files written."""
    out.mkdir(parents=True, exist_ok=True)
    for shoot in (shoot_idle, shoot_flashing, shoot_failed, shoot_apps, shoot_trouble):
        with tempfile.TemporaryDirectory(prefix="espdfu-shots-") as root:
            await shoot(out, Path(root))
    return sorted(out.glob("*.svg"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=HERE, help="default: this folder")
    args = parser.parse_args(argv)
    for path in asyncio.run(make(args.out)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

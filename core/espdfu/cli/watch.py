"""``espdfu watch``: the workbench without a screen, for CI rigs and production lines.

Every new valid dfu.bin in the build folder is flashed to the selected boards, one line per
event on stdout, until Ctrl-C, SIGTERM or SIGHUP, which abort running flashes cleanly (the
boards are left ready to flash) and exit 128 + the signal's number: 130, 143, 129.
"""

from __future__ import annotations

import argparse
import threading
from dataclasses import replace
from pathlib import Path

from .common import (
    Commands,
    StopSignals,
    add_command,
    add_flag,
    add_selection,
    add_sim,
    port_paths,
    say_stopped,
)

DESCRIPTION = (
    "Watch BUILD_DIR (default: the build folder of the ESP-IDF project around the current "
    "folder) and flash each new valid dfu.bin to the selected boards as soon as it is "
    "complete: every board that can take it (--all, the default), or the boards at the given "
    "port paths. It also flashes the dfu.bin already there when it starts. One line per "
    "event."
)


def add_commands(commands: Commands) -> None:
    summary = "flash every new dfu.bin in a build folder to the boards, without a screen"
    watch = add_command(
        commands,
        "watch",
        _watch,
        summary,
        DESCRIPTION,
        runs_until_stopped=True,
    )
    watch.add_argument(
        "build_dir", nargs="?", type=Path, metavar="BUILD_DIR", help="the build folder to watch"
    )
    add_selection(
        watch, "only the board", "every board that can take the file (the default; for scripts)"
    )
    add_sim(watch)
    add_flag(
        watch,
        "--no-make-dfu",
        help="do not make dfu.bin from flasher_args.json after a plain `idf.py build`",
    )
    add_flag(
        watch,
        "--no-console",
        help="do not read the boards' app consoles (by default their lines are printed, "
        "prefixed with the board, once an app runs after its RESET)",
    )


def _watch(args: argparse.Namespace) -> int:
    # Imported here: the workbench, watchdog and the config are not needed by other commands.
    from ..bench.build import find_project
    from ..bench.settings import workbench_settings
    from ..bench.workbench import Workbench
    from ..config import load_settings
    from ..worlds import open_usb
    from .eventlines import EventLines

    # Every board is armed (or those at --path), and every new dfu.bin flashed to them.
    overrides: dict[str, object] = {
        "build_dir": args.build_dir,
        "auto_flash": True,
        "arm_new_boards": True,
    }
    if args.no_make_dfu:
        overrides["make_dfu"] = False
    config = load_settings(find_project(Path.cwd()), overrides=overrides)
    settings = workbench_settings(config, arm_only=port_paths(args.path, config.labels))
    if args.no_console:
        settings = replace(settings, consoles=False)
    printer = EventLines()
    workbench = Workbench(open_usb(args.sim), settings)
    yet = "" if settings.build_dir.is_dir() else ", which does not exist yet: a build makes it"
    print(f"Watching {settings.build_dir}{yet} (Ctrl-C to stop).", flush=True)
    stopped = threading.Event()
    with StopSignals(stopped.set) as stop:
        workbench.start(printer.show)
        stopped.wait()
        parts = workbench.stop()  # a second signal does not break the stop off
    assert stop.signum is not None  # the wait above only ends by a signal
    return say_stopped(stop.signum, parts)

"""``espdfu watch``: the workbench without a screen, for CI rigs and production lines.

Every new valid dfu.bin in the build folder is flashed to the selected boards, one line per
event on stdout, until Ctrl-C, SIGTERM or SIGHUP, which abort running flashes cleanly (the
boards are left ready to flash) and exit 128 + the signal's number: 130, 143, 129.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from ..errors import InputError
from ..stopping import signal_exit_code, stopped_line
from ..transport import SIM_ENV
from .common import StopSignals, note


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    watch = commands.add_parser(
        "watch",
        help="flash every new dfu.bin in a build folder to the boards, without a screen",
        description="Watch BUILD_DIR (default: the build folder of the ESP-IDF project around "
        "the current folder) and flash each new valid dfu.bin to the selected boards as soon "
        "as it is complete: every board that can take it (--all, the default), or the boards "
        "at the given port paths. It also flashes the dfu.bin already there when it starts. One "
        "line per event. Stop with Ctrl-C (or SIGTERM, SIGHUP): running flashes are aborted, "
        "the boards left ready, and it exits with 128 + the signal (130 for Ctrl-C).",
    )
    watch.add_argument(
        "build_dir", nargs="?", type=Path, metavar="BUILD_DIR", help="the build folder to watch"
    )
    watch.add_argument(
        "-p", "--path", action="append", default=[], metavar="PORT",
        help="only the board at this USB port path; repeatable",
    )  # fmt: skip
    watch.add_argument(
        "--all",
        action="store_true",
        help="every board that can take the file (the default; kept for scripts)",
    )
    watch.add_argument(
        "--sim", metavar="SPEC", help=f"use virtual boards instead of USB (or ${SIM_ENV})"
    )
    watch.add_argument(
        "--no-make-dfu", action="store_true",
        help="do not make dfu.bin from flasher_args.json after a plain `idf.py build`",
    )  # fmt: skip
    watch.set_defaults(run=_watch)


def _watch(args: argparse.Namespace) -> int:
    # Imported here: the workbench, watchdog and the config are not needed by other commands.
    from ..build import find_project
    from ..config import load_settings
    from ..flasher import FlashOptions
    from ..transport import open_usb
    from ..workbench import Workbench, WorkbenchSettings
    from .eventlines import EventLines

    if args.path and args.all:
        raise InputError("Give either --path or --all, not both.")
    project_dir = find_project(Path.cwd())
    overrides: dict[str, object] = {"build_dir": args.build_dir}
    if args.no_make_dfu:
        overrides["make_dfu"] = False
    config = load_settings(project_dir, overrides=overrides)
    build_dir = config.build_dir or (project_dir or Path.cwd()) / "build"
    printer = EventLines()
    settings = WorkbenchSettings(
        build_dir=build_dir,
        project_dir=project_dir,
        auto_flash=True,
        make_dfu=config.make_dfu,
        arm_only=frozenset(args.path),
        labels=dict(config.labels),
        flash=FlashOptions(detach_wait_s=config.detach_wait_s),
        monitor_interval_s=config.monitor_interval_s,
    )
    workbench = Workbench(open_usb(args.sim), settings)
    print(f"Watching {build_dir} (Ctrl-C to stop).", flush=True)
    # The main thread only waits; a stop signal breaks that wait off (the handler raises there).
    with StopSignals(_break_off) as stop:
        try:
            workbench.start(printer.show)
            threading.Event().wait()
        except _Stop:
            note(stopped_line(stop.signum, workbench.stop_and_say()))
    assert stop.signum is not None  # the wait above only ends by a signal
    return signal_exit_code(stop.signum)


class _Stop(Exception):
    """A stop signal came."""


def _break_off() -> None:
    raise _Stop

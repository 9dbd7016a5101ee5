"""The ``espdfu-tui`` command (also ``python -m espdfu_tui``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from espdfu import __version__
from espdfu.cli.common import add_sim, port_number, print_error
from espdfu.config import DEFAULT_COMMAND
from espdfu.errors import EspdfuError
from espdfu.instance import AlreadyRunning, take_instance_lock

if TYPE_CHECKING:
    from .app import EspdfuApp

PROGRESS_INTERVAL_S = 0.5
"""Two updates a second per board: smooth enough to watch, light enough for SSH."""
EXIT_ALREADY_RUNNING = 3
"""Another espdfu-tui owns the boards (see espdfu.instance)."""
RELOAD_WAIT_S = 2.0
"""How long an app in a browser tab waits for the lock: a reloaded tab's old app is leaving."""
SERVE_OPTIONS = ("serve", "host", "port", "allow_remote")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
WEB_DRIVER = "textual.drivers.web_driver:WebDriver"
"""The Textual driver that textual-serve names in the environment of its app processes."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="espdfu-tui",
        description="Flash ESP32-S2/S3 boards over native USB DFU from the terminal: one panel "
        "per board, build and flash on a key press, auto-flash on every rebuild.",
    )
    parser.add_argument(
        "project_dir", nargs="?", type=Path, metavar="PROJECT_DIR",
        help="the ESP-IDF project (default: the one around the current folder)",
    )  # fmt: skip
    parser.add_argument("--build-dir", type=Path, metavar="DIR", help="default PROJECT/build")
    parser.add_argument(
        "--build-cmd",
        metavar="COMMAND",
        help=f'the build command (default "{shlex.join(DEFAULT_COMMAND)}")',
    )
    parser.add_argument(
        "--auto-flash", action="store_true", help="re-flash armed boards after every rebuild"
    )
    add_sim(parser)
    parser.add_argument(
        "--demo", action="store_true",
        help="virtual boards and a throw-away demo project: try every key without hardware",
    )  # fmt: skip
    parser.add_argument("--no-mouse", action="store_true", help="ignore the mouse")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    browser = parser.add_argument_group("in a browser tab (docs/serve.md)")
    browser.add_argument(
        "--serve", action="store_true", help="serve the app to a browser instead of this terminal"
    )
    browser.add_argument("--host", help=f"the address to serve on (default {DEFAULT_HOST})")
    browser.add_argument(
        "--port", type=port_number, help=f"the port to serve on (default {DEFAULT_PORT})"
    )
    browser.add_argument(
        "--allow-remote", action="store_true",
        help="let --host be reachable from other machines: anyone who reaches it can flash",
    )  # fmt: skip
    return parser


def app_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The command line of the app behind --serve: the same options, less the server's."""
    options: list[str] = []
    positionals: list[str] = []
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if action.dest in SERVE_OPTIONS or value is None or value == action.default:
            continue
        if not action.option_strings:
            positionals.append(str(value))
        elif value is True:
            options.append(action.option_strings[0])
        else:
            options.append(f"{action.option_strings[0]}={value}")
    return [*options, "--", *positionals] if positionals else options


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app, or the server of --serve; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check_folders(args)
    except EspdfuError as error:
        return print_error(error, "espdfu-tui")
    if args.serve:
        return _serve(parser, args)
    if args.host is not None or args.port is not None or args.allow_remote:
        parser.error("--host, --port and --allow-remote go with --serve")
    in_browser = os.environ.get("TEXTUAL_DRIVER") == WEB_DRIVER
    try:
        lock = take_instance_lock("espdfu-tui", wait_s=RELOAD_WAIT_S if in_browser else 0)
    except AlreadyRunning as error:
        print_error(error, "espdfu-tui")  # in a browser tab, this goes to the server's output
        if in_browser:  # the tab shows the sentence too, instead of staying blank
            from .browser import AlreadyRunningApp

            AlreadyRunningApp(error.message, error.hint).run()
        return EXIT_ALREADY_RUNNING
    except EspdfuError as error:
        return print_error(error, "espdfu-tui")
    with lock:
        return _run(args, in_browser)


def _check_folders(args: argparse.Namespace) -> None:
    """Refuse a project or build folder that cannot be one, before anything starts."""
    from espdfu.bench.build import project_folder
    from espdfu.bench.settings import build_folder

    if args.project_dir is not None:
        project_folder(args.project_dir)
    if args.build_dir is not None:
        build_folder(args.build_dir)


def _run(args: argparse.Namespace, in_browser: bool) -> int:
    """Run the app, with the boards to itself."""
    demo_root = Path(tempfile.mkdtemp(prefix="espdfu-demo-")) if args.demo else None
    try:
        app, mouse = make_app_from_args(args, demo_root)
        if demo_root is not None:
            app.on_lost_terminal = lambda: shutil.rmtree(demo_root, ignore_errors=True)
        if in_browser:
            from .browser import BrowserDriver

            app.driver_class = BrowserDriver
        app.run(mouse=mouse)
        if app.stop_report:  # the app's screen is gone: the line stays in the terminal
            with contextlib.suppress(OSError):  # no terminal left after a hang-up
                print(f"espdfu-tui: {app.stop_report}", file=sys.stderr, flush=True)
        return app.return_code or 0
    except EspdfuError as error:
        return print_error(error, "espdfu-tui")
    finally:
        if demo_root is not None:
            shutil.rmtree(demo_root, ignore_errors=True)


def _serve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .serve import is_loopback, serve

    host = DEFAULT_HOST if args.host is None else args.host
    port = DEFAULT_PORT if args.port is None else args.port
    if not is_loopback(host):
        if not args.allow_remote:
            print(
                f"espdfu-tui: --host {host} would let other machines reach the app, and anyone "
                "who reaches it can flash the boards.\n  Add --allow-remote if you mean it; "
                "an SSH tunnel to 127.0.0.1 is safer (docs/serve.md).",
                file=sys.stderr,
            )
            return 2
        print(
            f"espdfu-tui: warning: serving on {host}: anyone who can reach port {port} and "
            "has the address with its token can flash the boards, and the token crosses the "
            "network unencrypted (no TLS).",
            file=sys.stderr,
        )
    return serve(app_arguments(parser, args), host, port)


def make_app_from_args(args: argparse.Namespace, demo_root: Path | None) -> tuple[EspdfuApp, bool]:
    """The app the command line asks for, and whether it takes the mouse."""
    from textual.binding import Binding

    from espdfu.bench.build import find_project
    from espdfu.bench.settings import workbench_settings
    from espdfu.bench.workbench import Workbench
    from espdfu.config import config_dir, load_labels, load_settings, save_label
    from espdfu.demo.project import make_demo_project
    from espdfu.flashing.flasher import FlashOptions
    from espdfu.worlds import open_usb, virtual_world

    from .app import EspdfuApp

    overrides: dict[str, object] = {}
    sim = args.sim
    labels_dir = config_dir()
    if demo_root is not None:
        demo = make_demo_project(demo_root)
        project_dir = demo.project_dir
        overrides["build_command"] = demo.build_command
        sim = sim or demo.sim_spec
        labels_dir = demo.config_dir
    else:
        project_dir = args.project_dir or find_project(Path.cwd()) or Path.cwd()
    if args.build_dir:
        overrides["build_dir"] = args.build_dir
    if args.build_cmd:
        overrides["build_command"] = tuple(shlex.split(args.build_cmd))
    if args.auto_flash:
        overrides["auto_flash"] = True
    if args.no_mouse:
        overrides["mouse"] = False
    ids = [b.id for b in EspdfuApp.BINDINGS if isinstance(b, Binding) and b.id]
    settings = load_settings(project_dir, overrides=overrides, binding_ids=ids)
    bench = workbench_settings(
        settings,
        labels=load_labels(labels_dir) if demo_root else None,
        flash=FlashOptions(progress_interval_s=PROGRESS_INTERVAL_S),
    )
    if demo_root is not None:
        usb_world, bus = virtual_world(sim)
    else:
        usb_world = open_usb(sim)
    workbench = Workbench(
        usb_world,
        bench,
        save_label=lambda path, label: save_label(path, label, config_dir=labels_dir),
    )
    if demo_root is not None:  # the demo's finger presses the virtual boards' buttons
        from espdfu.demo.finger import Finger

        workbench.subscribe(Finger(bus, workbench).see)
    facts = [
        f"Project: {project_dir}" + (" (demo: a throw-away copy)" if demo_root else ""),
        f"Build folder: {bench.build_dir}",
        f"Build command: {' '.join(bench.build_command)}",
        f"USB: {usb_world.description}",
        "Config files read: " + (", ".join(map(str, settings.sources)) or "none"),
        f"Board labels are kept in {labels_dir / 'labels.toml'}"
        + (" (the demo's own)" if demo_root else ""),
    ]
    app = EspdfuApp(
        workbench,
        project=project_dir.name,
        demo=demo_root is not None,
        facts=facts,
        keymap=dict(settings.keys),
    )
    return app, settings.mouse


if __name__ == "__main__":
    raise SystemExit(main())

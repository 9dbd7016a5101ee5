"""``espdfu report``: what a bug report about a real board needs, in one file, and nothing else.

The file holds the versions (espdfu, Python, pyusb, libusb and where it came from, the OS and
kernel), the boards connected with their descriptors and state, the permission state (udev
rule, groups, the boards' device files) and the newest traces the app kept plus those named.
The home folder is written ``~`` everywhere; no other file of the user's is read. Whatever
cannot be gathered (no libusb, no permission) is said in the file, which is still written.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import sys
from collections import deque
from pathlib import Path

from .. import __version__, udev
from ..config import traces_dir
from ..errors import EspdfuError, InputError
from ..fsutil import atomic_write
from ..units import format_size
from ..usb.boards import Board, descriptors, read_state, scan
from ..usb.protocol import DeviceGone
from ..usb.trace import trace_files
from ..usb.transport import Usb, UsbFault
from ..worlds import open_usb, sim_spec
from .common import Commands, Exit, add_command, add_sim

DESCRIPTION = (
    "Write one file for a bug report: the versions of espdfu, Python, pyusb, libusb, the OS "
    "and kernel; the boards connected, their descriptors and state; the permission state "
    "(udev rule, your groups, the boards' device files); the newest traces the app kept and "
    "those you name. Your home folder is written as ~, and nothing else of your files is "
    "read. Read the file before you send it."
)
LAST_TRACES = 3
"""The newest traces of the app's folder a report includes."""
TRACE_LINES = 2000
"""Of a longer trace, the report keeps this many lines from its start and as many from its end."""
_PACKAGES = ("espdfu-tui", "pyusb", "libusb-package", "pyserial", "textual")
_RULE_FOLDERS = (Path("/etc/udev/rules.d"), Path("/run/udev/rules.d"), Path("/lib/udev/rules.d"))


def add_commands(commands: Commands) -> None:
    summary = "write one file with what a bug report needs"
    report = add_command(commands, "report", _report, summary, DESCRIPTION)
    add_sim(report)
    report.add_argument(
        "-o", "--output", type=Path, metavar="FILE",
        help="where to write it (default: espdfu-report-DATE-TIME.md in the current folder)",
    )  # fmt: skip
    report.add_argument(
        "--trace", action="append", default=[], type=Path, metavar="FILE",
        help="include this trace too (from `espdfu flash --trace FILE`); repeatable",
    )  # fmt: skip


def _report(args: argparse.Namespace) -> int:
    now = datetime.datetime.now(datetime.timezone.utc)
    output = args.output or Path(f"espdfu-report-{now:%Y%m%d-%H%M%S}.md")
    traces = [*args.trace, *reversed(trace_files(traces_dir())[:LAST_TRACES])]
    sections, contents = gather(args.sim, traces, now)
    text = home_hidden("\n".join(sections))
    try:
        atomic_write(output, text.encode())
    except EspdfuError as error:
        raise InputError(f"The report was not written. {error.message}", error.hint) from None
    print(f"Wrote {output} ({format_size(len(text.encode()))}). It holds:")
    for item in contents:
        print(f"  - {home_hidden(item)}")
    print("Your home folder is written as ~; nothing else of your files is in it.")
    print(
        "Read it, then attach it to your issue with what you did and what you expected "
        "(docs/troubleshooting.md, 'A real board does something the docs do not say')."
    )
    return Exit.OK


def gather(
    sim: str | None, traces: list[Path], now: datetime.datetime
) -> tuple[list[str], list[str]]:
    """The report's text (in sections) and what it holds (one line per part, for the user)."""
    sections = [
        "# espdfu report",
        "",
        f"Written {now:%Y-%m-%d %H:%M} UTC by `espdfu report`.",
    ]
    contents = ["versions: espdfu, Python, its packages, libusb, the OS and kernel"]
    usb: Usb | None = None
    try:
        usb = open_usb(sim)
        usb_text = usb.description
    except EspdfuError as error:
        usb_text = f"{error.message} {error.hint}".strip()
    sections += ["", "## Versions", "", *_versions(usb_text)]
    board_lines, boards = _boards(usb)
    sections += ["", "## Boards", "", *board_lines]
    contents.append(
        f"{len(boards)} board{'s' if len(boards) != 1 else ''} with descriptors and state"
    )
    real_usb = usb if not sim_spec(sim) else None  # virtual boards have no device files
    sections += ["", "## Permission", "", *_permission(real_usb, boards)]
    contents.append("the permission state: the udev rule, your groups, the boards' device files")
    sections += ["", "## Traces", ""]
    if not traces:
        sections.append(f"None: the app keeps them in {traces_dir()} when [flash] trace = true.")
    for path in traces:
        sections += _trace(path)
    contents.append(
        f"{len(traces)} trace{'s' if len(traces) != 1 else ''}"
        + (": " + ", ".join(str(path) for path in traces) if traces else "")
    )
    return [*sections, ""], contents


def home_hidden(text: str) -> str:
    """``text`` with the home folder written ``~`` (both as given and as resolved)."""
    home = Path.home()
    for form in {str(home.resolve()), str(home)}:
        if len(form) > 1:  # /home/me, not the start of /home/meg
            text = re.sub(re.escape(form) + r"(?![\w.-])", "~", text)
    return text


def _versions(usb_text: str) -> list[str]:
    packages = []
    for name in _PACKAGES:
        try:
            packages.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            packages.append(f"{name} (not installed)")
    uname = platform.uname()
    return [
        f"- espdfu {__version__}; {', '.join(packages)}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}) "
        f"at {sys.executable}",
        f"- USB: {usb_text}",
        f"- OS: {uname.system} {uname.release} ({_os_name(uname.system)}), {uname.machine}",
        f"- kernel: {uname.version}",
    ]


def _os_name(system: str) -> str:
    """The distribution on Linux (os-release's PRETTY_NAME), the version elsewhere."""
    if system == "Linux":
        try:
            info = platform.freedesktop_os_release()
        except OSError:
            return "distribution unknown"
        return info.get("PRETTY_NAME", info.get("NAME", "distribution unknown"))
    if system == "Darwin":
        return f"macOS {platform.mac_ver()[0]}"
    return platform.platform()


def _boards(usb: Usb | None) -> tuple[list[str], list[Board]]:
    if usb is None:
        return ["Not listed: no USB library (above)."], []
    try:
        boards = scan(usb)
    except (UsbFault, DeviceGone, EspdfuError) as error:
        return [f"Not listed: {error}."], []
    if not boards:
        return ["None connected (Espressif devices and DFU devices are listed)."], []
    lines = []
    for board in boards:
        device = usb.find(board.path)
        lines += [
            f"### {board.path}: {board.chip_name}, {board.mode.value}, {read_state(usb, board)}",
            "",
            "```json",
            json.dumps(
                {**board.as_dict(), "descriptors": descriptors(device) if device else None},
                indent=1,
            ),
            "```",
            "",
        ]
    return lines, boards


def _permission(usb: Usb | None, boards: list[Board]) -> list[str]:
    if not sys.platform.startswith("linux"):
        return [f"Not Linux ({sys.platform}): no udev; each board's access is above."]
    lines = [f"- user: uid {os.geteuid()}{' (root)' if os.geteuid() == 0 else ''}, {_groups()}"]
    lines.append(f"- espdfu's udev rule: {_rule_state()}")
    others = sorted(
        str(path)
        for folder in _RULE_FOLDERS
        for path in _listing(folder)
        if path != udev.RULE_PATH and "303a" in _read_small(path).lower()
    )
    lines.append(f"- other udev rules naming 303a: {', '.join(others) or 'none'}")
    lines.append(f"- udevd: {'running' if Path('/run/udev/control').exists() else 'not running'}")
    for board in boards:
        device = usb.find(board.path) if usb else None
        if device is not None:
            lines.append(f"- {board.path}: {_node(device.bus, device.address)}")
    return lines


def _groups() -> str:
    import grp

    names = []
    for gid in sorted(set(os.getgroups())):
        try:
            names.append(grp.getgrgid(gid).gr_name)
        except KeyError:
            names.append(str(gid))
    member = "in" if udev.GROUP in names else "not in"
    return f"groups {', '.join(names) or 'none'} ({member} {udev.GROUP})"


def _rule_state() -> str:
    text = _read_small(udev.RULE_PATH)
    if not text:
        return f"{udev.RULE_PATH} is not installed"
    if text in (udev.rule_text(), udev.rule_text(None)):
        return f"{udev.RULE_PATH} is installed, as espdfu writes it"
    return f"{udev.RULE_PATH} differs from what espdfu writes: {text!r}"


def _node(bus: int, address: int) -> str:
    """The board's usbfs device file: its mode, group, and whether this user may open it."""
    node = Path(f"/dev/bus/usb/{bus:03d}/{address:03d}")
    try:
        info = node.stat()
    except OSError as error:
        return f"{node}: {error.strerror or error}"
    import grp

    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    allowed = "you may open it" if os.access(node, os.R_OK | os.W_OK) else "you may NOT open it"
    return (
        f"{node}: mode {info.st_mode & 0o777:o}, owner uid {info.st_uid}, group {group}; {allowed}"
    )


def _listing(folder: Path) -> list[Path]:
    try:
        return [path for path in folder.iterdir() if path.suffix == ".rules"]
    except OSError:
        return []


def _read_small(path: Path) -> str:
    """A system file's text (a udev rule), "" when absent or unreadable."""
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            return file.read(64 * 1024)
    except OSError:
        return ""


def _trace(path: Path) -> list[str]:
    """A trace as it is: whole when short, its start and its end when long."""
    head: list[str] = []
    tail: deque[str] = deque(maxlen=TRACE_LINES)
    count = 0
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            for count, line in enumerate(file, 1):  # the count is read after
                (head if count <= TRACE_LINES else tail).append(line.rstrip("\n"))
    except OSError as error:
        return [f"### {path}", "", f"Not readable: {error.strerror or error}.", ""]
    left_out = count - len(head) - len(tail)
    middle = [f"… {left_out} lines left out …"] if left_out > 0 else []
    return [f"### {path} ({count} lines)", "", "```jsonl", *head, *middle, *tail, "```", ""]

"""``espdfu monitor``: the boards' consoles, prefixed, as text or JSON, until a pattern says."""

from __future__ import annotations

import argparse
import json
import queue
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from ..config import is_port_path
from ..consoles.health import Health, RunState
from ..consoles.lines import Line
from ..consoles.ports import (
    DEFAULT_BAUD,
    Back,
    ConsoleEvent,
    Gone,
    Port,
    Reader,
    Refused,
    console_finder,
    open_port,
    ports,
    serial_ports,
)
from ..errors import EspdfuError, InputError
from ..files.backtrace import Symbols, project_elf
from ..usb.boards import Mode, board_at
from ..usb.transport import Usb, open_libusb
from ..worlds import open_usb, sim_spec
from .common import (
    Commands,
    Exit,
    StopSignals,
    add_command,
    add_flag,
    add_json,
    add_sim,
    baud,
    board_name,
    note,
    port_paths,
    say_stopped,
    seconds,
)

FIRST_WAIT_SAY_S = 1.0
"""A console not open this long after the start (or after it went) is said to be waited for."""
WAIT_SAY_S = 30.0
"""And said again this often while it does not come."""

DESCRIPTION = (
    "Print the console of one or more boards, each line prefixed with its board, until "
    "stopped or until --until matches. A board is named by its USB port path (-p, as in "
    "`espdfu list`: its app's USB console is found there after each RESET) or by a serial "
    "port (PORT: a USB-UART bridge, the S3's USB-Serial-JTAG). A port that vanishes (RESET, "
    "download mode, a cable) is said and followed. Exit 0 when every board printed a line "
    "matching the first alternative of --until, 1 when one matched another alternative or "
    "--timeout passed first."
)


def add_commands(commands: Commands) -> None:
    monitor = add_command(
        commands,
        "monitor",
        _monitor,
        "print the boards' consoles",
        DESCRIPTION,
        runs_until_stopped=True,
        flashes=False,
    )
    monitor.add_argument("port", nargs="*", metavar="PORT", help="a serial port (/dev/ttyUSB0)")
    monitor.add_argument(
        "-p", "--path", action="append", default=[], metavar="USB_PATH", type=board_name,
        help="the board at this USB port path, or with this label (its app's USB console); "
        "repeatable",
    )  # fmt: skip
    add_flag(monitor, "--all", help="every Espressif USB console there is now")
    add_flag(monitor, "--list", help="list the serial ports (of --sim's boards, of -p's) and stop")
    monitor.add_argument(
        "--baud", type=baud, default=DEFAULT_BAUD,
        help="the speed of a UART port (default %(default)d; USB consoles ignore it)",
    )  # fmt: skip
    monitor.add_argument(
        "--until", metavar="REGEX",
        help="stop once each board printed a line matching REGEX; with alternatives "
        "('PASS|FAIL'), the first means success, any other failure",
    )  # fmt: skip
    monitor.add_argument(
        "--timeout", type=seconds, metavar="SECONDS", help="give up after SECONDS (exit 1)"
    )
    add_json(monitor, "one JSON object per line")
    monitor.add_argument(
        "--log-dir",
        type=Path,
        metavar="DIR",
        help="also append each board's lines to DIR/<board>.log",
    )
    monitor.add_argument(
        "--elf", type=Path, metavar="FILE",
        help="the app's ELF, to decode panic backtraces (default: the one "
        "build/project_description.json names, when there is one)",
    )  # fmt: skip
    add_sim(monitor)


def alternatives(pattern: str) -> list[re.Pattern[str]]:
    """The top-level alternatives of ``pattern`` ("PASS|FAIL" → PASS, FAIL), each compiled;
    a ``|`` inside brackets, a group or after a backslash does not split."""
    parts, depth, start, escaped, in_class = [], 0, 0, False, False
    for index, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(pattern[start:index])
            start = index + 1
    parts.append(pattern[start:])
    try:
        re.compile(pattern)
        return [re.compile(part) for part in parts]
    except re.error as error:
        raise InputError(
            f"--until {pattern!r} is not a regular expression: {error}.",
            "Use Python's syntax, e.g. --until 'PASS|FAIL'.",
        ) from None


class _Waits:
    """Each board whose console is not open, said once soon (not for a console that opens at
    once) and again every :data:`WAIT_SAY_S`, with why as far as the bus tells."""

    def __init__(
        self,
        labels: list[str],
        world: Usb | None,
        as_json: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        now = clock()
        self._next = dict.fromkeys(labels, now + FIRST_WAIT_SAY_S)
        self._since = dict.fromkeys(labels, now)
        self._world = world
        self._as_json = as_json

    def seen(self, label: str, event: ConsoleEvent) -> None:
        if isinstance(event, Back):
            self._next.pop(label, None)
        elif isinstance(event, Gone):
            self._since[label] = self._clock()
            self._next[label] = self._clock() + FIRST_WAIT_SAY_S

    def say_due(self) -> None:
        now = self._clock()
        for label, due in list(self._next.items()):
            if now < due:
                continue
            self._next[label] = now + WAIT_SAY_S
            waited = now - self._since[label]
            why = self._why(label)
            still = f"still waiting after {waited:.0f} s" if waited > WAIT_SAY_S else "waiting"
            record = {"board": label, "event": "waiting", "message": why}
            _say(self._as_json, record, f"{label}  -- {still}: {why}")

    def _why(self, label: str) -> str:
        """What the bus says of the board at ``label`` (a USB port path), if it says anything."""
        if not is_port_path(label):
            return f"{label} is not there (reset or unplugged); it is opened when it is back."
        try:
            world = self._world or open_libusb()
            board = board_at(world, label)
        except EspdfuError:  # no libusb here: the bus cannot say
            return "no console at that USB port path yet; it is opened when it comes."
        if board is None:
            return f"no board is at {label} now; its app's console is opened when it comes."
        if board.mode in (Mode.ROM, Mode.DFU):
            mode = "ROM download" if board.mode is Mode.ROM else "DFU"
            return f"{label} is in {mode} mode: its app's console appears after a RESET."
        return (
            f"{label} runs an app ({board.mode.value}) with no console on its USB: it may print "
            "on a USB-UART bridge (name that port instead)."
        )


def _monitor(args: argparse.Namespace) -> int:
    args.path = port_paths(args.path)
    if args.list:
        _list(args)
        return Exit.OK
    until = alternatives(args.until) if args.until else None
    world, boards = _boards(args)
    waits = _Waits(list(boards), world, args.json)
    elf = args.elf or project_elf(Path("build"))
    symbols = Symbols(elf) if elf is not None else None
    if args.log_dir is not None:
        args.log_dir.mkdir(parents=True, exist_ok=True)
    events: queue.Queue[tuple[str, ConsoleEvent]] = queue.Queue()
    readers = [
        Reader(lambda event, label=label: events.put((label, event)), find, baud=args.baud)  # type: ignore[misc]
        for label, find in boards.items()
    ]
    logs = {
        label: (args.log_dir / f"{_file_name(label)}.log").open("a", encoding="utf-8")
        for label in boards
        if args.log_dir is not None
    }
    outcome: dict[str, int] = {}
    health = {label: Health() for label in boards}
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    with StopSignals(lambda: None) as stop:
        for reader in readers:
            reader.start()
        try:
            while stop.signum is None and (until is None or len(outcome) < len(boards)):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    if args.json:
                        _say(True, {"event": "timeout"}, "")
                    else:
                        note("--timeout passed.")
                    return Exit.FAILED
                waits.say_due()
                try:
                    label, event = events.get(timeout=min(left or 0.2, 0.2))
                except queue.Empty:
                    continue
                waits.seen(label, event)
                _show(args.json, label, event, health[label], logs.get(label), symbols)
                if until is not None and isinstance(event, Line) and label not in outcome:
                    matched = next((i for i, p in enumerate(until) if p.search(event.text)), None)
                    if matched is not None:
                        outcome[label] = matched
                        _matched(args.json, label, until, matched)
        finally:
            for reader in readers:
                reader.stop()
            while not events.empty():  # a last line without its newline, given at the close
                label, event = events.get_nowait()
                if isinstance(event, Line):
                    _show(args.json, label, event, health[label], logs.get(label), symbols)
            for log in logs.values():
                log.close()
        if stop.signum is not None:
            lines = f"{len(outcome)} of {len(boards)} boards matched --until" if until else ""
            return say_stopped(stop.signum, [lines] if lines else [])
    return Exit.OK if all(index == 0 for index in outcome.values()) else Exit.FAILED


def _matched(as_json: bool, label: str, alternatives: list[re.Pattern[str]], index: int) -> None:
    """Which alternative of --until a board's line matched, and what that means (on stderr as
    text, beside the run's other notes; a JSON line on stdout)."""
    pattern = alternatives[index].pattern
    if as_json:
        record = {"board": label, "event": "matched", "pattern": pattern, "success": index == 0}
        _say(True, record, "")
        return
    text = f"{label} matched {pattern!r} of --until: a {'success' if index == 0 else 'failure'}"
    if index:
        text += f" (the first alternative, {alternatives[0].pattern!r}, means success)"
    note(f"{text}.")


def _list(args: argparse.Namespace) -> None:
    """The serial ports there are now: of the virtual boards with --sim, only those of the
    boards at -p's port paths when it is given."""
    spec = sim_spec(args.sim)
    if spec:
        serial = serial_ports(open_usb(spec))
        devices = {path: serial.at(path) for path in serial.espressif()}
        now = {True: "virtual board", False: "virtual board, no console now"}
        found = [Port(dev or "-", path, None, now[bool(dev)]) for path, dev in devices.items()]
    else:
        found = ports()
    for port in found:
        if not args.path or port.usb_path in args.path:
            print(f"{port.device}  {port.usb_path or '-'}  {port.description}")


def _boards(args: argparse.Namespace) -> tuple[Usb | None, dict[str, Callable[[], str | None]]]:
    """The virtual boards' world, if any, and each board to read, by label, with where its
    console is now."""
    spec = sim_spec(args.sim)
    world = open_usb(spec) if spec else None  # real boards' consoles need no libusb
    boards = {path: console_finder(path, world) for path in args.path}
    for device in args.port:
        open_port(device, args.baud).close()  # a clear error now, not a silent wait
        boards[device] = lambda device=device: device  # type: ignore[misc]
    if args.all:
        for path in serial_ports(world).espressif():
            boards.setdefault(path, console_finder(path, world))
    if not boards:
        raise InputError(
            "No board to monitor.",
            "Name one: -p USB_PATH (see espdfu list), a serial port, or --all "
            "(espdfu monitor --list shows the ports there are now).",
        )
    return world, boards


def _file_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", label.strip("/"))


def _show(
    as_json: bool,
    label: str,
    event: ConsoleEvent,
    health: Health,
    log: TextIO | None,
    symbols: Symbols | None,
) -> None:
    if isinstance(event, Line):
        before = replace(health.reading(), now=0.0)
        state = health.see(event)
        reading = health.reading()
        places = [str(symbols.lookup(pc)) for pc in event.backtrace] if symbols else []
        if log is not None:
            log.write("".join(f"{text}\n" for text in [event.text, *places]))
            log.flush()
        record: dict[str, object] = {"board": label, "level": event.level and event.level.value}
        record |= {"text": event.text, "state": state.word, "words": reading.words}
        if places:
            record["decoded"] = places
        lines = [event.text, *(f"  {place}" for place in places)]
        if state is not RunState.UNKNOWN and replace(reading, now=0.0) != before:
            lines.append(f"-- {reading.words}")  # the board's state, when it changes
        _say(as_json, record, "\n".join(f"{label}  {line}" for line in lines))
    elif isinstance(event, Gone):
        gone = f"{label}  -- console gone (reset or unplugged); waiting for it"
        _say(as_json, {"board": label, "event": "gone"}, gone)
    elif isinstance(event, Back):
        health.reopened(event.at)
        record = {"board": label, "event": "open", "port": event.device}
        _say(as_json, record, f"{label}  -- console open on {event.device}")
    elif isinstance(event, Refused):
        error = event.error
        record = {"board": label, "event": "refused", "message": error.message, "hint": error.hint}
        _say(as_json, record, f"{label}  -- {error.message} {error.hint}")


def _say(as_json: bool, record: Mapping[str, object], text: str) -> None:
    print(json.dumps(record) if as_json else text, file=sys.stdout, flush=True)

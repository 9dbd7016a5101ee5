"""Board consoles through pyserial: found by USB port path, read as lines, followed across resets.

An ESP32-S2/S3 app whose console is the chip's own USB (ESP-IDF's USB-CDC console, TinyUSB's
CDC) comes back after RESET as a CDC-ACM port at the board's USB port path; pyserial's
``location`` names that path (``1-1.2:1.0``). A port that vanishes (RESET, download mode, a
cable) is a state: the reader says so and opens it again when it is back.
"""

from __future__ import annotations

import errno
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import serial
import serial.tools.list_ports

from ..chips import ESPRESSIF_VID
from ..errors import EspdfuError, InputError
from ..loops import Worker
from ..usb.transport import SerialPorts, Usb
from .lines import Line, Splitter

try:
    from termios import error as _termios_error

    _TERMIOS_ERRORS: tuple[type[Exception], ...] = (_termios_error,)
    """pyserial lets a failed tcflush out as it is: a terminal gone as it opens (a board reset
    or unplugged at that moment) raises it, not an OSError."""
except ImportError:  # Windows: no terminals
    _TERMIOS_ERRORS = ()

DEFAULT_BAUD = 115200
"""ESP-IDF's default console speed (CONFIG_ESP_CONSOLE_UART_BAUDRATE); a USB CDC port ignores it."""
_REOPEN_S = 0.2
_READ_TIMEOUT_S = 0.1


class PortError(EspdfuError):
    """A console port cannot be read (not there, no permission, held by another program)."""


class NotASerialPort(PortError, InputError):
    """What was named is no serial port: a file, a folder, a pipe, a device with no terminal."""


_NOT_A_PORT_HINT = (
    "Name a serial port (espdfu monitor --list shows those there are now), or a board by its "
    "USB port path with -p."
)


@dataclass(frozen=True)
class Port:
    """A serial port the system has now."""

    device: str
    """What opens it: /dev/ttyACM0, COM3."""
    usb_path: str | None
    """The USB port path of the device it belongs to, in ``espdfu list``'s form."""
    vid: int | None
    description: str


def ports() -> list[Port]:
    """Every serial port there is now."""
    found = []
    for info in serial.tools.list_ports.comports():
        location = info.location or ""
        found.append(
            Port(info.device, location.split(":")[0] or None, info.vid, info.description or "")
        )
    return found


_PORTS_FRESH_S = 0.5
_ports_lock = threading.Lock()
_ports_seen: tuple[float, list[Port]] = (float("-inf"), [])


def recent_ports() -> list[Port]:
    """:func:`ports`, at most :data:`_PORTS_FRESH_S` old: readers waiting for their boards'
    consoles share one look at the system (pyserial reads sysfs for every tty each time)."""
    global _ports_seen
    with _ports_lock:
        at, found = _ports_seen
        if time.monotonic() - at >= _PORTS_FRESH_S:
            found = ports()
            _ports_seen = (time.monotonic(), found)
        return found


def port_at(usb_path: str) -> str | None:
    """The serial port of the board at ``usb_path``, if it has one now (its app's CDC console)."""
    return next((port.device for port in recent_ports() if port.usb_path == usb_path), None)


class SystemSerial:
    """The system's serial ports, as pyserial lists them: the :class:`SerialPorts` of real USB."""

    def at(self, usb_path: str) -> str | None:
        return port_at(usb_path)

    def espressif(self) -> list[str]:
        return [port.usb_path for port in ports() if port.vid == ESPRESSIF_VID and port.usb_path]

    def bridges_beside(self, usb_path: str) -> list[tuple[str, str]]:
        return bridges_beside(usb_path, recent_ports())


BRIDGE_MAKERS = {0x10C4: "CP210x", 0x1A86: "CH34x", 0x0403: "FTDI"}
"""The USB-UART bridges on Espressif's DevKits and their likes, by USB vendor: Silicon Labs
(CP2102N on ESP32-S2/S3-DevKitC), WCH (CH343P, CH340 on others), FTDI (FT2232HL on ESP-Prog)."""


def bridges_beside(usb_path: str, found: list[Port]) -> list[tuple[str, str]]:
    """Of the serial ports ``found``, the USB-UART bridges at the other ports of the hub that
    ``usb_path`` is on ("1-4.3" beside "1-4.2"), as (port path, ``CP210x at /dev/ttyUSB0``)."""
    beside = []
    for port in found:
        maker = BRIDGE_MAKERS.get(port.vid or 0)
        other = port.usb_path or ""
        if maker and other != usb_path and _hub(other) == _hub(usb_path):
            beside.append((other, f"{maker} at {port.device}"))
    return beside


def _hub(usb_path: str) -> str:
    """The hub a port path's device is on: "1-4" for "1-4.2", bus 1's root hub for "1-2"."""
    return usb_path.rpartition(".")[0] if "." in usb_path else usb_path.partition("-")[0] + "-"


def serial_ports(usb_world: Usb | None = None) -> SerialPorts:
    """Where the boards of ``usb_world`` have their serial ports: its own when it knows them
    (virtual boards), else the system's."""
    found = usb_world.serial if usb_world is not None else None
    return found if found is not None else SystemSerial()


def console_finder(usb_path: str, usb_world: Usb | None = None) -> Callable[[], str | None]:
    """Where the console of the board at ``usb_path`` is, each time it is asked."""
    serial_world = serial_ports(usb_world)
    return lambda: serial_world.at(usb_path)


def open_port(device: str, baud: int = DEFAULT_BAUD) -> serial.SerialBase:
    """Open ``device`` for reading, alone (as other well-behaved programs, idf.py monitor among
    them, lock it), or raise :class:`PortError` saying why not.

    DTR and RTS end deasserted, the state the reset sequences (:mod:`.bridge`) start from, and
    never pass through RTS alone, which on a DevKit's USB-UART bridge is EN low: a reset. The
    system raises both as the port opens (Linux does, whatever was asked), so both stay raised
    through the open (pyserial sets DTR, then RTS) and RTS goes down first: DTR alone only pulls
    GPIO0, which the chip reads at a reset alone.
    ``device`` may be a pyserial URL (``rfc2217://``; a virtual board's bridge).
    """
    _check_is_a_device(device)
    try:
        port = serial.serial_for_url(
            device, baud, timeout=_READ_TIMEOUT_S, exclusive=True, do_not_open=True
        )
        port.dtr = port.rts = True
        port.open()
        _release_lines(port)
        return port
    except (serial.SerialException, OSError, ValueError, *_TERMIOS_ERRORS) as error:
        code = _errno(error)
        if code == errno.ENOTTY:  # a device, but no terminal (/dev/zero)
            raise NotASerialPort(
                f"{device} is not a serial port: a device, but not a terminal.", _NOT_A_PORT_HINT
            ) from None
        if code == errno.ENOENT:
            raise NotASerialPort(f"There is no {device}.", _NOT_A_PORT_HINT) from None
        if code in (errno.EACCES, errno.EPERM):
            raise PortError(
                f"No permission to open {device}.",
                "On Linux, add yourself to the group that owns it (often dialout: "
                "sudo usermod -aG dialout $USER, then log in again).",
            ) from None
        if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "lock" in str(error):
            raise PortError(
                f"{device} is in use by another program.",
                "Close the other serial monitor (idf.py monitor, screen, minicom) and try again.",
            ) from None
        raise PortError(
            f"{device} cannot be opened: {getattr(error, 'strerror', None) or error}.",
            "Check the name (espdfu monitor --list shows the ports there are now).",
        ) from None


def _release_lines(port: serial.SerialBase) -> None:
    """RTS down, then DTR. A port without the lines (a pseudo-terminal) is read all the same,
    as pyserial opens it: only a reset through it will fail, saying why."""
    try:
        port.rts = False
        port.dtr = False
    except OSError as error:
        if _errno(error) not in (errno.EINVAL, errno.ENOTTY):
            port.close()
            raise


def _errno(error: BaseException) -> int | None:
    """The system's error number behind ``error``: pyserial words a failed termios call (not a
    terminal) as a SerialException without one, raised from the termios error that has it; a
    termios error itself (a terminal gone as it opened: EIO) has it first in its arguments."""
    code = getattr(error, "errno", None)
    if code is None and error.args and isinstance(error.args[0], int):
        return int(error.args[0])
    cause = error.__context__
    if code is None and cause is not None:
        return _errno(cause)
    return code if isinstance(code, int) else None


def _check_is_a_device(device: str) -> None:
    """Refuse, before opening it, what exists and is no device (opening a pipe may block)."""
    try:
        mode = Path(device).stat().st_mode
    except (OSError, ValueError):
        return  # not there: opening it says so (a Windows COM port is never there as a file)
    if stat.S_ISCHR(mode):
        return
    kind = "a folder" if stat.S_ISDIR(mode) else "a pipe" if stat.S_ISFIFO(mode) else "a file"
    raise NotASerialPort(f"{device} is not a serial port: it is {kind}.", _NOT_A_PORT_HINT)


class Gone(NamedTuple):
    """The port went away (RESET, download mode, a cable); the reader waits for it."""

    at: float


class Back(NamedTuple):
    """The port is there again (or for the first time) and open."""

    device: str
    at: float


class Refused(NamedTuple):
    """The port is there but cannot be opened (no permission, another program holds it);
    said once until that changes, and looked at again meanwhile."""

    error: PortError
    at: float


ConsoleEvent = Line | Gone | Back | Refused
"""What a :class:`Reader` hands on."""


PortAction = Callable[[serial.SerialBase], None]
"""Something done with an open port between two reads (a reset through a bridge's lines)."""
ActionDone = Callable[[EspdfuError | None], None]
"""Told how a :data:`PortAction` went: None, or the error it (or opening the port) raised."""


class Reader:
    """Reads one board's console on a thread of its own and hands each line and each change to
    ``deliver``. ``find`` says where the console is now (None: not there); it is asked again
    each time the port vanishes, so the reader follows a board across resets. :meth:`stop`
    closes the port: it is held only while read. :meth:`act` does something with the port it
    holds, between two reads, so that no line is lost around it (a board reset into its app
    prints its start-up at once)."""

    def __init__(
        self,
        deliver: Callable[[ConsoleEvent], None],
        find: Callable[[], str | None],
        *,
        baud: int = DEFAULT_BAUD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._deliver = deliver
        self._find = find
        self._baud = baud
        self._clock = clock
        self._worker = Worker(self._run, "espdfu-console")
        self._action: tuple[PortAction, ActionDone] | None = None
        self._acting = threading.Lock()

    def act(self, action: PortAction, done: ActionDone) -> None:
        """Do ``action`` with the port once it is open (now, if it is), then tell ``done``
        on the reader's thread; a port that cannot be opened tells ``done`` why instead."""
        with self._acting:
            self._action = (action, done)

    def start(self) -> None:
        self._worker.start()

    def stop(self, wait: bool = True) -> None:
        """Stop reading; with ``wait``, return once the port is closed (within a read's
        timeout, a tenth of a second)."""
        self._worker.stop(wait=wait)

    def _run(self) -> None:
        said: str | None = None  # the refusal last delivered
        while not self._worker.stopping:
            device = self._find()
            try:
                port = open_port(device, self._baud) if device else None
            except PortError as error:
                port = None  # not there (yet): a state, looked at again shortly
                if device and Path(device).exists() and error.message != said:
                    said = error.message
                    self._deliver(Refused(error, self._clock()))
                if device:
                    self._take_action(None, error)
            if port is None:
                self._worker.wait(_REOPEN_S)
                continue
            said = None
            self._deliver(Back(port.port or "", self._clock()))
            self._read(port)
            if not self._worker.stopping:
                self._deliver(Gone(self._clock()))

    def _read(self, port: serial.SerialBase) -> None:
        splitter = Splitter()
        with port:
            while not self._worker.stopping:
                self._take_action(port)
                try:
                    data = port.read(max(1, port.in_waiting))
                except (serial.SerialException, OSError):
                    break
                for line in splitter.feed(data, self._clock()):
                    self._deliver(line)
        for line in splitter.flush(self._clock()):
            self._deliver(line)

    def _take_action(
        self, port: serial.SerialBase | None, refused: PortError | None = None
    ) -> None:
        with self._acting:
            taken, self._action = self._action, None
        if taken is None:
            return
        action, done = taken
        if port is None:
            done(refused)
            return
        try:
            action(port)
        except EspdfuError as error:
            done(error)
        else:
            done(None)

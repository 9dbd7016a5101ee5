"""A DevKit's USB-UART bridge, virtual: a serial port that carries the chip's UART console and
whose DTR and RTS lines reset the chip, reached through pyserial like a real one.

pyserial opens ``espdfusim://<board's port path>`` with :class:`BridgeSerial` (its URL-handler
mechanism, ``serial.protocol_handler_packages``: this package is added to it on import). The
data goes through a pseudo-terminal the bridge keeps for its life, as a bridge stays on the
bus whatever the chip does; what the chip prints while no host has the port open is lost, as a
UART's output is.

The lines drive the chip through the DevKit's auto-program circuit (two transistors; the table
"Auto program" of Espressif's ESP-Prog schematic, V2.1, and the DevKitC boards' alike). With
the lines as pyserial sets them (True: asserted, the pin low), EN is pulled low only by RTS
asserted with DTR not, GPIO0 only by DTR asserted with RTS not; with both equal nothing
happens, so opening or closing the port resets nothing. The chip samples GPIO0 as it leaves
reset: low, ROM download mode; high, its app. EN rises through an RC (a pull-up and a
capacitor to ground on DevKitC's EN): the chip leaves reset :data:`EN_RISE_S` after EN is
released, and GPIO0 is read then (the time is an assumption: no source gives it for these
boards; esptool's 50 ms between EN and GPIO0 is what covers it on real ones).
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import serial
from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from .firmware import Tty

if TYPE_CHECKING:
    from .board import VirtualBoard

SCHEME = "espdfusim"
EN_RISE_S = 0.01
"""From EN's release to the chip leaving reset (an assumption: see the module's docstring)."""

_bridges: weakref.WeakValueDictionary[str, VirtualBridge] = weakref.WeakValueDictionary()
"""Each virtual board's bridge by the board's port path (the newest bus's, in tests)."""

if __package__ not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append(__package__)


def bridge_url(board_path: str) -> str:
    """The serial port of the bridge wired to the board at ``board_path``."""
    return f"{SCHEME}://{board_path}"


class Resettable(Protocol):
    """A chip as its EN and GPIO0 pins see it."""

    def hold_reset(self) -> None:
        """EN pulled low: the chip stops, off the bus."""

    def press_reset(self, boot: bool = False) -> None:
        """EN released: the chip starts, in ROM download mode when GPIO0 was low (``boot``)."""


class AutoProgram:
    """The DevKit's two transistors between a bridge's DTR/RTS and a chip's EN/GPIO0 (the
    module's docstring); the emulated boards of the real-USB tests are wired through it too."""

    def __init__(self, chip: Resettable) -> None:
        self.chip = chip
        self.lines: list[tuple[bool, bool]] = []
        """Every (DTR, RTS) the host set, in order (what tests read)."""
        self._lock = threading.Lock()
        self._dtr = self._rts = False
        self._in_reset = False
        self._rising: threading.Timer | None = None

    @property
    def en_low(self) -> bool:
        return self._rts and not self._dtr

    @property
    def gpio0_low(self) -> bool:
        return self._dtr and not self._rts

    def set_lines(self, dtr: bool, rts: bool) -> None:
        """The host set DTR and RTS: EN follows at once, the chip leaves reset a little later."""
        with self._lock:
            self.lines.append((dtr, rts))
            self._dtr, self._rts = dtr, rts
            if self.en_low and not self._in_reset:
                self._in_reset = True
                if self._rising is not None:
                    self._rising.cancel()  # a glitch shorter than EN's rise: still in reset
                    self._rising = None
                else:
                    self.chip.hold_reset()
            elif not self.en_low and self._in_reset:
                self._in_reset = False
                self._rising = threading.Timer(EN_RISE_S, self._out_of_reset)
                self._rising.daemon = True
                self._rising.start()

    def _out_of_reset(self) -> None:
        with self._lock:
            if self._rising is not threading.current_thread():
                return
            self._rising = None
            boot = self.gpio0_low
        self.chip.press_reset(boot=boot)  # EN released: as the end of a RESET tap


class VirtualBridge(AutoProgram):
    """The bridge of one virtual board: its console's terminal and the two lines."""

    def __init__(self, board: VirtualBoard) -> None:
        super().__init__(board)
        self.tty = Tty(holds=False)

    def register(self, board_path: str) -> None:
        _bridges[board_path] = self


class BridgeSerial(SerialBase):  # type: ignore[misc]  # pyserial has no types
    """pyserial's port for ``espdfusim://`` URLs (found by pyserial as ``Serial`` in
    :mod:`.protocol_espdfusim`): the bridge's terminal for the data, its lines for DTR/RTS."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._bridge: VirtualBridge | None = None
        self._tty: serial.Serial | None = None
        super().__init__(*args, **kwargs)

    def open(self) -> None:
        if self._tty is not None:
            raise SerialException("Port is already open.")
        path = urlsplit(str(self.port)).netloc
        bridge = _bridges.get(path)
        if bridge is None:
            raise SerialException(2, f"could not open port {self.port}: no virtual bridge there")
        self._tty = serial.Serial(
            bridge.tty.port, self.baudrate, timeout=self.timeout, exclusive=self._exclusive
        )
        self._bridge = bridge
        self.is_open = True
        # As on Linux: the tty layer raises both lines as a port opens (tty_port.c,
        # tty_port_block_til_ready, whenever the speed is not 0), then pyserial sets DTR and
        # RTS as asked, one ioctl each (serialposix.py), DTR first.
        bridge.set_lines(True, True)
        bridge.set_lines(self._dtr_state, True)
        bridge.set_lines(self._dtr_state, self._rts_state)

    def close(self) -> None:
        if self.is_open and self._bridge is not None and self._tty is not None:
            self.is_open = False
            self._bridge.set_lines(False, False)  # hang-up on close drops both: nothing happens
            self._tty.close()
            self._tty = None
        super().close()

    @property
    def in_waiting(self) -> int:
        waiting: int = self._open_tty().in_waiting
        return waiting

    def read(self, size: int = 1) -> bytes:
        data: bytes = self._open_tty().read(size)
        return data

    def write(self, data: Any) -> int | None:
        written: int | None = self._open_tty().write(data)
        return written

    def reset_input_buffer(self) -> None:
        self._open_tty().reset_input_buffer()

    def reset_output_buffer(self) -> None:
        self._open_tty().reset_output_buffer()

    def _reconfigure_port(self, *args: Any) -> None:
        if self._tty is not None:
            self._tty.timeout = self.timeout

    def _update_dtr_state(self) -> None:
        if self._bridge is not None:
            self._bridge.set_lines(self._dtr_state, self._rts_state)

    _update_rts_state = _update_dtr_state

    def _update_break_state(self) -> None:
        pass

    def _open_tty(self) -> serial.Serial:
        if not self.is_open or self._tty is None:
            raise PortNotOpenError()
        return self._tty

"""A virtual board's USB-UART bridge, reached through pyserial as a real one is: its lines drive
EN and GPIO0 through the DevKit's auto-program circuit, and Espressif's own sequences (esp-pylib,
through :mod:`espdfu.consoles.bridge`) put the board into download mode and back into its app."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator

import pytest
import serial

from espdfu.consoles import bridge
from espdfu.consoles.ports import NotASerialPort, Port, bridges_beside, open_port
from espdfu.sim import VirtualBoard
from espdfu.sim.board import BoardKind
from espdfu.sim.bridge import bridge_url
from tests.helpers.boardworld import world

DEADLINE_S = 10.0


@pytest.fixture
def bridged() -> Iterator[VirtualBoard]:
    """An S2 DevKit in download mode, its bridge's port a spec word away (``:bridge``)."""
    board = world("esp32s2:bridge").board("1-1.1")
    yield board
    board.unplug()


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def read_until(port: serial.SerialBase, text: str) -> str:
    seen = b""
    deadline = time.monotonic() + DEADLINE_S
    while text.encode() not in seen:
        assert time.monotonic() < deadline, f"no {text!r} in {seen!r}"
        seen += port.read(max(1, port.in_waiting))
    return seen.decode()


@pytest.mark.parametrize(
    ("dtr", "rts", "en_low", "gpio0_low"),
    [(False, False, False, False), (True, True, False, False),
     (False, True, True, False), (True, False, False, True)],
)  # fmt: skip
def test_the_two_transistors_truth_table(
    dtr: bool, rts: bool, en_low: bool, gpio0_low: bool
) -> None:
    """ESP-Prog's "Auto program" table in pyserial's terms: both lines equal, nothing happens."""
    board = VirtualBoard("esp32s2", BoardKind.ROM, bridge=True)
    assert board.bridge is not None
    board.bridge.set_lines(dtr, rts)
    assert (board.bridge.en_low, board.bridge.gpio0_low) == (en_low, gpio0_low)


def test_opening_and_closing_the_port_resets_nothing(bridged: VirtualBoard) -> None:
    board = bridged
    for _ in range(3):
        open_port(bridge_url(board.path)).close()
    time.sleep(0.2)  # longer than EN's rise and a re-enumeration
    assert board.mode == "rom" and board.present
    assert board.bridge is not None
    assert board.bridge.lines[-1] == (False, False)
    assert not any(rts and not dtr for dtr, rts in board.bridge.lines)  # EN never low


def test_the_classic_reset_enters_download_mode_and_the_hard_reset_runs_the_app(
    bridged: VirtualBoard,
) -> None:
    """From its app (off the bus: no USB) into ROM download mode, as its UART says, and back."""
    board = bridged
    port = open_port(bridge_url(board.path))
    try:
        bridge.into_app(port)
        read_until(port, "app_init: Project name:")
        assert not board.present  # an app without USB: only its UART says it runs
        bridge.into_download_mode(port)
        said = read_until(port, "waiting for download")
        assert "rst:0x1 (POWERON),boot:0x0 (DOWNLOAD(USB/UART0/1/SPI))" in said
        until(lambda: board.mode == "rom", "ROM download mode on the bus")
    finally:
        port.close()


def test_a_glitch_shorter_than_ens_rise_keeps_the_chip_in_reset(
    bridged: VirtualBoard,
) -> None:
    """The classic sequence passes through (True, True) between its two writes: EN is released
    for microseconds, far less than it takes to rise, so GPIO0 is low when the chip starts."""
    board = bridged
    assert board.bridge is not None
    for dtr, rts in [(False, True), (True, True), (True, False)]:
        board.bridge.set_lines(dtr, rts)
    until(lambda: board.mode == "rom", "download mode")
    board.bridge.set_lines(False, False)
    assert board.mode == "rom"


def test_a_port_that_will_not_set_its_lines_is_said_so() -> None:
    """A pseudo-terminal (as a CDC port that refuses the lines): a sentence, no traceback."""
    master, slave = os.openpty()
    try:
        port = open_port(os.ttyname(slave))
        with pytest.raises(bridge.BridgeError) as raised:
            bridge.into_download_mode(port)
        port.close()
        assert raised.value.message.startswith(f"{os.ttyname(slave)} did not set its DTR/RTS lines")
        assert "[consoles]" in raised.value.hint
    finally:
        for fd in (master, slave):
            os.close(fd)


def test_an_unknown_virtual_bridge_is_said_not_there() -> None:
    with pytest.raises(NotASerialPort, match=r"There is no espdfusim://9-7\.") as raised:
        open_port(bridge_url("9-7"))
    assert "espdfu monitor --list" in raised.value.hint


def test_without_esp_pylib_a_reset_says_how_to_get_it(
    bridged: VirtualBoard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The core alone (no ``espdfu[bridge]`` extra): a sentence, the board left as it was."""
    monkeypatch.setitem(sys.modules, "esp_pylib", None)  # as if it were not installed
    port = open_port(bridge_url(bridged.path))
    try:
        with pytest.raises(bridge.BridgeError, match="needs Espressif's esp-pylib") as raised:
            bridge.into_download_mode(port)
    finally:
        port.close()
    assert "pip install 'espdfu[bridge]'" in raised.value.hint
    assert bridged.mode == "rom"


def test_the_bridges_beside_a_board_are_those_on_its_hub() -> None:
    """A DevKit's two connectors on one hub: its chip at 1-4.2, its CP2102N at 1-4.3; bridges
    elsewhere, or what is no bridge, are not beside it."""
    found = [
        Port("/dev/ttyUSB0", "1-4.3", 0x10C4, "CP2102N USB to UART Bridge Controller"),
        Port("/dev/ttyUSB1", "1-5.1", 0x10C4, "on another hub"),
        Port("/dev/ttyUSB2", "1-4.1.2", 0x1A86, "behind a hub on the hub"),
        Port("/dev/ttyACM0", "1-4.4", 0x303A, "an Espressif board's own USB"),
        Port("/dev/ttyACM1", "1-4.2", 0x1A86, "the board's own port"),
        Port("/dev/ttyS0", None, None, "a built-in UART"),
    ]
    assert bridges_beside("1-4.2", found) == [("1-4.3", "CP210x at /dev/ttyUSB0")]
    root = [Port("/dev/ttyUSB0", "3-2", 0x0403, "FT2232H"), Port("/dev/ttyUSB1", "1-2", 0x0403, "")]
    assert bridges_beside("3-1", root) == [("3-2", "FTDI at /dev/ttyUSB0")]  # the root hub's

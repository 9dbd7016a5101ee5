"""Board discovery: what each device on the bus is, on virtual boards under pyusb."""

from __future__ import annotations

import pytest

from espdfu.sim import Fault
from espdfu.usb.boards import (
    DRIVER_HINT,
    Access,
    Mode,
    access_hint,
    read_state,
    scan,
)
from espdfu.usb.protocol import Request
from tests.helpers.boardworld import world


def test_each_kind_of_board_is_told_apart() -> None:
    w = world("esp32s2,esp32s3-dfu,esp32s2-app,esp32s3-jtag,esp32s2-noaccess")
    boards = scan(w.usb)
    assert [b.path for b in boards] == sorted(w.paths)
    found = {b.path: b for b in boards}
    rom, dfu, app, jtag, locked = (found[path] for path in w.paths)

    assert (rom.mode, rom.chip_name, rom.interface, rom.accessible) == (
        Mode.ROM,
        "esp32s2",
        2,
        True,
    )
    assert rom.functional is not None and rom.functional.transfer_size == 64
    assert (dfu.mode, dfu.chip_name, dfu.interface) == (Mode.DFU, "esp32s3", 0)
    assert (app.mode, app.chip) == (Mode.APP, None)
    assert app.flashable
    assert (jtag.mode, jtag.interface, jtag.flashable) == (Mode.JTAG, None, False)
    assert "USB-Serial-JTAG" in jtag.hint
    assert (locked.accessible, locked.flashable) == (False, False)
    assert locked.hint == access_hint()


def test_a_board_without_a_driver_is_told_apart_with_the_fix() -> None:
    w = world("esp32s2-nodriver,esp32s3-nodfudriver")
    bare, half = scan(w.usb)
    assert (bare.mode, bare.access, bare.accessible, bare.flashable) == (
        Mode.ROM,
        Access.NO_DRIVER,
        False,
        False,
    )
    assert bare.hint == DRIVER_HINT and read_state(w.usb, bare) == "no driver"
    assert bare.as_dict()["access"] == "no_driver"
    for step in ("esp-win-usb-drivers", "Zadig", "Interface 2", "DFU-mode device"):
        assert step in DRIVER_HINT
    # WinUSB on interface 2 only: download mode opens; DFU mode is another story (flasher)
    assert (half.access, half.flashable, half.hint) == (Access.OK, True, "")


def test_board_summaries_have_the_documented_keys() -> None:
    (board,) = scan(world("esp32s2").usb)
    assert {"path", "vid", "pid", "chip", "mode", "accessible", "hint"} <= set(board.as_dict())
    assert board.as_dict()["vid"] == 0x303A and board.as_dict()["mode"] == "rom"


@pytest.mark.parametrize(
    ("platform", "words"),
    [("linux", "udev-rule"), ("win32", "WinUSB device"), ("darwin", "Close other programs")],
)
def test_the_permission_fix_depends_on_the_system(platform: str, words: str) -> None:
    assert words in access_hint(platform)


def test_read_state_asks_the_board() -> None:
    w = world("esp32s2-dfu,esp32s2,esp32s3-jtag")
    dfu, rom, jtag = (w.scan(path) for path in w.paths)
    assert read_state(w.usb, dfu) == "ready" and read_state(w.usb, rom) == "ready"
    assert read_state(w.usb, jtag) == "-"
    w.board(dfu.path).faults.append(Fault("stall", Request.GETSTATUS))
    assert read_state(w.usb, dfu) == "no answer"
    assert read_state(w.usb, dfu).startswith("error (errSTALLEDPKT)")

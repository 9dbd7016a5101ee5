"""Board discovery and the hot-plug monitor, on virtual boards under pyusb."""

from __future__ import annotations

import pytest

from espdfu.boards import (
    DRIVER_HINT,
    Access,
    BoardEvent,
    Change,
    Mode,
    Monitor,
    access_hint,
    read_state,
    scan,
)
from espdfu.protocol import Request
from espdfu.sim import BoardKind, Fault, VirtualBoard
from tests.core.boardworld import world


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


def test_the_monitor_sees_a_driver_arrive() -> None:
    w = world("esp32s2-nodriver")
    (path,) = w.paths
    monitor = Monitor(w.usb, lambda event: None)
    (added,) = monitor.scan()
    assert added.board.access is Access.NO_DRIVER
    w.board(path).kind = BoardKind.ROM  # the user installed the driver; no replug
    (changed,) = monitor.scan()
    assert (changed.change, changed.board.access) == (Change.CHANGED, Access.OK)


def test_board_summaries_have_the_documented_keys() -> None:
    (board,) = scan(world("esp32s2").usb)
    assert {"path", "vid", "pid", "chip", "mode", "accessible", "hint"} <= set(board.as_dict())
    assert board.as_dict()["vid"] == 0x303A and board.as_dict()["mode"] == "rom"


@pytest.mark.parametrize(
    ("platform", "words"),
    [("linux", "udev-rule"), ("win32", "another program"), ("darwin", "close other programs")],
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


def test_the_monitor_reports_plugs_unplugs_and_re_enumeration() -> None:
    w = world("esp32s2")
    (path,) = w.paths
    events: list[BoardEvent] = []
    monitor = Monitor(w.usb, events.append)
    assert monitor.scan() == events and [e.change for e in events] == [Change.ADDED]
    assert monitor.scan() == []  # nothing changed, nothing said

    added = w.bus.plug(VirtualBoard("esp32s3", kind=BoardKind.ROM))
    w.board(path).unplug()
    changes = monitor.scan()
    assert {(e.change, e.board.path) for e in changes} == {
        (Change.ADDED, added.path),
        (Change.REMOVED, path),
    }
    assert set(monitor.boards()) == {added.path}

    w.board(path).replug()
    (event,) = monitor.scan()
    assert (event.change, event.board.path, event.board.mode) == (Change.ADDED, path, Mode.ROM)


def test_a_detach_shows_as_a_change_of_mode_at_the_same_path() -> None:
    w = world("esp32s2")
    (path,) = w.paths
    monitor = Monitor(w.usb, lambda event: None)
    monitor.scan()
    device = w.usb.find(path)
    assert device is not None
    device.ctrl_transfer(0x21, Request.DETACH, 1000, 2, None)
    events = monitor.scan()
    kinds = [(e.change, e.board.mode) for e in events]
    assert kinds in ([(Change.CHANGED, Mode.DFU)], [(Change.REMOVED, Mode.ROM)])
    if kinds[0][0] is Change.REMOVED:  # the re-enumeration was still under way
        assert [(e.change, e.board.mode) for e in monitor.scan()] == [(Change.ADDED, Mode.DFU)]
    assert monitor.boards()[path].mode is Mode.DFU


def test_the_monitor_thread_starts_filled_and_stops() -> None:
    w = world("esp32s2*3")
    monitor = Monitor(w.usb, lambda event: None, interval_s=0.01)
    monitor.start()
    assert len(monitor.boards()) == 3
    monitor.stop()
    assert monitor._thread is not None and not monitor._thread.is_alive()

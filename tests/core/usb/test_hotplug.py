"""Hot-plug: boards coming, changing and going, by port path, on virtual boards under pyusb."""

from __future__ import annotations

import threading
from dataclasses import replace

from espdfu.sim import BoardKind, VirtualBoard
from espdfu.usb.boards import Access, Mode
from espdfu.usb.hotplug import BoardEvent, Change, HotPlug
from espdfu.usb.protocol import Request
from tests.helpers.boardworld import world


def test_the_monitor_sees_a_driver_arrive() -> None:
    w = world("esp32s2-nodriver")
    (path,) = w.paths
    monitor = HotPlug(w.usb, lambda event: None)
    (added,) = monitor.scan()
    assert added.board.access is Access.NO_DRIVER
    w.board(path).kind = BoardKind.ROM  # the user installed the driver; no replug
    (changed,) = monitor.scan()
    assert (changed.change, changed.board.access) == (Change.CHANGED, Access.OK)


def test_the_monitor_reports_plugs_unplugs_and_re_enumeration() -> None:
    w = world("esp32s2")
    (path,) = w.paths
    events: list[BoardEvent] = []
    monitor = HotPlug(w.usb, events.append)
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
    monitor = HotPlug(w.usb, lambda event: None)
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
    monitor = HotPlug(w.usb, lambda event: None, interval_s=0.01)
    monitor.start()
    assert len(monitor.boards()) == 3
    assert any(thread.name == "espdfu-hotplug" for thread in threading.enumerate())
    monitor.stop()
    assert not any(thread.name == "espdfu-hotplug" for thread in threading.enumerate())


class _Word:
    """Word of a device coming or going, given by the test (as the kernel's uevents are)."""

    def __init__(self) -> None:
        self._came = threading.Event()
        self.closed = False

    def tell(self) -> None:
        self._came.set()

    def wait(self, timeout: float) -> bool:
        came = self._came.wait(timeout)
        self._came.clear()
        return came

    def wake(self) -> None:
        self._came.set()

    def close(self) -> None:
        self.closed = True


def test_word_of_a_device_brings_a_look_at_once_and_the_poll_stays() -> None:
    """With the poll a minute apart, a board is seen as soon as word of it comes; the stop
    wakes the wait, so it does not last the minute either."""
    w = world("esp32s2")
    word = _Word()
    seen = threading.Event()
    usb_world = replace(w.usb, news=lambda: word)
    monitor = HotPlug(usb_world, lambda e: seen.set() if e.change is Change.ADDED else None, 60)
    monitor.start()
    seen.clear()  # the first scan's
    added = w.bus.plug(VirtualBoard("esp32s3", kind=BoardKind.ROM))
    word.tell()
    assert seen.wait(10), "the board was not seen before the poll"
    assert added.path in monitor.boards()
    monitor.stop(timeout_s=10)
    assert not any(thread.name == "espdfu-hotplug" for thread in threading.enumerate())
    assert word.closed


def test_without_word_the_monitor_polls() -> None:
    w = world("esp32s2")
    usb_world = replace(w.usb, news=lambda: None)  # no netlink here: polling alone
    seen = threading.Event()
    monitor = HotPlug(usb_world, lambda e: seen.set() if e.change is Change.ADDED else None, 0.01)
    monitor.start()
    seen.clear()
    w.bus.plug(VirtualBoard("esp32s3", kind=BoardKind.ROM))
    assert seen.wait(10)
    monitor.stop()

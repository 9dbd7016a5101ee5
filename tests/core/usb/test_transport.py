"""USB failures in words: Windows without a driver, on every path a request can take."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import usb.backend

from espdfu.sim import Fault, VirtualBoard
from espdfu.usb import transport
from espdfu.usb.protocol import (
    Blocks,
    DeviceGone,
    ProtocolError,
    Request,
    Sent,
    State,
    Status,
    StatusReply,
)
from espdfu.usb.transport import (
    BlockFault,
    DfuInterface,
    NoDriver,
    Stalled,
    TimedOut,
    _backend_control,
    _libusb_control,
)
from tests.helpers.boardworld import World, image, world
from tests.helpers.fakeusbfs import usbfs_over


def dfu_face_without_driver() -> tuple[World, DfuInterface]:
    """A board detached into DFU mode, for which Windows has no driver."""
    w = world("esp32s2-nodfudriver")
    (path,) = w.paths
    runtime = DfuInterface(w.usb.find(path), 2)
    runtime.claim()
    runtime.send(Request.DETACH, 1000)
    runtime.close()
    assert w.board(path).mode == "dfu"
    return w, DfuInterface(w.usb.find(path), 0)


def test_opening_without_a_driver_is_no_driver_in_either_mode() -> None:
    w = world("esp32s2-nodriver")  # download mode: libusb says NOT_FOUND, not NOT_SUPPORTED
    with pytest.raises(NoDriver):
        DfuInterface(w.usb.find(w.paths[0]), 2).claim()
    _, dfu = dfu_face_without_driver()  # DFU mode: pyusb raises NotImplementedError
    with pytest.raises(NoDriver):
        dfu.claim()


def test_pyusb_calls_say_no_driver() -> None:
    _, dfu = dfu_face_without_driver()
    with pytest.raises(NoDriver):
        dfu.reset()


def test_the_backend_control_path_says_no_driver() -> None:
    control = _backend_control(usb.backend.IBackend(), None)  # raises NotImplementedError
    with pytest.raises(NoDriver):
        control(0xA1, Request.GETSTATUS, 0, 0, b"", 6, 1000)


def test_the_direct_libusb_path_says_no_driver() -> None:
    lib = SimpleNamespace(libusb_control_transfer=lambda *args: -12)  # NOT_SUPPORTED
    control = _libusb_control(SimpleNamespace(lib=lib), SimpleNamespace(handle=object()))
    assert control is not None
    with pytest.raises(NoDriver):
        control(0xA1, Request.GETSTATUS, 0, 0, b"", 6, 1000)


def test_usbfs_is_taken_only_through_a_file_libusb_holds_for_the_device() -> None:
    assert transport._usbfs_file(SimpleNamespace(bus=1, address=99)) is None
    assert transport._usbfs_control(SimpleNamespace(bus=None, address=None)) is None


def test_usbfs_is_not_taken_when_its_probe_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that takes no USBDEVFS_CONTROL (an ioctl number wrong for the platform would fail
    the same way): the probe fails and libusb keeps the requests."""
    with Path(os.devnull).open("rb") as null:
        monkeypatch.setattr(transport, "_usbfs_file", lambda device: null.fileno())
        assert transport._usbfs_control(SimpleNamespace()) is None


def test_libusb_packages_library_is_found_without_importing_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = transport._packaged_libusb()
    assert found is not None and Path(found).is_file(), found
    assert Path(found).parent.name == "libusb_package", found
    (tmp_path / "libusb_package").mkdir()  # a copy without a library for this platform
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    assert transport._packaged_libusb() is None


# --- the usbfs route's loop for runs of blocks ------------------------------------------------


def test_the_usbfs_loop_makes_one_request_block_per_request() -> None:
    """Each DNLOAD's block points at its bytes with its number (wrapping) and length; each
    GETSTATUS's is the same; one ioctl per request."""
    requests: list[tuple[int, int, int, int, int, bytes]] = []

    def kernel(file: int, request: int, block: bytearray, mutate: bool) -> int:
        assert (file, request, mutate) == (7, transport._USBDEVFS_CONTROL, True)
        kind, code, value, index, length, timeout, address = transport._USBFS_CONTROL.unpack(block)
        if kind & 0x80:
            ctypes.memmove(address, IDLE.encode(), length)
        requests.append((kind, code, value, index, timeout, ctypes.string_at(address, length)))
        count: int = length
        return count

    _, send_blocks = transport._usbfs_route(7, kernel)
    data = bytes(range(150))
    assert send_blocks(3, 900, Blocks(65_534, memoryview(data), 0, 64)) == Sent(3)
    dnloads = [(value, sent) for kind, _, value, *_, sent in requests if kind == 0x21]
    assert dnloads == [(65_534, data[:64]), (65_535, data[64:128]), (0, data[128:])]
    assert requests[1::2] == [(0xA1, Request.GETSTATUS, 0, 3, 900, IDLE.encode())] * 3
    assert {(code, index, timeout) for _, code, _, index, timeout, _ in requests[::2]} == {
        (Request.DNLOAD, 3, 900)
    }


IDLE = StatusReply(Status.OK, 2, State.DNLOAD_IDLE)


def usbfs_to_board(spec: str = "esp32s2-dfu") -> tuple[VirtualBoard, transport._SendBlocks]:
    """A virtual board in dfuIDLE, and the usbfs loop to it."""
    w = world(spec)
    (path,) = w.paths
    dfu = DfuInterface(w.usb.find(path), 0)
    dfu.claim()
    return w.board(path), transport._usbfs_route(-1, usbfs_over(dfu.device))[1]


PAYLOAD = image().payload


def test_the_usbfs_loop_sends_a_run_to_a_board() -> None:
    board, send_blocks = usbfs_to_board()
    blocks = Blocks(0, memoryview(PAYLOAD)[:640], 0, 64)
    assert send_blocks(0, 1000, blocks) == Sent(10)
    assert board.requests[Request.DNLOAD] == board.requests[Request.GETSTATUS] == 10


@pytest.mark.parametrize(
    ("fault", "done", "reply"),
    [
        (Fault("busy", Request.GETSTATUS, nth=4), 3, State.DNBUSY),
        (Fault("status", Request.DNLOAD, nth=3, status=Status.VERIFY), 2, State.ERROR),
    ],
)
def test_the_usbfs_loop_stops_at_the_first_answer_that_is_not_plain(
    fault: Fault, done: int, reply: State
) -> None:
    board, send_blocks = usbfs_to_board()
    board.faults.append(fault)
    sent = send_blocks(0, 1000, Blocks(0, memoryview(PAYLOAD)[:640], 0, 64))
    assert sent.done == done and sent.reply is not None and sent.reply.state is reply
    assert board.requests[Request.DNLOAD] == done + 1  # nothing sent after it


@pytest.mark.parametrize(
    ("fault", "done", "failing", "kind"),
    [
        (Fault("stall", Request.DNLOAD, nth=6), 5, Request.DNLOAD, Stalled),
        (Fault("unplug", Request.DNLOAD, nth=7), 6, Request.DNLOAD, DeviceGone),
        (Fault("timeout", Request.GETSTATUS, nth=3), 2, Request.GETSTATUS, TimedOut),
        (Fault("short", Request.GETSTATUS, nth=2), 1, Request.GETSTATUS, ProtocolError),
        (Fault("garbage", Request.GETSTATUS, nth=9), 8, Request.GETSTATUS, ProtocolError),
    ],
)
def test_a_failed_request_in_the_usbfs_loop_says_which_block_and_request(
    fault: Fault, done: int, failing: Request, kind: type[Exception]
) -> None:
    board, send_blocks = usbfs_to_board()
    board.faults.append(fault)
    with pytest.raises(BlockFault) as failed:
        send_blocks(0, 100, Blocks(0, memoryview(PAYLOAD)[:640], 0, 64))
    assert (failed.value.done, failed.value.request) == (done, failing)
    assert isinstance(failed.value.fault, kind)

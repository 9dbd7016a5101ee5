"""USB failures in words: Windows without a driver, on every path a request can take."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import usb.backend

from espdfu.usb import transport
from espdfu.usb.protocol import Request
from espdfu.usb.transport import (
    DfuInterface,
    NoDriver,
    _backend_control,
    _libusb_control,
)
from tests.helpers.boardworld import World, world


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

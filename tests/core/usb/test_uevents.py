"""The kernel's uevents as the hot-plug monitor's cue: which messages say a USB device came or
went, and the netlink socket itself (Linux)."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from espdfu.usb.uevents import is_usb_device_event, kernel_uevents


def uevent(action: str, devpath: str, **fields: str) -> bytes:
    """A kernel uevent as netlink carries it (`udevadm monitor --kernel --property` shows the
    same): the header, then KEY=VALUE fields, each ended by a zero byte."""
    lines = [f"{action}@{devpath}", f"ACTION={action}", f"DEVPATH={devpath}"]
    lines += [f"{key}={value}" for key, value in fields.items()]
    return "\0".join(lines).encode() + b"\0"


DEVICE = "/devices/pci0000:00/0000:00:14.0/usb1/1-4/1-4.2"


@pytest.mark.parametrize(
    ("message", "news"),
    [
        (uevent("add", DEVICE, SUBSYSTEM="usb", DEVTYPE="usb_device", PRODUCT="303a/2/723"), True),
        (uevent("remove", DEVICE, SUBSYSTEM="usb", DEVTYPE="usb_device"), True),
        (uevent("add", DEVICE + "/1-4.2:1.2", SUBSYSTEM="usb", DEVTYPE="usb_interface"), False),
        (uevent("bind", DEVICE, SUBSYSTEM="usb", DEVTYPE="usb_device", DRIVER="usb"), False),
        (uevent("add", DEVICE + "/1-4.2:1.0/tty/ttyACM0", SUBSYSTEM="tty"), False),
        (b"libudev\0\xfe\xed\xca\xfe", False),  # udevd's re-broadcast, not the kernel's
    ],
)
def test_only_a_usb_device_coming_or_going_is_news(message: bytes, news: bool) -> None:
    assert is_usb_device_event(message) is news


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uevents are Linux's")
def test_the_socket_opens_without_privilege_waits_and_wakes() -> None:
    """Linux lets any user listen to the kernel's uevents: the monitor's cue needs no setup."""
    source = kernel_uevents()
    assert source is not None
    try:
        threading.Timer(0.1, source.wake).start()
        start = time.monotonic()
        source.wait(60)
        assert time.monotonic() - start < 30  # woken, not timed out
    finally:
        source.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uevents are Linux's")
def test_a_wake_after_the_close_writes_to_no_file() -> None:
    """The monitor closes its source as its thread ends, and its stop may wake it after: the
    pipe's number may by then be another file's, which must not get the wake's byte."""
    source = kernel_uevents()
    assert source is not None
    source.close()
    read, write = os.pipe()  # likely the numbers the source's pipe had
    try:
        source.wake()
        source.close()  # twice: nothing more
        os.set_blocking(read, False)
        with pytest.raises(BlockingIOError):
            os.read(read, 1)
    finally:
        os.close(read)
        os.close(write)

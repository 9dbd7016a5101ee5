"""The usbfs route over virtual boards: USBDEVFS_CONTROL ioctls carried out by the simulator.

The route's code (its request blocks, its loop for runs of blocks) otherwise runs only against
a real kernel (tests/realusb). Here an ``ioctl`` reads the request block as the kernel does,
sends the transfer to the virtual board through its pyusb backend, writes the answer where the
block points and fails as usbfs fails (an OSError with the errno).
"""

from __future__ import annotations

import ctypes
import errno
from array import array

import pytest
import usb.core

from espdfu.usb import transport


def usbfs_over(device: usb.core.Device) -> transport._Ioctl:
    """An ``ioctl`` for :func:`espdfu.usb.transport._usbfs_route` that reaches ``device``."""
    backend, handle = device._ctx.backend, device._ctx.handle

    def ioctl(file: int, request: int, block: bytearray, mutate: bool) -> int:
        assert request == transport._USBDEVFS_CONTROL and mutate
        kind, code, value, index, length, timeout, address = transport._USBFS_CONTROL.unpack(block)
        incoming = bool(kind & 0x80)
        data = array("B", bytes(length) if incoming else ctypes.string_at(address, length))
        try:
            count: int = backend.ctrl_transfer(handle, kind, code, value, index, data, timeout)
        except usb.core.USBTimeoutError as error:
            raise OSError(errno.ETIMEDOUT, str(error)) from None
        except usb.core.USBError as error:
            raise OSError(error.errno or errno.EIO, str(error)) from None
        if incoming:
            ctypes.memmove(address, data.tobytes(), count)
        return count

    return ioctl


def use_usbfs(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, interfaces of virtual boards are claimed on the usbfs route."""

    def fastest(device: usb.core.Device) -> tuple[str, transport._Control, transport._SendBlocks]:
        return ("usbfs", *transport._usbfs_route(-1, usbfs_over(device)))

    monkeypatch.setattr(transport, "_fastest_control", fastest)
